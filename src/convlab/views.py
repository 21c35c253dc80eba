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


def kernel_view(weight: torch.Tensor, scale: str = "symmetric", zoom: int | None = None) -> torch.Tensor:
    """A conv weight ``(out_channels, in_channels/groups, kH, kW)`` as one image ``(1, 3, H', W')``.

    With 3 input channels each output channel's kernel is one RGB tile (R, G, B = the weights
    on the red, green, blue input), in one row. Otherwise rows = output channels, columns =
    input channels, one grey tile each. Each output channel's kernel is scaled as one image,
    so its input channels keep their relative strength.
    """
    out, cin, kh, kw = weight.shape
    scaled = display_scale(weight.detach(), scale)
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


@dataclass(frozen=True)
class View:
    name: str
    kinds: tuple[str, ...]  # the stage kinds it applies to
    when: str  # "step": every batch; "once": at step 0 (it does not change during a run)
    image_tags: tuple[str, ...]  # the image tags it logs, in order
    render: Callable[[StageOutput], list[Record]]
    help: str
    why_not: str = ""  # said when it is asked for a stage kind it does not apply to


def _channels(s: StageOutput) -> list[Record]:
    o = s.options
    return [("images", "channels", channel_view(s.output, o.images, o.scale, o.zoom))]


def _kernels(s: StageOutput) -> list[Record]:
    return [("images", "kernels", kernel_view(s.module.weight, s.options.scale, s.options.zoom))]


def _stats(s: StageOutput) -> list[Record]:
    import torch

    low, high = torch.stack([s.output.min(), s.output.max()]).tolist()
    return [("scalar", "output/min", low), ("scalar", "output/max", high), ("histogram", "output/histogram", s.output)]


VIEWS: dict[str, View] = {
    "channels": View(
        "channels", ("conv", "pool"), "step", ("channels",), _channels,
        "every output channel of the first --view-images images as its own grey tile",
    ),
    "kernels": View(
        "kernels", ("conv",), "once", ("kernels",), _kernels,
        "the conv's weights, one tile per output channel", why_not="a pool layer has no weights",
    ),
    "stats": View(
        "stats", ("conv", "pool"), "step", (), _stats,
        "min/max scalars and a histogram of the output",
    ),
}


def check_views(exp: Experiment) -> None:
    """``--views``: known names, 'none' alone, each applying to the experiment's stages."""
    chosen = names(exp.views.show)
    kinds = {stage.kind for stage in exp.stages}
    for name in chosen:
        if name == "none":
            if chosen != ["none"]:
                raise ConfigError(f"views: 'none' cannot be combined with other views ({exp.views.show})")
        elif name not in VIEWS:
            raise ConfigError(f"unknown view {name!r}; choose from {', '.join(VIEWS)} (or none)")
        elif not kinds & set(VIEWS[name].kinds):
            why = f" ({VIEWS[name].why_not})" if VIEWS[name].why_not else ""
            raise ConfigError(f"view {name!r} does not apply to 'convlab {exp.command}'{why}")


# A view picture past this many pixels is no lesson (and would take gigabytes to build).
MAX_VIEW_PIXELS = 1 << 24


def check_zoom(exp: Experiment, stage: StageConfig, output_shape: tuple[int, int, int], in_channels: int) -> None:
    """An explicit ``--zoom`` must leave every view picture of ``stage`` a sensible size."""
    zoom = exp.views.zoom
    if zoom is None:
        return
    c, h, w = output_shape
    sizes = {}
    chosen = {v.name for v in selected_views(exp, stage)}
    if "channels" in chosen:
        rows = min(exp.views.images, exp.data.batch_size)
        sizes["channels"] = (rows * (h * zoom + 2) + 2, c * (w * zoom + 2) + 2)
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


def selected_views(exp: Experiment, stage: StageConfig) -> list[View]:
    """The extra views logged for ``stage``, in the registry's order."""
    applying = [v for v in VIEWS.values() if stage.kind in v.kinds]
    if exp.views.show is None:
        return applying
    chosen = names(exp.views.show)
    return [v for v in applying if v.name in chosen]


# ----------------------------------------------------------------------------- the lesson's tags


def output_tag(stage: StageConfig) -> str:
    """The lesson's tag for a stage's output: ``output`` for a conv, ``maxpool``/``avgpool``."""
    if isinstance(stage, PoolConfig):
        return f"{stage.mode}pool"
    return "output"


def output_images(stage: StageConfig, output: torch.Tensor) -> torch.Tensor:
    """The output as the lesson logs it: a conv through the reshape view, pooling as it is."""
    return reshape_view(output) if isinstance(stage, ConvConfig) else output
