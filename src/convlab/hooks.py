"""Any ``torch.nn.Module`` through forward hooks: the calls of its leaf modules in one forward
pass, in call order, and their table (output shape, parameters, multiply-adds; receptive field
and jump where the chain is sequential).

The stage-config stack (:mod:`convlab.stack`) knows its stages from their text; a model written
in Python is known only by running it. A leaf module (one without children: ``Conv2d``,
``ReLU``, ``Linear``, or a module of your own) is hooked while the model runs, and each call is
one row: a module used twice is two calls, its parameters counted at the first. What ``forward``
does between modules (``x + y``, ``torch.flatten``) is not a module and is not a row. The chain
is sequential while each call takes the previous call's output (the first call, the images):
there the receptive field is worked out as for a stack; from a call that takes anything else (a
residual sum) on, it is not shown. Multiply-adds are those of ``Conv2d`` and ``Linear``, per
image, as the stack's table counts them (``torch.utils.flop_counter``, which the tests hold them
to, imports ``torch._dynamo``: seconds). torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convlab.errors import ConvlabError
from convlab.geometry import hw, span
from convlab.layers import Shape

if TYPE_CHECKING:
    import torch
    from rich.text import Text
    from torch import nn

# Leaf modules that map each value from the values at its own position: the receptive field
# and jump go through them unchanged (torch.nn class names).
KEEPS_FIELD = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "Sigmoid", "Tanh", "GELU", "ELU", "CELU", "SELU", "SiLU", "Mish",
    "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "Softsign", "Tanhshrink", "LogSigmoid", "Softmax", "LogSoftmax",
    "BatchNorm2d", "InstanceNorm2d", "Dropout", "Dropout2d", "AlphaDropout", "Identity", "Flatten",
})
# Leaf modules whose outputs each read every input value.
READS_ALL = frozenset({"Linear", "Bilinear", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"})
WINDOWS = frozenset({"Conv2d", "MaxPool2d", "AvgPool2d"})

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
    jump: tuple[int, int] | None
    tag: str  # '01-conv2d': its pictures' tag, in call order

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


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _window(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    kernel = _pair(module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    return (span(kernel[0], dilation[0]), span(kernel[1], dilation[1])), stride


def _next_field(module: nn.Module, rf: Any, jump: Any) -> tuple[Any, Any]:
    """The receptive field and jump after ``module``, or (None, None) if convlab cannot tell."""
    kind = type(module).__name__
    if rf == ALL:
        return ALL, None
    if kind in KEEPS_FIELD:
        return rf, jump
    if kind in READS_ALL:
        return ALL, None
    if kind in WINDOWS:
        spans, strides = _window(module)
        return (tuple(r + (s - 1) * j for r, s, j in zip(rf, spans, jump)),
                tuple(j * s for j, s in zip(jump, strides)))
    return None, None


def _multiply_adds(module: nn.Module, output_shape: Shape | None) -> int:
    """Per image: each output value of a Conv2d reads in/groups x kH x kW inputs, of a Linear in_features."""
    import math

    from torch import nn

    if output_shape is None:
        return 0
    if type(module) is nn.Conv2d:
        kh, kw = module.kernel_size
        return math.prod(output_shape) * module.in_channels // module.groups * kh * kw
    if type(module) is nn.Linear:
        return math.prod(output_shape) * module.in_features
    return 0


def calls_of(model: nn.Module, x: torch.Tensor, recorded: Sequence[Recorded]) -> list[Call]:
    """The table's rows from one recorded forward pass of ``x`` (a batch)."""
    width = max(2, len(str(len(recorded))))
    counted: set[int] = set()
    first_call: dict[int, int] = {}
    rf: Any = (1, 1)
    jump: Any = (1, 1)
    previous: Any = x
    out = []
    for index, r in enumerate(recorded, 1):
        params = [p for p in r.module.parameters() if id(p) not in counted]
        counted |= {id(p) for p in params}
        shared = first_call.setdefault(id(r.module), index)
        if r.input is previous and rf is not None:
            rf, jump = _next_field(r.module, rf, jump)
        elif rf != ALL:
            rf, jump = None, None  # from here on the chain is not sequential
        output_shape = _per_image(r.output)
        shown_jump = jump if rf not in (None, ALL) and output_shape is not None and len(output_shape) == 3 else None
        out.append(Call(
            index=index, name=r.name, module=r.module, input_shape=_per_image(r.input), output_shape=output_shape,
            parameters=sum(p.numel() for p in params), shared_with=shared if shared != index else None,
            multiply_adds=_multiply_adds(r.module, output_shape), field=rf, jump=shown_jump,
            tag=f"{index:0{width}d}-{type(r.module).__name__.lower()}",
        ))
        previous = r.output
    return out


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
    "multiply-adds: per image, of Conv2d and Linear (torch.utils.flop_counter counts 2 flops each); "
    "other modules are not counted",
    "receptive field: the input pixels one output value depends on (padding included), while each call "
    "takes the previous call's output; jump: how far that window moves in the input per step of the output",
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
            rf = "-" if c.field is None else whole if c.field == ALL else hw(c.field)
            rows.append([str(c.index), c.name, c.layer, _shape_cell(c.output_shape), params, f"{c.multiply_adds:,}",
                         rf, "-" if c.jump is None else hw(c.jump)])
        rows.append(["", "total", "", "", f"{self.parameters:,}", f"{self.multiply_adds:,}", "", ""])
        return rows

    def lines(self) -> list[tuple[str, str]]:
        """``(style, text)`` lines; the style is decoration only."""
        cells = self._cells()
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        right = {0, 4, 5, 6, 7}

        def line(row: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        out = [("bold", f"{self.model}: {len(self.calls)} leaf module call(s) on {_shape_cell(self.input_shape)} images")]
        out.append(("bold", line(cells[0])))
        out += [("", line(row)) for row in cells[1:-1]]
        out.append(("bold", line(cells[-1])))
        out += [("", "")] + [("", f"note: {n}") for n in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def rich(self) -> list[Text]:
        from rich.text import Text

        return [Text(text, style=style) for style, text in self.lines()]


def _shape_cell(shape: Shape | None) -> str:
    if shape is None:
        return "(not one tensor)"
    return f"({shape[0]},)" if len(shape) == 1 else str(tuple(shape))
