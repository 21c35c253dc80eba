"""Window arithmetic, torch-free: output sizes, spans, padding, edges, and a layer's call as text.

Plain integers only, so ``convlab explain`` and ``convlab demo`` answer without importing
torch; the tests hold every rule here against a real module. Coordinates are input
coordinates on one axis: negative = padding before the input, ``size`` and on = after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from convlab.stages import ConvConfig, ConvTranspose2dConfig, LayerConfig, PoolConfig
from convlab.values import Pair

# ----------------------------------------------------------------------------- text of pairs


def hw(pair: Pair | str) -> str:
    """``(3, 3)`` -> ``"3"``, ``(3, 5)`` -> ``"3x5"``; a padding word (``"same"``) as it is."""
    if isinstance(pair, str):
        return pair
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def pair_tuple(values: Iterable[int]) -> str:
    """``(3, 3)`` -> ``"(3, 3)"``, as PyTorch prints sizes (any length, e.g. a weight's shape)."""
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


def pair_arg(pair: Pair) -> str:
    """A keyword argument as a learner types it: ``3`` for ``(3, 3)``, else ``(3, 5)``."""
    return str(pair[0]) if pair[0] == pair[1] else pair_tuple(pair)


def as_written(pair: Pair) -> int | Pair:
    """``(3, 3)`` -> ``3``, as a learner writes a square size; ``(3, 5)`` stays a pair."""
    return pair[0] if pair[0] == pair[1] else pair


# ----------------------------------------------------------------------------- one axis


def span(kernel: int, dilation: int) -> int:
    """The input extent one window covers, dilation gaps included."""
    return dilation * (kernel - 1) + 1


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """PyTorch's ``padding='same'``: ``span - 1`` in all, the odd one out goes after."""
    total = span(kernel, dilation) - 1
    return total // 2, total - total // 2


def pool_stride(cfg: PoolConfig) -> Pair:
    return cfg.stride if cfg.stride is not None else cfg.kernel_size


def layer_padding(cfg: LayerConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(before, after)`` padding actually added on H and on W."""
    if isinstance(cfg, ConvConfig) and cfg.padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(cfg.kernel_size, cfg.dilation))
    pad = (0, 0) if cfg.padding == "valid" else cfg.padding
    return ((pad[0], pad[0]), (pad[1], pad[1]))


@dataclass(frozen=True)
class AxisArithmetic:
    """One spatial axis: out = floor_or_ceil((size + 2*pad - dilation*(kernel-1) - 1)/stride + 1).

    For ``padding='same'`` ``pad`` is the larger half, the one PyTorch's size checks see.
    """

    axis: str
    size: int
    kernel: int
    stride: int
    pad: int
    dilation: int
    ceil_mode: bool = False
    same: bool = False

    @property
    def span(self) -> int:
        return span(self.kernel, self.dilation)

    @property
    def padded(self) -> int:
        return self.size + 2 * self.pad

    @property
    def out(self) -> int:
        if self.same:
            return self.size
        n = self.padded - self.span
        if self.ceil_mode:
            # PyTorch rounds up even a negative n: a lone window that overhangs the padded
            # input by less than one stride is kept.
            out = -(-n // self.stride) + 1
            # PyTorch drops a last window that would start in the right padding only.
            if out > 0 and (out - 1) * self.stride >= self.size + self.pad:
                out -= 1
            return max(out, 0)
        if n < 0:
            return 0
        return n // self.stride + 1

    def taps(self, i: int) -> range:
        """The positions window ``i`` reads (padding before the input is negative)."""
        start = i * self.stride - self.pad
        return range(start, start + self.span, self.dilation)

    def unread_window(self) -> int | None:
        """The first window (from 0) none of whose taps lands on the input, only on padding or past
        it; None when every window reads an input value. PyTorch's max pooling starts each window at
        its first tap at or after 0 and stops at the input's end (``hstart += dilation`` while
        negative, ``hend = min(hstart + span, size)``): such a window gives -inf and, as its index,
        a position that is not in the input, which the backward pass then writes to.

        Only a window that starts in the padding can step over the input, and only when its taps
        are further apart than the input is long; and the last window always starts before the
        input's end (floor mode: it ends in the padding after, which is shorter than a window; ceil
        mode: PyTorch drops a window that would start past it). So the windows checked are those
        that start in the padding (none once dilation <= size: with padding at most half the kernel,
        PyTorch's rule, their last tap is at or after 0) and the last one."""
        count = self.out
        if not count:
            return None
        checked = [] if self.dilation <= self.size else range(min(count, -(-self.pad // self.stride)))
        for i in dict.fromkeys([*checked, count - 1]):
            taps = self.taps(i)
            first = 0 if taps.start >= 0 else -(taps.start // self.dilation)  # the first tap at or after 0
            if first >= len(taps) or taps[first] >= self.size:
                return i
        return None

    def formula(self) -> str:
        if self.same:
            return f"{self.axis}_out = {self.axis}_in = {self.size}  (padding='same', stride 1)"
        rounding = "ceil" if self.ceil_mode else "floor"
        return (
            f"{self.axis}_out = {rounding}(({self.size} + 2*{self.pad} - {self.dilation}*({self.kernel}-1) - 1)"
            f" / {self.stride} + 1) = {self.out}"
        )


def axis_arithmetic(cfg: LayerConfig, height: int, width: int) -> tuple[AxisArithmetic, AxisArithmetic]:
    if isinstance(cfg, ConvConfig):
        stride, ceil, same = cfg.stride, False, cfg.padding == "same"
    else:
        stride, ceil, same = pool_stride(cfg), cfg.ceil_mode, False
    return tuple(
        AxisArithmetic(axis, size, k, s, after, d, ceil, same)
        for axis, size, k, s, (_, after), d in zip(
            ("H", "W"), (height, width), cfg.kernel_size, stride, layer_padding(cfg), cfg.dilation
        )
    )


# ----------------------------------------------------------------------------- windows and taps


@dataclass(frozen=True)
class AxisWindows:
    """Where the windows of one axis sit, in input coordinates (negative = padding before).

    ``pad_before`` and ``pad_after`` are the padding actually added: they differ only for
    ``padding='same'`` with an odd total, where PyTorch puts the extra one after.
    """

    arith: AxisArithmetic
    pad_before: int
    pad_after: int
    # Non-zero padding modes copy input rows into the padding, so those rows are read there too.
    padding_mode: str = "zeros"

    @property
    def count(self) -> int:
        return self.arith.out

    @property
    def limit(self) -> int:
        """First coordinate past the padded input: taps at or beyond it are over the edge."""
        return self.arith.size + self.pad_after

    def start(self, i: int) -> int:
        return i * self.arith.stride - self.pad_before

    def taps(self, i: int) -> range:
        """Every tap of window ``i``, over-the-edge ones included."""
        start = self.start(i)
        return range(start, start + self.arith.span, self.arith.dilation)

    def kind(self, t: int) -> str:
        """``"input"``, ``"padding"``, or ``"edge"``: past the padded input, where only a
        ceil_mode window reaches and PyTorch ignores the tap."""
        if 0 <= t < self.arith.size:
            return "input"
        if -self.pad_before <= t < self.limit:
            return "padding"
        return "edge"

    def overhang(self, i: int) -> int:
        """How many taps of window ``i`` fall past the padded input (ceil_mode windows only)."""
        return sum(self.kind(t) == "edge" for t in self.taps(i))

    def extent(self, count: int | None = None) -> range:
        """The coordinates a drawing of the first ``count`` windows (default: all) needs:
        the padding, the input, and any tap past the edge."""
        count = self.count if count is None else count
        last = max((self.taps(i)[-1] for i in range(count)), default=0)
        return range(-self.pad_before, max(self.limit, last + 1))

def axis_windows(cfg: LayerConfig, height: int, width: int) -> tuple[AxisWindows, AxisWindows]:
    mode = cfg.padding_mode if isinstance(cfg, ConvConfig) else "zeros"
    return tuple(
        AxisWindows(a, before, after, mode)
        for a, (before, after) in zip(axis_arithmetic(cfg, height, width), layer_padding(cfg))
    )


def tap_kind(axes: tuple[AxisWindows, AxisWindows], row: int, col: int) -> str:
    """Where a tap at (row, col) lands: ``"input"``, ``"padding"``, ``"edge"`` (see AxisWindows.kind)
    or, in a transposed convolution's zero-inserted input, ``"zero"`` (see upsampling.py)."""
    kinds = {axes[0].kind(row), axes[1].kind(col)}
    for kind in ("edge", "padding", "zero"):
        if kind in kinds:
            return kind
    return "input"


# ----------------------------------------------------------------------------- MaxUnpool2d


@dataclass(frozen=True)
class UnpoolAxis:
    """MaxUnpool2d on one axis: out = (in - 1)*stride - 2*padding + kernel, or the output_size given."""

    axis: str
    size: int
    kernel: int
    stride: int
    pad: int
    output_size: int | None = None

    @property
    def default(self) -> int:
        return (self.size - 1) * self.stride - 2 * self.pad + self.kernel

    @property
    def accepted(self) -> range:
        """The output sizes PyTorch accepts: strictly within one stride of the default."""
        return range(max(self.default - self.stride + 1, 0), self.default + self.stride)

    @property
    def out(self) -> int:
        return self.default if self.output_size is None else self.output_size

    def formula(self) -> str:
        text = f"{self.axis}_out = ({self.size} - 1)*{self.stride} - 2*{self.pad} + {self.kernel} = {self.default}"
        if self.output_size is not None:
            text += f"; output_size gives {self.output_size}"
        return text


def unpool_axes(cfg: PoolConfig, height: int, width: int, output_size: Pair | None = None) -> tuple[UnpoolAxis, UnpoolAxis]:
    """MaxUnpool2d(kernel_size, stride, padding) of the MaxPool2d ``cfg`` (its dilation and ceil_mode play no part)."""
    sizes = output_size or (None, None)
    return tuple(
        UnpoolAxis(axis, n, k, s, p, o)
        for axis, n, k, s, p, o in zip(("H", "W"), (height, width), cfg.kernel_size, pool_stride(cfg), cfg.padding, sizes)
    )


# ----------------------------------------------------------------------------- a layer's call

_NEEDED = object()  # an argument without a default: every form shows it


def layer_arguments(cfg: LayerConfig | ConvTranspose2dConfig, *, unpool: bool = False) -> tuple[str, list[tuple[str, Any, Any]]]:
    """The module's class name and its keyword arguments, ``(keyword, value, PyTorch's default)``,
    in PyTorch's order. ``unpool``: the MaxUnpool2d that undoes the MaxPool2d ``cfg``."""
    if isinstance(cfg, ConvConfig):
        return "Conv2d", [
            ("kernel_size", cfg.kernel_size, _NEEDED), ("stride", cfg.stride, (1, 1)), ("padding", cfg.padding, (0, 0)),
            ("dilation", cfg.dilation, (1, 1)), ("groups", cfg.groups, 1), ("bias", cfg.bias, True),
            ("padding_mode", cfg.padding_mode, "zeros"),
        ]
    if isinstance(cfg, ConvTranspose2dConfig):  # in the order print(module) shows them
        return "ConvTranspose2d", [
            ("kernel_size", cfg.kernel_size, _NEEDED), ("stride", cfg.stride, (1, 1)), ("padding", cfg.padding, (0, 0)),
            ("dilation", cfg.dilation, (1, 1)), ("output_padding", cfg.output_padding, (0, 0)), ("groups", cfg.groups, 1),
            ("bias", cfg.bias, True),
        ]
    # PyTorch's default stride is None, which the module turns into the kernel size.
    head = [("kernel_size", cfg.kernel_size, _NEEDED), ("stride", cfg.stride, None), ("padding", cfg.padding, (0, 0))]
    if unpool:
        return "MaxUnpool2d", head
    if cfg.mode == "avg":
        return "AvgPool2d", [*head, ("ceil_mode", cfg.ceil_mode, False)]
    return "MaxPool2d", [*head, ("dilation", cfg.dilation, (1, 1)), ("ceil_mode", cfg.ceil_mode, False)]


# What print(module) shows beside the arguments that differ from their defaults (PyTorch's extra_repr).
_REPR_ALWAYS = {
    "Conv2d": ("kernel_size", "stride"),
    "ConvTranspose2d": ("kernel_size", "stride"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "MaxUnpool2d": ("kernel_size", "stride", "padding"),
}
_REPR_NEVER = {"AvgPool2d": ("ceil_mode",)}
# The lessons always show the argument they are about (ceil_mode on and off, stride 1 and 2).
_LESSON_ALWAYS = ("kernel_size", "stride", "ceil_mode")


def layer_call(
    cfg: LayerConfig | ConvTranspose2dConfig, in_channels: int | None = None, *, form: str = "module", unpool: bool = False
) -> str:
    """A layer's call as text, in one of three forms:

    - ``"module"``: what ``print(build_layer(cfg, in_channels))`` shows, e.g.
      ``Conv2d(3, 6, kernel_size=(3, 3), stride=(1, 1))``;
    - ``"lesson"``: the call a learner types in the demo, arguments given only:
      ``nn.MaxPool2d(kernel_size=3, ceil_mode=False)``, ``F.conv2d(input, kernel, stride=1)``;
    - ``"caption"``: every window setting in short, for a picture's title:
      ``Conv2d  kernel 3  stride 1  padding 0  dilation 1``.
    """
    name, arguments = layer_arguments(cfg, unpool=unpool)
    stride = pool_stride(cfg) if isinstance(cfg, PoolConfig) else cfg.stride
    if form == "caption":
        words = {"kernel_size": "kernel", "stride": "stride", "padding": "padding", "output_padding": "output_padding",
                 "dilation": "dilation"}
        parts = [f"{words[k]} {hw(stride if k == 'stride' else v)}" for k, v, _ in arguments if k in words]
        if "ceil_mode" in (k for k, _, _ in arguments):
            parts.append(f"ceil_mode={cfg.ceil_mode}")
        return "  ".join([name, *parts])
    if form == "lesson":
        if isinstance(cfg, (ConvConfig, ConvTranspose2dConfig)):
            # F.conv2d takes the kernel as a tensor; it has no bias flag nor padding_mode.
            head, name = ["input", "kernel"], "F.conv2d" if isinstance(cfg, ConvConfig) else "F.conv_transpose2d"
            arguments = [a for a in arguments if a[0] not in ("kernel_size", "bias", "padding_mode")]
        else:
            head, name = [], f"nn.{name}"
        shown = [(k, v) for k, v, default in arguments if (k in _LESSON_ALWAYS and v is not None) or v != default]
        return f"{name}({', '.join([*head, *(f'{k}={_lesson_value(v)}' for k, v in shown)])})"
    if form != "module":
        raise ValueError(f"unknown form {form!r}, choose from module, lesson, caption")
    if isinstance(cfg, ConvTranspose2dConfig):
        in_channels = cfg.in_channels
    head = [str(in_channels), str(cfg.out_channels)] if isinstance(cfg, (ConvConfig, ConvTranspose2dConfig)) else []
    # Conv2d, ConvTranspose2d and MaxUnpool2d keep pairs; the pools keep what build_layer gives them (as_written).
    keeps_pairs = isinstance(cfg, (ConvConfig, ConvTranspose2dConfig)) or unpool
    written = (lambda v: v) if keeps_pairs else (lambda v: as_written(v) if isinstance(v, tuple) else v)
    shown = [
        (k, written(stride if k == "stride" else v))
        for k, v, default in arguments
        if k not in _REPR_NEVER.get(name, ()) and (k in _REPR_ALWAYS[name] or v != default)
    ]
    return f"{name}({', '.join([*head, *(f'{k}={_repr_value(v)}' for k, v in shown)])})"


def _repr_value(value: Any) -> str:
    return pair_tuple(value) if isinstance(value, tuple) else str(value)


def _lesson_value(value: Any) -> str:
    return pair_arg(value) if isinstance(value, tuple) else repr(value)
