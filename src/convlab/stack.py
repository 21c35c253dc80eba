"""A stack of stages, worked out before anything runs: each stage's output shape, parameters,
multiply-adds and receptive field, as the table ``convlab explain stack`` prints and every
stack run logs.

Torch-free, like the other explains; the tests hold every number against real PyTorch
modules and ``torch.utils.flop_counter``. Every error names the stage (counted from 1) and
what it is, e.g. ``stage 8 Linear(512, 64): Flatten gives 1024 = 64x4x4 features per image;
use Linear(1024, 64)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from convlab.fields import FIELDS, STAY, stage_fields
from convlab.geometry import hw
from convlab.layers import Shape, ShapeError, UnreadWindow, stage_output_shape
from convlab.modules import call_text, stage_tag
from convlab.stages import STAGE_KINDS, ConvConfig, StageConfig

if TYPE_CHECKING:
    from rich.text import Text


def _dims(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _gives(index: int, stages: Sequence[StageConfig], shapes: Sequence[Shape]) -> str:
    """What reaches stage ``index`` (1-based), said the way a learner looks for it."""
    shape = shapes[index - 1]
    if index == 1:
        return f"the images have {_channels(shape[0])}"
    before = stages[index - 2]
    if len(shape) == 1:
        if before.kind == "flatten" and len(shapes[index - 2]) == 3:
            return f"Flatten gives {shape[0]} = {_dims(shapes[index - 2])} features per image"
        return f"stage {index - 1} {call_text(before)} gives {shape[0]} features per image"
    return f"stage {index - 1} {call_text(before)} gives {_channels(shape[0])}: {tuple(shape)}"


def _channels(n: int) -> str:
    return f"{n} channel" if n == 1 else f"{n} channels"


# The argument that must equal the size of the input, per stage kind that has one.
INPUT_SIZE = {"conv": "in_channels", "batchnorm2d": "num_features", "linear": "in_features", "convtranspose": "in_channels"}


def _check_fit(index: int, stages: Sequence[StageConfig], shapes: Sequence[Shape]) -> None:
    cfg, shape = stages[index - 1], shapes[index - 1]
    name = INPUT_SIZE.get(cfg.kind)
    wants_vector = cfg.kind == "linear"
    if name is None or getattr(cfg, name) is None or (len(shape) == 1) != wants_vector:
        return  # the shape rule says what is wrong with the input's kind
    if getattr(cfg, name) != shape[0]:
        fits = call_text(dataclasses.replace(cfg, **{name: shape[0]}))
        raise ShapeError(f"stage {index} {call_text(cfg)}: {_gives(index, stages, shapes)}; use {fits}")


def output_shapes(stages: Sequence[StageConfig], input_shape: Shape, *, name_stages: bool = True) -> list[Shape]:
    """The input's shape, then each stage's output per image; the first stage that cannot take
    its input is a ShapeError (named by stage unless ``name_stages`` is off: a one-layer command)."""
    shapes: list[Shape] = [tuple(input_shape)]
    for index, cfg in enumerate(stages, 1):
        if name_stages:
            _check_fit(index, stages, shapes)
        try:
            shapes.append(stage_output_shape(cfg, shapes[-1]))
        except UnreadWindow as exc:
            if not name_stages:
                raise
            fix = " or ".join(call_text(c) for c in exc.fits) or "a larger input, or less dilation or padding"
            raise ShapeError(f"stage {index} {call_text(cfg)}: {exc.reason}; use {fix}") from None
        except ShapeError as exc:
            if not name_stages:
                raise
            raise ShapeError(f"stage {index} {call_text(cfg)}: {_in_pytorchs_words(str(exc))}") from None
    return shapes


# A window layer's shape errors name the conv/pool flags; a stack's layers take PyTorch's arguments.
_FLAG_WORDS = (("--padding-mode zeros", "padding_mode='zeros'"), ("--kernel", "kernel_size"), ("--dilation", "dilation"),
               ("--padding", "padding"), ("--groups", "groups"))


def _in_pytorchs_words(message: str) -> str:
    for flag, argument in _FLAG_WORDS:
        message = message.replace(flag, argument)
    return message


# ----------------------------------------------------------------------------- costs


def _conv_costs(cfg: ConvConfig, shape: Shape, out: Shape) -> tuple[int, int]:
    kh, kw = cfg.kernel_size
    per_group = shape[0] // cfg.groups
    weights = cfg.out_channels * per_group * kh * kw
    return weights + (cfg.out_channels if cfg.bias else 0), math.prod(out) * per_group * kh * kw


def _convtranspose_costs(cfg: Any, shape: Shape, out: Shape) -> tuple[int, int]:
    # Every input value times every tap of its kernel, also the taps the padding crops away:
    # flop_counter counts a transposed convolution by its input's size.
    kh, kw = cfg.kernel_size
    per_group = cfg.out_channels // cfg.groups
    weights = cfg.in_channels * per_group * kh * kw
    return weights + (cfg.out_channels if cfg.bias else 0), math.prod(shape) * per_group * kh * kw


def _linear_costs(cfg: Any, shape: Shape, out: Shape) -> tuple[int, int]:
    return cfg.in_features * cfg.out_features + (cfg.out_features if cfg.bias else 0), cfg.in_features * cfg.out_features


def _batchnorm2d_costs(cfg: Any, shape: Shape, out: Shape) -> tuple[int, int]:
    # The running mean and variance are buffers, not parameters; eval mode is one
    # multiply-add per value, which flop counters (and this table) leave out.
    return (2 * cfg.num_features if cfg.affine else 0), 0


def _free(cfg: Any, shape: Shape, out: Shape) -> tuple[int, int]:
    return 0, 0


# (parameters, multiply-adds per image) of each stage kind. Multiply-adds are those of
# Conv2d, ConvTranspose2d and Linear, what torch.utils.flop_counter counts (as flops = 2 x multiply-adds).
COSTS: dict[str, Callable[[Any, Shape, Shape], tuple[int, int]]] = {
    kind: _free for kind in STAGE_KINDS
} | {"conv": _conv_costs, "linear": _linear_costs, "batchnorm2d": _batchnorm2d_costs, "convtranspose": _convtranspose_costs}


def receptive_window(
    stages: Sequence[StageConfig], input_shape: Shape, stage: int, position: int | tuple[int, int], *, padding: bool = True
) -> tuple[range, range] | None:
    """The input rows and columns holding everything output ``position`` of stage ``stage``
    (1-based) depends on; ``position`` is (h, w) of a map, or a feature's index. None: every input
    value. With ``padding`` (the table's way) the window counts the padding each stage reads, so
    it may reach past the image; without, it spans the input pixels actually read, stage by stage
    (empty where an output reads only padding)."""
    shapes = output_shapes(stages, input_shape)
    fields = stage_fields(stages, shapes)[stage - 1]
    if fields is None:
        return None
    if isinstance(position, int):  # a feature: one value of the map Flatten made it from
        stage = max(i for i in range(stage) if len(shapes[i]) == 3)
        position = _unravel(position, shapes[stage])[1:]
    if padding:  # the table's way: each stage's window, end to end
        return tuple(range(0) if f.empty(at) else range(f.lo(at), f.hi(at) + 1) for f, at in zip(fields, position))
    read: list[set[int]] = [{at} for at in position]
    for index in range(stage, 0, -1):
        reaches, shape = FIELDS[stages[index - 1].kind](stages[index - 1], shapes[index - 1], shapes[index]), shapes[index - 1]
        for axis, reach in enumerate(reaches):
            if reach is not STAY:
                read[axis] = {q for o in read[axis] for q in reach.read(o) if 0 <= q < shape[1 + axis]}
    return tuple(range(min(r), max(r) + 1) if r else range(0) for r in read)


def _unravel(index: int, shape: Shape) -> tuple[int, ...]:
    out = []
    for n in reversed(shape):
        index, rest = divmod(index, n)
        out.append(rest)
    return tuple(reversed(out))


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class StageRow:
    index: int
    call: str
    tag: str
    output_shape: Shape
    parameters: int
    multiply_adds: int
    # Receptive field (H, W) in input pixels: the input window one output value depends on
    # (padding included); None: the whole input (after Linear).
    field: tuple[int, int] | None
    # How many input pixels one step along the output moves that window (a Fraction after going
    # back up, 0 along an axis mixed whole); None for features.
    jump: tuple[int | Fraction, int | Fraction] | None
    # False: some outputs read less than ``field`` (after a transposed convolution or an upsampling).
    exact: bool = True


@dataclass(frozen=True)
class StackTable:
    input_shape: Shape
    rows: list[StageRow]
    notes: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        return sum(r.parameters for r in self.rows)

    @property
    def multiply_adds(self) -> int:
        return sum(r.multiply_adds for r in self.rows)

    def _cells(self) -> list[list[str]]:
        head = [["stage", "layer", "output", "parameters", "multiply-adds", "receptive field", "jump"]]
        head.append(["", "input", _shape_cell(self.input_shape), "", "", "1", "1"])
        for r in self.rows:
            whole = f"all {_dims(self.input_shape[1:])}"
            field_cell = whole if r.field is None else ("" if r.exact else "<=") + hw(r.field)
            head.append([
                str(r.index), r.call, _shape_cell(r.output_shape), f"{r.parameters:,}", f"{r.multiply_adds:,}",
                field_cell, "-" if r.jump is None else hw(tuple(jump_text(j) for j in r.jump)),
            ])
        head.append(["", "total", "", f"{self.parameters:,}", f"{self.multiply_adds:,}", "", ""])
        return head

    def lines(self) -> list[tuple[str, str]]:
        """``(style, text)`` lines; the style is decoration only."""
        return table_lines(self._cells(), right={0, 3, 4, 5, 6}, notes=self.notes)

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def rich(self) -> list[Text]:
        from rich.text import Text

        return [Text(text, style=style) for style, text in self.lines()]


def table_lines(cells: list[list[str]], right: set[int], notes: Sequence[str]) -> list[tuple[str, str]]:
    """A table as ``(style, text)`` lines: the header row and the last (the total) bold, the columns
    in ``right`` right-aligned, each as wide as its widest cell; then a blank line and the notes.
    A stack's table (:class:`StackTable`) and a model's (``hooks.ModelTable``)."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    out = [("bold", line(cells[0]))]
    out += [("", line(row)) for row in cells[1:-1]]
    out.append(("bold", line(cells[-1])))
    return out + [("", "")] + [("", f"note: {n}") for n in notes]


def jump_text(value: int | Fraction) -> str:
    """A jump as a learner reads it: ``2``, ``1/2``, or a decimal where the fraction is long."""
    if isinstance(value, int) or value.denominator == 1:
        return str(int(value))
    near = value.limit_denominator(99)
    return str(near) if near == value else f"{float(value):.3g}"


def _shape_cell(shape: Shape) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else str(tuple(shape))


NOTES = [
    "output: per image, (C, H, W) for a map or (F,) for features",
    "multiply-adds: per image, of Conv2d, ConvTranspose2d and Linear (torch.utils.flop_counter counts 2 flops each); "
    "activations, pooling, upsampling and normalisation are not counted",
    "receptive field: the input pixels one output value depends on, end to end (padding included); '<=' where "
    "outputs read different amounts (after ConvTranspose2d or Upsample): the most any output reads; all: every "
    "input value (Linear, Softmax over features); the whole height or width after Softmax over H or W",
    "jump: how far that window moves in the input per step of the output; a fraction after going back up "
    "(1/2 for stride 2), 0 along an axis every output reads whole",
]


def _whole(value: Fraction) -> int | Fraction:
    return int(value) if value.denominator == 1 else value


def explain_stack(stages: Sequence[StageConfig], input_shape: Shape, *, max_channels: int | None = None) -> StackTable:
    """The table of a stack on one (C, H, W) input; a ShapeError naming the first stage that cannot run.
    ``max_channels``: a run's pictures show this many channels per map; the notes say where that leaves some out."""
    shapes = output_shapes(stages, input_shape)
    rows = []
    for index, (cfg, shape, out, fields) in enumerate(zip(stages, shapes, shapes[1:], stage_fields(stages, shapes)), 1):
        parameters, multiply_adds = COSTS[cfg.kind](cfg, shape, out)
        rf = None if fields is None else (fields[0].size, fields[1].size)
        jump = None if fields is None or len(out) != 3 else tuple(_whole(f.jump) for f in fields)
        exact = fields is None or all(f.exact for f in fields)
        rows.append(StageRow(index, call_text(cfg), stage_tag(index, cfg, len(stages)), out, parameters, multiply_adds, rf, jump, exact))
    notes = list(NOTES)
    wide = [r.tag for r in rows if max_channels is not None and len(r.output_shape) == 3 and r.output_shape[0] > max_channels]
    if wide:
        notes.append(f"pictures: each map stage shows its first {max_channels} channels (--max-channels); "
                     f"{len(wide)} of them have more ({', '.join(wide[:3])}{', ...' if len(wide) > 3 else ''})")
    return StackTable(tuple(input_shape), rows, notes)


# ----------------------------------------------------------------------------- input windows


@dataclass(frozen=True)
class InputWindow:
    """Where one stage's outputs read the input, when every output reads a window of one size moved
    a whole number of pixels per output step (a stack of convolutions and pools): the output at
    (y, x) depends on input rows ``top .. top + field[0] - 1`` and columns ``left .. left + field[1] - 1``,
    with ``(top, left) = start + (y, x) * jump``. Rows and columns before 0 or past the image are
    padding (of whichever layer pads there), never image."""

    field: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]  # the window of output (0, 0); negative: it begins in the padding

    def at(self, y: int, x: int) -> tuple[int, int]:
        """(top, left) in input pixels of the window that output (y, x) reads."""
        return (self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1])


def input_window(stages: Sequence[StageConfig], input_shape: Shape, index: int) -> InputWindow:
    """The input window of stage ``index``'s outputs (1-based), from :mod:`convlab.fields`' rules.
    A ShapeError, naming why, where its outputs have no one window: it gives features, or a stage up
    to it mixes a whole axis (a Softmax over H or W, Linear) or goes back up (a transposed
    convolution, an upsampling: windows of different sizes, or moved by fractions of a pixel)."""
    shapes = output_shapes(stages, input_shape)
    this = f"stage {index} {call_text(stages[index - 1])}"
    if len(shapes[index]) != 3:
        raise ShapeError(f"{this} gives {shapes[index][0]} features per image, not a map (C, H, W): its values have no "
                         "position, so no input window")
    for i in range(1, index + 1):
        reaches = FIELDS[stages[i - 1].kind](stages[i - 1], shapes[i - 1], shapes[i])
        which = "it" if i == index else f"stage {i} {call_text(stages[i - 1])}"
        if reaches is None or any(r.jump == 0 for r in reaches):
            raise ShapeError(f"{this}: {which} mixes every position of its input (a whole row or column), so its outputs "
                             "have no input window; choose a map stage before it")
        if not all(r.uniform and r.jump.denominator == 1 for r in reaches):
            raise ShapeError(f"{this}: {which} goes back up, so its outputs read windows of different sizes or move by "
                             "fractions of a pixel, and no one patch is their window; choose a stage before it")
    fields = stage_fields(stages, shapes)[index - 1]
    return InputWindow(tuple(f.size for f in fields), tuple(int(f.jump) for f in fields), tuple(f.lo(0) for f in fields))
