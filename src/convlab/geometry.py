"""Window arithmetic, torch-free: output sizes, spans, padding, edges, and a layer's call as text.

Plain integers only, so ``convlab explain`` and ``convlab demo`` answer without importing
torch; the tests hold every rule here against a real module. Coordinates are input
coordinates on one axis: negative = padding before the input, ``size`` and on = after it.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from convlab.config import ConvConfig, LayerConfig, Pair, PoolConfig
from convlab.stages import ConvTranspose2dConfig, UpsampleConfig

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

def axis_windows(cfg: LayerConfig | ConvTranspose2dConfig, height: int, width: int) -> tuple[AxisWindows, AxisWindows]:
    """Where the windows sit on each axis; a ConvTranspose2d's are its direct convolution's, over
    the zero-inserted input (:class:`ZeroInsertedWindows`)."""
    if isinstance(cfg, ConvTranspose2dConfig):
        return tuple(a.windows() for a in transposed_axes(cfg, height, width))
    mode = cfg.padding_mode if isinstance(cfg, ConvConfig) else "zeros"
    return tuple(
        AxisWindows(a, before, after, mode)
        for a, (before, after) in zip(axis_arithmetic(cfg, height, width), layer_padding(cfg))
    )


def tap_kind(axes: tuple[AxisWindows, AxisWindows], row: int, col: int) -> str:
    """Where a tap at (row, col) lands: ``"input"``, ``"padding"``, ``"edge"`` (see AxisWindows.kind)
    or, in a transposed convolution's zero-inserted input, ``"zero"``."""
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
    shown = [
        (k, stride if k == "stride" else v)
        for k, v, default in arguments
        if k not in _REPR_NEVER.get(name, ()) and (k in _REPR_ALWAYS[name] or v != default)
    ]
    return f"{name}({', '.join([*head, *(f'{k}={_repr_value(v)}' for k, v in shown)])})"


def _repr_value(value: Any) -> str:
    return pair_tuple(value) if isinstance(value, tuple) else str(value)


def _lesson_value(value: Any) -> str:
    return pair_arg(value) if isinstance(value, tuple) else repr(value)


# ----------------------------------------------------------------------------- ConvTranspose2d


@dataclass(frozen=True)
class TransposedAxis:
    """ConvTranspose2d on one axis: out = (in - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1.

    It is the gradient of ``Conv2d`` with the same arguments, which maps any of ``stride`` input
    sizes (:attr:`conv_sizes`) to ``size``; output_padding picks one. As a direct convolution:
    ``stride - 1`` zeros inserted between the input values (:attr:`stretched`), ``dilation*(kernel
    - 1) - padding`` zeros of padding each side (:attr:`direct_pad`; negative crops), output_padding
    more after, then stride 1 with the kernel flipped.
    """

    axis: str
    size: int
    kernel: int
    stride: int
    pad: int
    output_padding: int
    dilation: int

    @property
    def span(self) -> int:
        return span(self.kernel, self.dilation)

    @property
    def out(self) -> int:
        return (self.size - 1) * self.stride - 2 * self.pad + self.dilation * (self.kernel - 1) + self.output_padding + 1

    @property
    def stretched(self) -> int:
        """The input with ``stride - 1`` zeros between neighbouring values."""
        return (self.size - 1) * self.stride + 1

    @property
    def direct_pad(self) -> int:
        return self.span - 1 - self.pad

    @property
    def conv_sizes(self) -> range:
        """The inputs Conv2d(kernel, stride, padding, dilation) maps to ``size``: output_padding 0, 1, ... gets each."""
        base = self.out - self.output_padding
        return range(max(base, 1), base + self.stride)

    @property
    def taps_read(self) -> tuple[int, int]:
        """The fewest and the most of the kernel's taps that land on input values, not on inserted
        zeros, over the outputs (away from the edges): the same for all only when the stride divides."""
        # Tap t lands on an input value when t*dilation is a multiple of the stride away from the
        # output's phase: with g = gcd(dilation, stride), every (stride/g)-th tap of the phases g divides.
        g = math.gcd(self.dilation, self.stride)
        every = self.stride // g
        most = -(-self.kernel // every)
        return (0 if g > 1 else self.kernel // every), most

    def formula(self) -> str:
        return (
            f"{self.axis}_out = ({self.size} - 1)*{self.stride} - 2*{self.pad} + {self.dilation}*({self.kernel}-1) "
            f"+ {self.output_padding} + 1 = {self.out}"
        )

    def windows(self) -> ZeroInsertedWindows:
        direct = AxisArithmetic(self.axis, self.stretched, self.kernel, 1, self.direct_pad, self.dilation)
        return ZeroInsertedWindows(direct, self.direct_pad, self.direct_pad + self.output_padding, "zeros", self.stride, self.output_padding)


@dataclass(frozen=True)
class ZeroInsertedWindows(AxisWindows):
    """The windows of a ConvTranspose2d's direct convolution, in the coordinates of the
    zero-inserted input: input value ``i`` sits at ``i*spread``, zeros between (kind ``"zero"``)."""

    spread: int = 1
    output_padding: int = 0

    @property
    def count(self) -> int:
        return self.arith.size + self.pad_before + self.pad_after - self.arith.span + 1

    def kind(self, t: int) -> str:
        if 0 <= t < self.arith.size:
            return "input" if t % self.spread == 0 else "zero"
        return super().kind(t)

    def extent(self, count: int | None = None) -> range:
        """Also the input rows a negative direct padding crops (read by no window)."""
        inner = super().extent(count)
        return range(min(inner.start, 0), max(inner.stop, self.arith.size))


def transposed_axes(cfg: ConvTranspose2dConfig, height: int, width: int) -> tuple[TransposedAxis, TransposedAxis]:
    return tuple(
        TransposedAxis(axis, n, k, s, p, op, d)
        for axis, n, k, s, p, op, d in zip(
            ("H", "W"), (height, width), cfg.kernel_size, cfg.stride, cfg.padding, cfg.output_padding, cfg.dilation
        )
    )


# ----------------------------------------------------------------------------- Upsample


def upsample_size(size: int, out_size: int | None, scale_factor: float | None) -> int:
    """nn.Upsample's output on one axis: ``size`` given, or floor(in * scale_factor) as PyTorch computes it."""
    if out_size is not None:
        return out_size
    return math.floor(float(size * scale_factor))


def _f32(value: float) -> float:
    """``value`` rounded to float32, as PyTorch's CPU kernels hold an index's scale."""
    return struct.unpack("f", struct.pack("f", value))[0]


@dataclass(frozen=True)
class UpsampleAxis:
    """Which input positions each output of nn.Upsample reads on one axis: one for ``nearest``
    (PyTorch's float32 index, exactly), the two neighbours around where the output falls for
    ``bilinear`` (worked out exactly; PyTorch's float32 rounding can give a neighbour a weight of
    1e-8 or so instead of 0, which no picture shows)."""

    size: int
    out: int
    mode: str
    # PyTorch's scale_factor for this axis, as the kernel gets it (None with size or recompute_scale_factor).
    scale_factor: float | None = None
    align_corners: bool = False

    @property
    def copies(self) -> bool:
        """Same size: PyTorch copies the input (nearest and bilinear alike), whatever the scale."""
        return self.out == self.size

    @functools.cached_property
    def ratio(self) -> Fraction:
        """Input positions per output position: the ratio the layer means."""
        if self.copies:
            return Fraction(1)
        if self.mode == "nearest" and self.out == 2 * self.size:
            return Fraction(1, 2)
        if self.align_corners:
            return Fraction(self.size - 1, self.out - 1) if self.out > 1 else Fraction(0)
        if self.scale_factor is not None:
            return 1 / Fraction(self.scale_factor).limit_denominator(10**6)
        return Fraction(self.size, self.out)

    @property
    def reads(self) -> int:
        """How many neighbouring input positions one output reads at most."""
        return 2 if self.mode == "bilinear" and not self.copies and self.size > 1 else 1

    def first(self, o: int) -> int:
        """The first input position output ``o`` reads."""
        if self.copies:
            return o
        if self.mode == "nearest":
            if self.out == 2 * self.size:
                return o >> 1  # PyTorch's shortcut for exactly twice the size
            return min(math.floor(_f32(_f32(o) * self._nearest_scale)), self.size - 1)
        return min(self._source(o)[0], self.size - 1)

    def last(self, o: int) -> int:
        """The last input position output ``o`` reads: bilinear's second neighbour where its weight is not 0."""
        first = self.first(o)
        if self.reads == 1 or first >= self.size - 1 or self._source(o) == (first, 0):
            return first
        return first + 1

    @property
    def _nearest_scale(self) -> float:
        """nearest's scale as the kernel holds it (float32)."""
        if self.scale_factor is not None and self.scale_factor > 0:
            return _f32(1.0 / self.scale_factor)
        return _f32(_f32(self.size) / self.out)

    def _source(self, o: int) -> tuple[int, int]:
        """Bilinear: where output ``o`` falls between the input positions (PyTorch's
        area_pixel_compute_source_index: before the first position, it is the first), as the
        position before it and how far past it (a numerator; 0: exactly on it)."""
        p, q = self.ratio.numerator, self.ratio.denominator
        if self.align_corners:
            return divmod(o * p, q)
        # ((o + 1/2) * p/q - 1/2) = ((2o + 1) p - q) / 2q
        whole, rest = divmod((2 * o + 1) * p - q, 2 * q)
        return (0, 0) if whole < 0 else (whole, rest)


def upsample_axes(cfg: UpsampleConfig, height: int, width: int) -> tuple[UpsampleAxis, UpsampleAxis]:
    sizes = cfg.size or (None, None)
    # With recompute_scale_factor PyTorch hands the kernel the sizes only, as for size.
    factors = cfg.scale_factor if cfg.scale_factor is not None and not cfg.recompute_scale_factor else (None, None)
    scales = cfg.scale_factor or (None, None)
    return tuple(
        UpsampleAxis(n, upsample_size(n, o, f), cfg.mode, k, bool(cfg.align_corners))
        for n, o, f, k in zip((height, width), sizes, scales, factors)
    )
