"""What a layer's output looks like as pictures, and the registry of views a run can log.

The functions are pure: tensors in, image batches (or scalars) out; the pipeline hands what
they return to the writer. Adding a view is one entry in :data:`VIEWS`. torch is imported
inside the functions, so the CLI can list the views without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.errors import ConfigError
from convlab.experiment import Experiment, ViewConfig
from convlab.layers import Shape
from convlab.modules import call_text
from convlab.pictures import (
    LABEL_TOP,
    MAX_STRIP_FEATURES,
    STRIP_ROW,
    channel_view,
    feature_strip,
    kernel_view,
    label_left,
    reshape_view,
)
from convlab.stages import ELEMENTWISE_KINDS, STAGE_KINDS, ConvConfig, PoolConfig, StageConfig
from convlab.values import names

if TYPE_CHECKING:
    import torch
    from torch import nn


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
    why_not_in_stack: str = ""  # the same for a stack, where it differs
    # The stage outputs it applies to: "map" (C, H, W) and/or "vector" (F,).
    outputs: tuple[str, ...] = ("map", "vector")
    # True: by default, in a stack, only its first stage of these kinds (a deeper conv's kernels are
    # a grid of noise to a learner, and filled the Images tab's first page); named in --views, every one.
    first_by_default: bool = False


def _channels(s: StageOutput) -> list[Record]:
    o = s.options
    shown = s.output if s.max_channels is None else s.output[:, : s.max_channels]
    return [("images", "channels", channel_view(shown, o.images, o.scale, o.zoom, pixels=True, labels=True))]


def _features(s: StageOutput) -> list[Record]:
    o = s.options
    return [("images", "features", feature_strip(s.output, o.images, o.scale, o.zoom))]


def _classes(s: StageOutput) -> list[Record]:
    """The top 3 classes per image with their probabilities: the softmax of the last stage's
    scores (logits), or a Softmax stage's own output; the first line says which."""
    if not s.last or s.output.shape[1] != len(s.classes):
        return []
    scores = s.output[: s.options.images].float().cpu()
    if s.stage.kind == "softmax":
        probabilities, source = scores, "the Softmax stage's output"
    else:
        probabilities, source = scores.softmax(dim=1), "the softmax of the last stage's scores (logits)"
    top = probabilities.topk(min(3, scores.shape[1]), dim=1)
    lines = [f"Top classes of each image, with their probabilities ({source}):", ""]
    for i, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        truth = ""
        if s.labels is not None and 0 <= int(s.labels[i]) < len(s.classes):
            truth = f" ({s.classes[int(s.labels[i])]})"
        ranked = ", ".join(f"{s.classes[k]} {v:.3f}" for k, v in zip(indices, values))
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
        "every output channel of the first --view-images images as its own grey tile, numbered (in a stack: the first "
        "--max-channels channels)",
        outputs=("map",),
    ),
    "kernels": View(
        "kernels", ("conv", "convtranspose"), "once", ("kernels",), _kernels,
        "the conv's weights, one tile per output channel (a ConvTranspose2d's: what each input channel stamps, one row "
        "each; in a stack, by default, the first of these stages only)",
        why_not="a pool layer has no weights", first_by_default=True,
        why_not_in_stack="it draws a Conv2d's or ConvTranspose2d's weights, and no stage of this stack is either",
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
        "the top 3 class names per image with their probabilities, when a stack's last stage gives one score per "
        "class of the dataset",
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
            reason = (exp.is_stack and VIEWS[name].why_not_in_stack) or VIEWS[name].why_not
            why = f" ({reason})" if reason else ""
            where = "this stack" if exp.is_stack else f"'convlab {exp.command}'"
            raise ConfigError(f"view {name!r} does not apply to {where}{why}")


def check_stack_views(exp: Experiment, shapes: list[Shape]) -> None:
    """In a stack, each view asked for by name applies to some stage's output (a map or features)."""
    for name in names(exp.views.show):
        view = VIEWS[name] if name != "none" else None
        if view is None or any(view in selected_views(exp, s, out) for s, out in zip(exp.stages, shapes[1:])):
            continue
        if is_activation_lesson(exp) and view.image_tags:
            why = ("one activation alone is logged as the activation lesson logs it, as 'input' and 'output'; "
                   "put a layer before it (e.g. a Conv2d) to see each stage's views")
        elif view.outputs != ("map", "vector"):
            given = "maps (C, H, W)" if view.outputs == ("map",) else "feature vectors"
            why = f"it shows {given}, and no stage of this stack gives {'one' if view.outputs == ('vector',) else 'them'}"
        else:
            why = view.why_not_in_stack or view.why_not or view.help
        raise ConfigError(f"view {name!r} applies to no stage of this stack ({why})")


def check_classes_view(exp: Experiment, output_shape: Shape, classes: int) -> None:
    """``--views classes``, asked by name: the last stage gives one score per class of the dataset."""
    if tuple(output_shape) != (classes,):
        last = exp.stages[-1]
        gives = f"{output_shape[0]:,} features" if len(output_shape) == 1 else f"maps {tuple(output_shape)}"
        raise ConfigError(
            f"view 'classes' names each image's top classes by the last stage's scores, one per class, but stage "
            f"{len(exp.stages)} {call_text(last)} gives {gives} and {exp.data.dataset} has {classes} classes; "
            f"end with Linear(..., {classes}), or leave 'classes' out of --views"
        )


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
        sizes["channels"] = (LABEL_TOP + rows * (h * zoom + 2) + 2, label_left(rows) + c * (w * zoom + 2) + 2)
    if "features" in chosen:
        features = min(output_shape[0], MAX_STRIP_FEATURES)
        sizes["features"] = (rows * (max(zoom, STRIP_ROW) + 2) + 2, features * zoom + 4)
    if "kernels" in chosen and stage.kind in VIEWS["kernels"].kinds:
        kh, kw = stage.kernel_size
        tiles, per_tile = kernel_grid(stage, in_channels)
        rows, cols = (1, tiles) if per_tile == 3 else (tiles, per_tile)
        sizes["kernels"] = (rows * (kh * zoom + 2) + 2, cols * (kw * zoom + 2) + 2)
    for name, (height, width) in sizes.items():
        if height * width > MAX_VIEW_PIXELS:
            raise ConfigError(
                f"--zoom {zoom} would make the {name} view {width:,}x{height:,} pixels (at most "
                f"{MAX_VIEW_PIXELS:,} in all); use a smaller --zoom, or leave it out to fit the view automatically"
            )


def kernel_grid(stage: StageConfig, in_channels: int) -> tuple[int, int]:
    """(rows, tiles per row) of the kernels view: the weight's first two sizes. A Conv2d's weight is
    (out_channels, in_channels/groups, kH, kW): a row per output channel, what it reads of each input
    channel. A ConvTranspose2d's is (in_channels, out_channels/groups, kH, kW): a row per input channel,
    the stamp one of its values adds to each output channel; drawn as PyTorch stores it, which is how
    the layer works (each input value stamps it onto the output), not flipped into the direct
    convolution that computes the same."""
    if stage.kind == "convtranspose":
        return stage.in_channels, stage.out_channels // stage.groups
    return stage.out_channels, max(in_channels // stage.groups, 1)


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
        return [v for v in applying if not (v.first_by_default and exp.is_stack and not _first_of_kinds(exp, stage, v.kinds))]
    chosen = names(exp.views.show)
    return [v for v in applying if v.name in chosen]


def _first_of_kinds(exp: Experiment, stage: StageConfig, kinds: tuple[str, ...]) -> bool:
    """``stage`` (by identity: a stack may hold equal stages) is the stack's first of these kinds."""
    return next((s for s in exp.stages if s.kind in kinds), None) is stage


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
