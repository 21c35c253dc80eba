"""Going back up, torch-free: the arithmetic of ConvTranspose2d and Upsample.

A transposed convolution is the gradient of the Conv2d with its arguments, and equals a direct
convolution over its input with ``stride - 1`` zeros put between the values (:class:`TransposedAxis`,
whose windows, :class:`ZeroInsertedWindows`, the demo and the animation draw). Upsample's output
sizes and the input positions each output reads are PyTorch's own (:class:`UpsampleAxis`). The
tests hold every rule here against the real modules.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from fractions import Fraction

from convlab.geometry import AxisArithmetic, AxisWindows, axis_windows, span
from convlab.stages import ConvTranspose2dConfig, LayerConfig, UpsampleConfig

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


def layer_windows(cfg: LayerConfig | ConvTranspose2dConfig, height: int, width: int) -> tuple[AxisWindows, AxisWindows]:
    """Where any window layer's windows sit on each axis; a ConvTranspose2d's are its direct
    convolution's, over the zero-inserted input."""
    if isinstance(cfg, ConvTranspose2dConfig):
        return tuple(a.windows() for a in transposed_axes(cfg, height, width))
    return axis_windows(cfg, height, width)
