"""What a layer's output looks like as pictures, and the registry of views a run can log.

The functions are pure: tensors in, image batches (or scalars) out; the pipeline hands what
they return to the writer. Adding a view is one entry in :data:`VIEWS`. torch is imported
inside the functions, so the CLI can list the views without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.config import ConfigError, ConvConfig, Experiment, PoolConfig, StageConfig, ViewConfig, names
from convlab.layers import Shape
from convlab.stages import ELEMENTWISE_KINDS, STAGE_KINDS

if TYPE_CHECKING:
    import torch
    from torch import nn


def reshape_view(output: torch.Tensor) -> torch.Tensor:
    """The tutorial's ``torch.reshape(output, (-1, 3, H, W))``, generalised so it never fails.

    Each image's channels are taken in order, three at a time, as one RGB tile: 6 channels
    give 2 tiles per image, exactly what the tutorial's reshape gives. Channels left over
    (``C % 3`` of them: 1 or 2) become one grey tile each, so nothing is dropped and no
    colour is invented. Tiles stay grouped by image: image 0's tiles, then image 1's, ...

    ``(N, C, H, W)`` -> ``(N * (C // 3 + C % 3), 3, H, W)``.
    """
    import torch

    n, c, h, w = output.shape
    triples, rest = divmod(c, 3)
    if rest == 0:
        return output.reshape(-1, 3, h, w)
    parts = []
    if triples:
        parts.append(output[:, : 3 * triples].reshape(n, triples, 3, h, w))
    parts.append(output[:, 3 * triples :].unsqueeze(2).expand(n, rest, 3, h, w))
    return torch.cat(parts, dim=1).reshape(-1, 3, h, w)


def tiles_per_image(channels: int) -> int:
    """How many tiles ``reshape_view`` makes of one image with ``channels`` channels."""
    triples, rest = divmod(channels, 3)
    return triples + rest


# ----------------------------------------------------------------------------- honest views

# Between tiles: a colour no grey level can have, so a separator never reads as a value.
SEPARATOR = (0.2, 0.45, 0.85)
# A heat strip's rows are this wide at most (auto zoom) and at least this tall; past
# MAX_STRIP_FEATURES features only the first ones are shown.
STRIP_WIDTH = 1024
STRIP_ROW = 8
MAX_STRIP_FEATURES = 4096
# Auto zoom: small maps are upscaled (nearest neighbour) to at least this many pixels...
ZOOM_TARGET = 64
# ...unless the picture would get wider than this.
ZOOM_MAX_WIDTH = 2048


def display_scale(tiles: torch.Tensor, scale: str) -> torch.Tensor:
    """Map each tile of ``tiles`` (N, C, H, W) to [0, 1] for display, every tile on its own.

    - ``raw``: the values as they are, clipped to [0, 1], as TensorBoard shows floats
      (negative values black, values over 1 white).
    - ``minmax``: the tile's minimum -> black, its maximum -> white.
    - ``symmetric``: 0 -> mid-grey, -m -> black, +m -> white, m = the tile's largest |value|;
      the sign of a response stays visible.

    A tile with no contrast (all one value) is mid-grey under ``minmax``; under ``symmetric``
    an all-zero tile is mid-grey.
    """
    import torch

    tiles = tiles.float().nan_to_num()
    if scale == "raw":
        return tiles.clamp(0, 1)
    flat = tiles.flatten(1)
    shape = (-1,) + (1,) * (tiles.dim() - 1)
    if scale == "minmax":
        lo, hi = flat.amin(1).view(shape), flat.amax(1).view(shape)
        span = hi - lo
        return torch.where(span > 0, (tiles - lo) / span.clamp_min(1e-30), torch.full_like(tiles, 0.5))
    if scale == "symmetric":
        m = flat.abs().amax(1).view(shape)
        return (0.5 + 0.5 * tiles / m.clamp_min(1e-30)).clamp(0, 1)
    raise ValueError(f"unknown scale {scale!r}")


def auto_zoom(height: int, width: int, columns: int) -> int:
    """The integer factor that makes a ``height`` x ``width`` tile at least ZOOM_TARGET pixels."""
    zoom = max(1, -(-ZOOM_TARGET // max(height, width)))
    while zoom > 1 and columns * (width * zoom + 2) > ZOOM_MAX_WIDTH:
        zoom -= 1
    return zoom


def upscale(tiles: torch.Tensor, zoom: int) -> torch.Tensor:
    """Nearest-neighbour upscaling: every value becomes a ``zoom`` x ``zoom`` block, unblurred."""
    if zoom == 1:
        return tiles
    return tiles.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)


def tile_grid(tiles: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """(N, 1 or 3, H, W) tiles in [0, 1] -> one image (1, 3, H', W'), ``columns`` tiles a row.

    The layout of torchvision's ``make_grid`` (``padding`` around every tile, empty cells
    left as padding; a single tile is returned as it is), with the padding painted SEPARATOR.
    Written here with three torch ops rather than imported: ``torchvision.utils`` costs
    1.2-1.9 s of imports (it loads ``torch._dynamo``), more than a whole CIFAR10 run's own work
    (measured with ``python -X importtime``); tests/test_views.py holds it to make_grid.
    """
    import torch
    import torch.nn.functional as F

    if tiles.shape[1] == 1:
        tiles = tiles.expand(-1, 3, -1, -1)
    n, c, h, w = tiles.shape
    colour = torch.tensor(SEPARATOR, dtype=tiles.dtype, device=tiles.device).view(1, 3, 1, 1)
    if n == 1:
        return tiles.clone()
    cols = min(columns, n)
    rows = -(-n // cols)
    cells = torch.empty(rows * cols, c, h + padding, w + padding, dtype=tiles.dtype, device=tiles.device)
    cells.copy_(colour.expand_as(cells))
    cells[:n, :, :h, :w] = tiles
    grid = cells.view(rows, cols, c, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, rows * (h + padding), cols * (w + padding))
    # make_grid's padding before the first row and column
    grid = F.pad(grid, (padding, 0, padding, 0))
    grid[:, :padding, :] = colour.view(3, 1, 1)
    grid[:, :, :padding] = colour.view(3, 1, 1)
    return grid.unsqueeze(0)


def channel_view(output: torch.Tensor, images: int = 4, scale: str = "symmetric", zoom: int | None = None) -> torch.Tensor:
    """Every channel of the first ``images`` images as its own grey tile: rows = images,
    columns = channels. ``(N, C, H, W)`` -> one image ``(1, 3, H', W')`` in [0, 1].

    Each tile is scaled on its own (see :func:`display_scale`) and upscaled by ``zoom``
    (None: :func:`auto_zoom`).
    """
    y = output[:images]
    n, c, h, w = y.shape
    tiles = display_scale(y.reshape(n * c, 1, h, w), scale)
    return tile_grid(upscale(tiles, zoom or auto_zoom(h, w, c)), columns=c)


def feature_strip(output: torch.Tensor, images: int = 4, scale: str = "symmetric", zoom: int | None = None) -> torch.Tensor:
    """Feature vectors as a heat strip: one row per image (the first ``images``), one cell per
    feature, each row scaled on its own (see :func:`display_scale`). ``(N, F)`` -> ``(1, 3, H', W')``.

    A cell is ``zoom`` pixels wide (None: as wide as fits STRIP_WIDTH) and at least
    STRIP_ROW pixels tall, so even a long vector's rows can be told apart.
    """
    y = output[:images, :MAX_STRIP_FEATURES]
    n, f = y.shape
    cell = zoom or max(1, min(ZOOM_TARGET // 4, STRIP_WIDTH // f))
    rows = display_scale(y.reshape(n, 1, 1, f), scale)
    rows = rows.repeat_interleave(max(cell, STRIP_ROW), dim=-2).repeat_interleave(cell, dim=-1)
    return tile_grid(rows, columns=1)


def kernel_view(weight: torch.Tensor, scale: str = "symmetric", zoom: int | None = None, limit: float | None = None) -> torch.Tensor:
    """A conv weight ``(out_channels, in_channels/groups, kH, kW)`` as one image ``(1, 3, H', W')``.

    With 3 input channels each output channel's kernel is one RGB tile (R, G, B = the weights
    on the red, green, blue input), in one row. Otherwise rows = output channels, columns =
    input channels, one grey tile each. Each output channel's kernel is scaled as one image,
    so its input channels keep their relative strength.

    ``limit``: instead, every weight on one fixed symmetric range (0 mid-grey, -limit black,
    +limit white, clipped beyond), so pictures of one layer taken at different times compare.
    """
    out, cin, kh, kw = weight.shape
    if limit is None:
        scaled = display_scale(weight.detach(), scale)
    else:
        scaled = (0.5 + 0.5 * weight.detach().float().nan_to_num() / limit).clamp(0, 1)
    if cin == 3:
        tiles, columns = scaled, out
    else:
        tiles, columns = scaled.reshape(out * cin, 1, kh, kw), cin
    return tile_grid(upscale(tiles, zoom or auto_zoom(kh, kw, columns)), columns=columns)


# ----------------------------------------------------------------------------- the registry

# What a view returns: (writer method, tag, value), e.g. ("images", "channels", batch),
# ("scalar", "output/min", 0.1) or ("histogram", "output/histogram", values).
Record = tuple[str, str, Any]


@dataclass(frozen=True)
class StageOutput:
    """One stage of one batch, as the views see it."""

    stage: StageConfig
    module: nn.Module
    input: torch.Tensor  # what went into the stage (floats; images in [0, 1] for the first)
    output: torch.Tensor
    options: ViewConfig
    # In a stack: the stage's tag ('01-conv2d'), which every tag of its views goes under.
    prefix: str | None = None
    # In a stack: how many channels of a map the pictures show.
    max_channels: int | None = None
    # The batch's labels and the dataset's class names (the 'classes' view), and whether
    # this is the last stage.
    labels: torch.Tensor | None = None
    classes: tuple[str, ...] = ()
    last: bool = False


@dataclass(frozen=True)
class View:
    name: str
    kinds: tuple[str, ...]  # the stage kinds it applies to
    when: str  # "step": every batch; "once": at step 0 (it does not change during a run)
    image_tags: tuple[str, ...]  # the image tags it logs, in order
    render: Callable[[StageOutput], list[Record]]
    help: str
    why_not: str = ""  # said when it is asked for a stage kind it does not apply to
    # The stage outputs it applies to: "map" (C, H, W) and/or "vector" (F,).
    outputs: tuple[str, ...] = ("map", "vector")


def _channels(s: StageOutput) -> list[Record]:
    o = s.options
    shown = s.output if s.max_channels is None else s.output[:, : s.max_channels]
    return [("images", "channels", channel_view(shown, o.images, o.scale, o.zoom))]


def _features(s: StageOutput) -> list[Record]:
    o = s.options
    return [("images", "features", feature_strip(s.output, o.images, o.scale, o.zoom))]


def _classes(s: StageOutput) -> list[Record]:
    """The top 3 classes per image, by the last stage's scores (logits or probabilities)."""
    if not s.last or s.output.shape[1] != len(s.classes):
        return []
    scores = s.output[: s.options.images].float().cpu()
    top = scores.topk(min(3, scores.shape[1]), dim=1)
    lines = []
    for i, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        truth = ""
        if s.labels is not None and 0 <= int(s.labels[i]) < len(s.classes):
            truth = f" ({s.classes[int(s.labels[i])]})"
        ranked = ", ".join(f"{s.classes[k]} {v:.3g}" for k, v in zip(indices, values))
        lines.append(f"- image {i}{truth}: {ranked}")
    return [("text", "classes", "\n".join(lines))]


def _kernels(s: StageOutput) -> list[Record]:
    return [("images", "kernels", kernel_view(s.module.weight, s.options.scale, s.options.zoom))]


def _stats(s: StageOutput) -> list[Record]:
    import torch

    low, high = torch.stack([s.output.min(), s.output.max()]).tolist()
    return [("scalar", "output/min", low), ("scalar", "output/max", high), ("histogram", "output/histogram", s.output)]


ALL_KINDS = tuple(STAGE_KINDS)
# Conv2d and the pools always give maps; every other kind may give (or pass on) features.
VECTOR_KINDS = tuple(k for k in STAGE_KINDS if k not in ("conv", "pool"))

VIEWS: dict[str, View] = {
    "channels": View(
        "channels", ALL_KINDS, "step", ("channels",), _channels,
        "every output channel of the first --view-images images as its own grey tile (in a stack: the first "
        "--max-channels channels)",
        outputs=("map",),
    ),
    "kernels": View(
        "kernels", ("conv",), "once", ("kernels",), _kernels,
        "the conv's weights, one tile per output channel", why_not="a pool layer has no weights",
    ),
    "stats": View(
        "stats", ALL_KINDS, "step", (), _stats,
        "min/max scalars and a histogram of the output",
    ),
    "features": View(
        "features", VECTOR_KINDS, "step", ("features",), _features,
        "a stack's feature vectors as a heat strip: rows = the first --view-images images, columns = features",
        why_not="conv and pool layers give maps; features come from Flatten and Linear in 'convlab stack'",
        outputs=("vector",),
    ),
    "classes": View(
        "classes", VECTOR_KINDS, "step", (), _classes,
        "the top 3 class names per image, when a stack's last stage gives one score per class of the dataset",
        why_not="it reads a stack's class scores (the last Linear's features)",
        outputs=("vector",),
    ),
}


def check_views(exp: Experiment) -> None:
    """``--views``: known names, 'none' alone, each applying to the experiment's stages."""
    chosen = names(exp.views.show)
    kinds = {stage.kind for stage in exp.stages}
    # A one-layer command lists the views of conv and pool layers, a stack every view.
    listed = [n for n, v in VIEWS.items() if exp.is_stack or {"conv", "pool"} & set(v.kinds)]
    for name in chosen:
        if name == "none":
            if chosen != ["none"]:
                raise ConfigError(f"views: 'none' cannot be combined with other views ({exp.views.show})")
        elif name not in VIEWS:
            raise ConfigError(f"unknown view {name!r}; choose from {', '.join(listed)} (or none)")
        elif not kinds & set(VIEWS[name].kinds):
            why = f" ({VIEWS[name].why_not})" if VIEWS[name].why_not else ""
            where = "this stack" if exp.is_stack else f"'convlab {exp.command}'"
            raise ConfigError(f"view {name!r} does not apply to {where}{why}")


def check_stack_views(exp: Experiment, shapes: list[Shape]) -> None:
    """In a stack, each view asked for by name applies to some stage's output (a map or features)."""
    for name in names(exp.views.show):
        if name != "none" and not any(VIEWS[name] in selected_views(exp, s, out) for s, out in zip(exp.stages, shapes[1:])):
            raise ConfigError(f"view {name!r} applies to no stage of this stack ({VIEWS[name].why_not or VIEWS[name].help})")


def output_kind(shape: Shape) -> str:
    return "vector" if len(shape) == 1 else "map"


# A view picture past this many pixels is no lesson (and would take gigabytes to build).
MAX_VIEW_PIXELS = 1 << 24


def check_zoom(exp: Experiment, stage: StageConfig, output_shape: Shape, in_channels: int) -> None:
    """An explicit ``--zoom`` must leave every view picture of ``stage`` a sensible size."""
    zoom = exp.views.zoom
    if zoom is None:
        return
    sizes = {}
    chosen = {v.name for v in selected_views(exp, stage, output_shape)}
    rows = min(exp.views.images, exp.data.batch_size)
    if "channels" in chosen:
        c, h, w = output_shape
        if exp.is_stack:
            c = min(c, exp.stack.max_channels)
        sizes["channels"] = (rows * (h * zoom + 2) + 2, c * (w * zoom + 2) + 2)
    if "features" in chosen:
        features = min(output_shape[0], MAX_STRIP_FEATURES)
        sizes["features"] = (rows * (max(zoom, STRIP_ROW) + 2) + 2, features * zoom + 4)
    if "kernels" in chosen and isinstance(stage, ConvConfig):
        kh, kw = stage.kernel_size
        per_group = max(in_channels // stage.groups, 1)
        rows, cols = (1, stage.out_channels) if per_group == 3 else (stage.out_channels, per_group)
        sizes["kernels"] = (rows * (kh * zoom + 2) + 2, cols * (kw * zoom + 2) + 2)
    for name, (height, width) in sizes.items():
        if height * width > MAX_VIEW_PIXELS:
            raise ConfigError(
                f"--zoom {zoom} would make the {name} view {width:,}x{height:,} pixels (at most "
                f"{MAX_VIEW_PIXELS:,} in all); use a smaller --zoom, or leave it out to fit the view automatically"
            )


def is_activation_lesson(exp: Experiment) -> bool:
    """``convlab stack "Sigmoid()"``: one element-wise stage, logged as the lesson logs it."""
    return exp.command == "stack" and len(exp.stages) == 1 and exp.stages[0].kind in ELEMENTWISE_KINDS


def selected_views(exp: Experiment, stage: StageConfig, output_shape: Shape | None = None) -> list[View]:
    """The extra views logged for ``stage`` (with this output), in the registry's order."""
    applying = [
        v for v in VIEWS.values()
        if stage.kind in v.kinds and (output_shape is None or output_kind(output_shape) in v.outputs)
    ]
    if is_activation_lesson(exp):
        # The lesson's pictures are 'input' and 'output' only; views without pictures join them.
        applying = [v for v in applying if not v.image_tags]
    if exp.views.show is None:
        return applying
    chosen = names(exp.views.show)
    return [v for v in applying if v.name in chosen]


# Each stage's own picture in a stack is logged under the stage's tag itself.
_STAGE_PICTURES = ("channels", "features")


def stage_tag(prefix: str | None, tag: str) -> str:
    """A view's tag: as the view names it in a one-layer run; in a stack under the stage's
    tag, so TensorBoard lists stages in order: 'channels' -> '01-conv2d', 'kernels' ->
    '01-conv2d/kernels', 'output/min' -> '01-conv2d/min'."""
    if prefix is None:
        return tag
    if tag in _STAGE_PICTURES:
        return prefix
    return f"{prefix}/{tag.removeprefix('output/')}"


def records(view: View, seen: StageOutput) -> list[Record]:
    """What ``view`` logs for one stage, each tag put under the stage's (see :func:`stage_tag`)."""
    return [(method, stage_tag(seen.prefix, tag), value) for method, tag, value in view.render(seen)]


# ----------------------------------------------------------------------------- the lesson's tags


def output_tag(stage: StageConfig) -> str:
    """The lesson's tag for a stage's output: ``output`` for a conv or an activation, ``maxpool``/``avgpool``."""
    if isinstance(stage, PoolConfig):
        return f"{stage.mode}pool"
    return "output"


def output_images(stage: StageConfig, output: torch.Tensor) -> torch.Tensor:
    """The output as the lesson logs it: a conv through the reshape view, anything else as it is
    (``add_images`` of the batch, as the activation lesson logs it)."""
    return reshape_view(output) if isinstance(stage, ConvConfig) else output
