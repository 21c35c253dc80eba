"""Receptive fields and jumps of every stage kind, torch-free: what one output value of a stage
reads of the stack's input, end to end, and how far that moves per output step.

Along each axis, output o of a layer reads the input positions first(o)..last(o), at most
``span`` of them (:class:`Reach`; each kind's rule in :data:`FIELDS`, beside ``stack.COSTS``).
Composed over a stack (padding included), that gives each stage's field: the most input pixels,
end to end, one output value can depend on. Every output of a stack of convolutions and pools
reads a window of exactly that size, moved ``jump`` pixels per output step. Going back up (a
transposed convolution, an upsampling) the jump is a fraction and outputs read different amounts
(kernel 3, stride 2: 1 or 2 input values by turns): the field is then the most any output reads,
and some read less. A layer that mixes a whole axis (Softmax over H or W) gives every output the
whole axis, jump 0; Linear (and Softmax over features) every input value. The tests hold every
field to autograd: the pixels with a non-zero gradient for one output value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from convlab.geometry import layer_padding, pool_stride, span
from convlab.layers import Shape
from convlab.stages import STAGE_KINDS, ConvConfig, StageConfig
from convlab.upsampling import transposed_axes, upsample_axes


@dataclass(frozen=True)
class Reach:
    """What one layer's outputs read of its input along one axis: output ``o`` reads positions
    ``first(o)`` to ``last(o)``, at most ``span`` of them; the window moves ``jump`` positions per
    output step on average and at most ceil(m * jump) over m steps. Both ends never move back.
    ``taps``: the positions output ``o`` reads (all of first..last unless set: dilation skips some);
    ``uniform``: every output reads exactly ``span`` (padding included)."""

    span: int
    jump: Fraction
    first: Callable[[int], int]
    last: Callable[[int], int]
    uniform: bool = True
    taps: Callable[[int], Iterable[int]] | None = None

    def read(self, o: int) -> Iterable[int]:
        return range(self.first(o), self.last(o) + 1) if self.taps is None else self.taps(o)


STAY = Reach(1, Fraction(1), lambda o: o, lambda o: o)
STAYS = (STAY, STAY)
# A field rule gives a pair of Reach (H, W), or EVERY: each output depends on every input value.
EVERY = None


def _window_reach(cfg: Any, shape: Shape, out: Shape) -> tuple[Reach, Reach]:
    stride = cfg.stride if isinstance(cfg, ConvConfig) else pool_stride(cfg)
    reaches = []
    for k, d, s, (before, _) in zip(cfg.kernel_size, cfg.dilation, stride, layer_padding(cfg)):
        n = span(k, d)
        reaches.append(Reach(
            n, Fraction(s), lambda o, s=s, b=before: o * s - b, lambda o, s=s, b=before, n=n: o * s - b + n - 1,
            taps=lambda o, s=s, b=before, n=n, d=d: range(o * s - b, o * s - b + n, d),
        ))
    return tuple(reaches)


def _transposed_reach(cfg: Any, shape: Shape, out: Shape) -> tuple[Reach, Reach]:
    """Output o takes input i through tap t where i*stride + t*dilation - padding = o: inputs from
    ceil((o + padding - (span - 1)) / stride) to floor((o + padding) / stride) (with dilation some
    between are skipped)."""
    reaches = []
    for a in transposed_axes(cfg, *shape[1:]):
        s, p, back = a.stride, a.pad, a.pad - (a.span - 1)
        taps = [t * a.dilation for t in range(a.kernel)]
        reaches.append(Reach(
            (a.span - 1) // s + 1, Fraction(1, s), lambda o, s=s, b=back: -(-(o + b) // s), lambda o, s=s, p=p: (o + p) // s, s == 1,
            taps=lambda o, s=s, p=p, taps=taps: [(o + p - t) // s for t in reversed(taps) if (o + p - t) % s == 0],
        ))
    return tuple(reaches)


def _upsample_reach(cfg: Any, shape: Shape, out: Shape) -> tuple[Reach, Reach]:
    return tuple(
        Reach(a.reads, a.ratio, a.first, a.last, a.copies, lambda o, a=a: sorted({a.first(o), a.last(o)}))
        for a in upsample_axes(cfg, *shape[1:])
    )


def _softmax_reach(cfg: Any, shape: Shape, out: Shape) -> tuple[Reach, Reach] | None:
    if len(shape) == 1:
        return EVERY  # over the features, which come from every position
    dim = 1 if cfg.dim is None else cfg.dim % 4
    if dim == 1:
        return STAYS  # across the channels of each position
    whole = Reach(shape[dim - 1], Fraction(0), lambda o: 0, lambda o, n=shape[dim - 1]: n - 1)
    return (whole, STAY) if dim == 2 else (STAY, whole)


def _stays(cfg: Any, shape: Shape, out: Shape) -> tuple[Reach, Reach]:
    return STAYS


def _every(cfg: Any, shape: Shape, out: Shape) -> None:
    return EVERY


# Each stage kind's reach along H and W, beside COSTS: every kind not named reads one position.
FIELDS: dict[str, Callable[[Any, Shape, Shape], tuple[Reach, Reach] | None]] = {kind: _stays for kind in STAGE_KINDS} | {
    "conv": _window_reach, "pool": _window_reach, "convtranspose": _transposed_reach, "upsample": _upsample_reach,
    "softmax": _softmax_reach, "linear": _every,
}

# Past this many outputs on an axis, a field after going back up is bounded from the strides
# instead of worked out output by output (explain answers instantly at any --size).
COUNTED_OUTPUTS = 1 << 10


@dataclass(frozen=True)
class AxisField:
    """A stage's receptive field along one axis: ``size`` input pixels end to end (padding
    included) at most; output o reads input positions ``lo(o)`` to ``hi(o)`` at most, none at all
    where ``empty(o)`` (its window falls between a transposed convolution's stamps)."""

    size: int = 1
    reaches: tuple[Reach, ...] = ()
    lo: Callable[[int], int] = STAY.first
    hi: Callable[[int], int] = STAY.last
    empty: Callable[[int], bool] = lambda o: False
    # Every output reads a window of exactly ``size``; False: some read less (after going back up).
    exact: bool = True

    @property
    def jump(self) -> Fraction:
        return math.prod((r.jump for r in self.reaches), start=Fraction(1))

    def moves(self, steps: int) -> int:
        """How far, at most, the window moves over ``steps`` output steps."""
        for reach in reversed(self.reaches):
            steps = math.ceil(steps * reach.jump)
        return steps

    def then(self, reach: Reach, outputs: int) -> AxisField:
        """The field one stage on, whose output has ``outputs`` positions on this axis."""
        if reach is STAY:
            return self
        # Both ends move forward with the output, so an output reads from its first position's
        # first to its last position's last (each end worked out once per position: the cache).
        lo, hi = functools.cache(lambda o: self.lo(reach.first(o))), functools.cache(lambda o: self.hi(reach.last(o)))
        empty = functools.cache(lambda o: reach.first(o) > reach.last(o) or hi(o) < lo(o))
        reaches = (*self.reaches, reach)
        size, exact = self.size + self.moves(reach.span - 1), self.exact and reach.uniform
        if not all(r.uniform for r in reaches) and outputs <= COUNTED_OUTPUTS:
            # Gone back up: outputs may differ, so each is worked out (within the bound above).
            extents = {0 if empty(o) else hi(o) - lo(o) + 1 for o in range(outputs)}
            size, exact = max(extents), len(extents) == 1
        return AxisField(size, reaches, lo, hi, empty, exact)


def stage_fields(stages: Sequence[StageConfig], shapes: Sequence[Shape]) -> list[tuple[AxisField, AxisField] | None]:
    """Each stage's field along H and W (None: every input value), from the stages' shapes."""
    fields: tuple[AxisField, AxisField] | None = (AxisField(), AxisField())
    out = []
    for cfg, shape, after in zip(stages, shapes, shapes[1:]):
        reaches = FIELDS[cfg.kind](cfg, shape, after)
        if fields is not None:
            if reaches is EVERY:
                fields = None
            else:
                sizes = after[1:] if len(after) == 3 else (1, 1)
                fields = (fields[0].then(reaches[0], sizes[0]), fields[1].then(reaches[1], sizes[1]))
        out.append(fields)
    return out
