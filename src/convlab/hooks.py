"""Any ``torch.nn.Module`` through forward hooks: the calls of its leaf modules in one forward
pass, in call order, and their table (output shape, parameters, multiply-adds; receptive field
and jump where the chain is sequential).

The stage-config stack (:mod:`convlab.stack`) knows its stages from their text; a model written
in Python is known only by running it. A leaf module (one without children: ``Conv2d``,
``ReLU``, ``Linear``, or a module of your own) is hooked while the model runs, and each call is
one row: a module used twice is two calls, its parameters counted at the first. What ``forward``
does between modules (``x + y``, ``torch.flatten``) is not a module and is not a row. The chain
is sequential while each call takes the previous call's output (the first call, the images):
there the receptive field is worked out by the stack's own rules (:data:`convlab.fields.FIELDS`,
each call of an allow-listed torch.nn class read back as its stage, :func:`convlab.modules.stage_of`);
from a call that takes anything else (a residual sum), or a module whose reach convlab does not
know, on, it is not shown. Multiply-adds are those of ``Conv2d``, ``ConvTranspose2d`` and
``Linear``, per image, as the stack's table counts them (:data:`convlab.stack.COSTS`; held in the
tests to ``torch.utils.flop_counter``, which imports ``torch._dynamo``: seconds). torch is imported
inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from convlab.errors import ConvlabError
from convlab.fields import EVERY, FIELDS, STAYS, AxisField
from convlab.geometry import hw
from convlab.layers import Shape, ShapeError, UnreadWindow, stage_output_shape
from convlab.modules import call_text, stage_of
from convlab.stack import COSTS, jump_text, table_lines
from convlab.stages import SoftmaxConfig, StageConfig

if TYPE_CHECKING:
    import torch
    from rich.text import Text
    from torch import nn

# Leaf modules outside convlab's allow-list (modules.SIGNATURES, read back as their stages) whose
# reach convlab knows: each value from the values at its own position (torch.nn class names) ...
PER_POSITION = frozenset({
    "ReLU6", "PReLU", "RReLU", "CELU", "SELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "Softsign",
    "Tanhshrink", "LogSigmoid", "AlphaDropout",
})
# ... every input value (a normalisation over the whole map: each value, through the map's mean) ...
READS_ALL = frozenset({"Bilinear", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "InstanceNorm2d", "GroupNorm"})
# ... or, as a stage kind, for the field only: LogSoftmax mixes what Softmax over the same dim mixes.
READ_AS = {"LogSoftmax": lambda m: SoftmaxConfig(m.dim)}

ALL = "all"  # a receptive field of the whole input


class ModelError(ConvlabError):
    """The model cannot run on the dataset's images, or has nothing convlab can show."""


@dataclass(frozen=True)
class Call:
    """One call of a leaf module in the model's forward pass."""

    index: int  # in call order, from 1
    name: str  # the module's name in the model ('features.0'); the model's class name when it is itself a leaf
    module: nn.Module
    input_shape: Shape | None  # per image; None: its first argument is not a tensor
    output_shape: Shape | None  # per image; None: it does not return one tensor (a tuple, ...)
    parameters: int  # its parameters not counted at an earlier call
    shared_with: int | None  # the earlier call of the same module, when it is used again
    multiply_adds: int  # per image
    # Receptive field (H, W) in input pixels, ALL, or None where the chain is not sequential.
    field: tuple[int, int] | str | None
    # Per step of a map's output (a Fraction after going back up, 0 along an axis mixed whole); None: no map, or no field.
    jump: tuple[int | Fraction, int | Fraction] | None
    tag: str  # '01-conv2d': its pictures' tag, in call order
    # False: some outputs read less than ``field`` (after a transposed convolution or an upsampling).
    exact: bool = True

    @property
    def prefix(self) -> str:
        """The tag its pictures go under, as a stack stage's."""
        return self.tag

    @property
    def layer(self) -> str:
        """The module as torch prints it: ``Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))``."""
        return f"{type(self.module).__name__}({self.module.extra_repr()})"

    @property
    def is_map(self) -> bool:
        return self.output_shape is not None and len(self.output_shape) == 3

    @property
    def is_vector(self) -> bool:
        return self.output_shape is not None and len(self.output_shape) == 1


# ----------------------------------------------------------------------------- hooks


@dataclass
class Recorded:
    """What one call took and gave (the whole batch)."""

    name: str
    module: nn.Module
    input: Any
    output: Any = None


@dataclass
class Recorder:
    calls: list[Recorded] = field(default_factory=list)


def leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every leaf module (no children) with its name, each module once."""
    found = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    return [(name or type(model).__name__, m) for name, m in found]


@contextlib.contextmanager
def hooked(model: nn.Module) -> Iterator[Recorder]:
    """Record every leaf module call while the block runs the model."""
    recorder = Recorder()
    handles = []

    def before(name: str) -> Any:
        def hook(module: nn.Module, args: tuple) -> None:
            recorder.calls.append(Recorded(name, module, args[0] if args else None))
        return hook

    def after(module: nn.Module, args: tuple, output: Any) -> None:
        # The latest open call of this module: leaves do not nest.
        call = next(c for c in reversed(recorder.calls) if c.module is module and c.output is None)
        call.output = output

    try:
        for name, m in leaves(model):
            handles.append(m.register_forward_pre_hook(before(name)))
            handles.append(m.register_forward_hook(after))
        yield recorder
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode (dropout off, batch norm's running statistics) for the block, then
    in the mode it was in, module by module."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def run_model(model: nn.Module, x: torch.Tensor) -> tuple[Any, list[Recorded]]:
    """The model's output for ``x`` and each leaf call, in call order, without gradients.

    ``no_grad``, not ``inference_mode``: the user's model may make or cache tensors in its forward
    (a lazy module's parameters), which inference mode would make unusable for training it later.
    """
    import torch

    with hooked(model) as recorder, torch.no_grad():
        try:
            out = model(x)
        except ConvlabError:
            raise
        except Exception as exc:  # the user's own model: name where it failed
            raise ModelError(_failure(model, x, recorder, exc)) from None
    return out, recorder.calls


def _failure(model: nn.Module, x: Any, recorder: Recorder, exc: Exception) -> str:
    what = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    where = ""
    open_calls = [c for c in recorder.calls if c.output is None]
    if open_calls:
        c = open_calls[-1]
        where = f" in call {recorder.calls.index(c) + 1}, {c.name} {type(c.module).__name__}({c.module.extra_repr()})"
    shape = tuple(x.shape[1:])
    return f"model {type(model).__name__} cannot run on the images {shape} (C, H, W){where}: {type(exc).__name__}: {what}"


# ----------------------------------------------------------------------------- the calls


def _per_image(value: Any) -> Shape | None:
    import torch

    if isinstance(value, torch.Tensor) and value.dim() >= 2:
        return tuple(value.shape[1:])
    return None


def _stage(module: nn.Module) -> StageConfig | None:
    """The stage a call stands for, where its reach is known: an allow-listed class read back, or one
    read as a stage kind; None otherwise."""
    read = READ_AS.get(type(module).__name__)
    return read(module) if read is not None else stage_of(module)


def _reaches(module: nn.Module, stage: StageConfig | None, shape: Shape | None, out: Shape | None) -> Any:
    """What the call's outputs read of its input along H and W (a pair of :class:`~convlab.fields.Reach`),
    EVERY (each reads every input value), or None where convlab cannot tell."""
    kind = type(module).__name__
    if shape is None or out is None:
        return None
    if kind in READS_ALL:
        return EVERY
    if kind in PER_POSITION and shape == out:
        return STAYS
    if stage is None:
        return None
    try:
        if tuple(stage_output_shape(stage, shape)) != tuple(out):
            return None  # not the stage's shapes (a Linear over a map's last axis): not its reach either
    except ShapeError:
        return None
    return FIELDS[stage.kind](stage, shape, out)


def _multiply_adds(stage: StageConfig | None, shape: Shape | None, out: Shape | None) -> int:
    """Per image, as the stack's table counts the stage (:data:`convlab.stack.COSTS`): each output value
    of a Conv2d reads in/groups x kH x kW inputs, a Linear's in_features; a ConvTranspose2d stamps each
    input value's out/groups x kH x kW taps."""
    import math

    if stage is None or shape is None or out is None:
        return 0
    if stage.kind == "linear" and len(out) > 1:  # applied along the last axis of a larger tensor: once per row
        return math.prod(out[:-1]) * COSTS["linear"](stage, shape[-1:], out[-1:])[1]
    try:
        return COSTS[stage.kind](stage, shape, out)[1]
    except (IndexError, ValueError, ZeroDivisionError):
        return 0


def _check_pool(model: nn.Module, index: int, r: Recorded, stage: StageConfig | None, shape: Shape | None) -> None:
    """A MaxPool2d call with a window of padding only: refused, as a stack's (its backward corrupts memory)."""
    if stage is None or stage.kind != "pool" or shape is None or len(shape) != 3:
        return
    try:
        stage_output_shape(stage, shape)
    except UnreadWindow as exc:
        fix = " or ".join(call_text(c) for c in exc.fits) or "a larger input, or less dilation or padding"
        raise ModelError(f"model {type(model).__name__}, call {index} {r.name} {call_text(stage)}: {exc.reason}; use {fix}") from None
    except ShapeError:
        pass  # it ran: torch took it


def calls_of(model: nn.Module, x: torch.Tensor, recorded: Sequence[Recorded]) -> list[Call]:
    """The table's rows from one recorded forward pass of ``x`` (a batch)."""
    width = max(2, len(str(len(recorded))))
    counted: set[int] = set()
    first_call: dict[int, int] = {}
    # Each axis's field so far (fields.AxisField, composed as a stack's); EVERY: every input value;
    # known False: the chain is no longer sequential, or a module's reach is unknown.
    fields: Any = (AxisField(), AxisField())
    known = True
    previous: Any = x
    out = []
    for index, r in enumerate(recorded, 1):
        params = [p for p in r.module.parameters() if id(p) not in counted]
        counted |= {id(p) for p in params}
        shared = first_call.setdefault(id(r.module), index)
        input_shape, output_shape = _per_image(r.input), _per_image(r.output)
        stage = _stage(r.module)
        _check_pool(model, index, r, stage, input_shape)
        if r.input is previous and known and fields is not EVERY:
            reaches = _reaches(r.module, stage, input_shape, output_shape)
            if reaches is EVERY:
                fields = EVERY
            elif reaches is None:
                known = False
            else:
                sizes = output_shape[1:] if len(output_shape) == 3 else (1, 1)
                fields = (fields[0].then(reaches[0], sizes[0]), fields[1].then(reaches[1], sizes[1]))
        elif fields is not EVERY:
            known = False  # from here on the chain is not sequential
        field: Any = ALL if fields is EVERY else (fields[0].size, fields[1].size) if known else None
        is_map = output_shape is not None and len(output_shape) == 3
        jump = tuple(_whole(f.jump) for f in fields) if known and fields is not EVERY and is_map else None
        out.append(Call(
            index=index, name=r.name, module=r.module, input_shape=input_shape, output_shape=output_shape,
            parameters=sum(p.numel() for p in params), shared_with=shared if shared != index else None,
            multiply_adds=_multiply_adds(stage, input_shape, output_shape), field=field, jump=jump,
            tag=f"{index:0{width}d}-{type(r.module).__name__.lower()}",
            exact=not (known and fields is not EVERY) or all(f.exact for f in fields),
        ))
        previous = r.output
    return out


def _whole(value: Fraction) -> int | Fraction:
    return int(value) if value.denominator == 1 else value


def trace(model: nn.Module, input_shape: Shape, device: str = "cpu") -> ModelTable:
    """Run ``model`` once on two blank images of ``input_shape`` and tabulate its leaf calls."""
    import torch

    x = torch.zeros(2, *input_shape, device=device)
    with evaluating(model):
        out, recorded = run_model(model, x)
    if not recorded:
        raise ModelError(
            f"model {type(model).__name__} called no torch.nn module in its forward pass; convlab shows the outputs of "
            "the modules it calls (nn.Conv2d, nn.ReLU, ...), so there is nothing to show"
        )
    calls = calls_of(model, x, recorded)
    total = sum(p.numel() for p in model.parameters())
    return ModelTable(type(model).__name__, tuple(input_shape), calls, total, _per_image(out))


# ----------------------------------------------------------------------------- the table

NOTES = [
    "output: per image, (C, H, W) for a map or (F,) for features",
    "a module called twice is two calls; its parameters are counted at its first",
    "multiply-adds: per image, of Conv2d, ConvTranspose2d and Linear (torch.utils.flop_counter counts 2 flops each); "
    "other modules are not counted",
    "receptive field: the input pixels one output value depends on (padding included), while each call "
    "takes the previous call's output, by the rules of convlab explain stack ('<=': the most any output reads, after "
    "going back up; all: every input value); jump: how far that window moves in the input per step of the output",
    "what forward does between modules (x + y, torch.flatten) is not a module and has no row",
]


@dataclass(frozen=True)
class ModelTable:
    """A model's leaf calls, as :class:`convlab.stack.StackTable` tabulates a stack's stages."""

    model: str  # its class name
    input_shape: Shape
    calls: list[Call]
    model_parameters: int  # every parameter of the model, as torch counts them
    # Per image, what the model returns (its forward may do more after its last call); None: not one tensor.
    output_shape: Shape | None

    @property
    def parameters(self) -> int:
        return sum(c.parameters for c in self.calls)

    @property
    def multiply_adds(self) -> int:
        return sum(c.multiply_adds for c in self.calls)

    @property
    def notes(self) -> list[str]:
        notes = list(NOTES)
        outside = self.model_parameters - self.parameters
        if outside:
            notes.append(f"{outside:,} of the model's parameters belong to modules with children, which are not called "
                         "as leaves; they are not in any row")
        return notes

    def _cells(self) -> list[list[str]]:
        whole = f"all {'x'.join(map(str, self.input_shape[1:]))}"
        rows = [["call", "module", "layer", "output", "parameters", "multiply-adds", "receptive field", "jump"],
                ["", "input", "", _shape_cell(self.input_shape), "", "", "1", "1"]]
        for c in self.calls:
            params = f"{c.parameters:,}" if c.shared_with is None else f"call {c.shared_with}'s"
            rf = "-" if c.field is None else whole if c.field == ALL else ("" if c.exact else "<=") + hw(c.field)
            rows.append([str(c.index), c.name, c.layer, _shape_cell(c.output_shape), params, f"{c.multiply_adds:,}",
                         rf, "-" if c.jump is None else hw(tuple(jump_text(j) for j in c.jump))])
        rows.append(["", "total", "", "", f"{self.parameters:,}", f"{self.multiply_adds:,}", "", ""])
        return rows

    def lines(self) -> list[tuple[str, str]]:
        """``(style, text)`` lines; the style is decoration only."""
        title = f"{self.model}: {len(self.calls)} leaf module call(s) on {_shape_cell(self.input_shape)} images"
        return [("bold", title), *table_lines(self._cells(), right={0, 4, 5, 6, 7}, notes=self.notes)]

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def rich(self) -> list[Text]:
        from rich.text import Text

        return [Text(text, style=style) for style, text in self.lines()]


def _shape_cell(shape: Shape | None) -> str:
    if shape is None:
        return "(not one tensor)"
    return f"({shape[0]},)" if len(shape) == 1 else str(tuple(shape))
