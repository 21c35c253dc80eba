"""Which input rows a layer's windows read, worked out so the cost does not grow with the size.

Window ``i`` taps ``t = i*stride + j*dilation - pad_before`` (``j < kernel``). Away from both
ends the taps repeat every ``stride`` rows, so the rows never read are kept as runs, some
repeating with a period (:class:`Rows`): only the ends and one period are traced row by row.
Small inputs are traced row by row outright. ``explain`` lists the result; the tests hold it
against a tap-by-tap listing and real modules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from math import gcd

from convlab.geometry import AxisWindows, UnpoolAxis

# The most rows traced one by one per axis (well under a second): inputs up to this size are
# traced outright, larger ones at their ends and over one stride; where windows or strides this
# long make even that too much, the rows are not listed (None).
TRACE_LIMIT = 1 << 17

Run = tuple[int, int]  # [start, stop)


@dataclass(frozen=True)
class Block:
    """``repeats`` periods from ``start``; in each, the runs ``(offset, length)``.

    A periodic block starts on a row that is read, so its runs never touch across periods.
    """

    start: int
    period: int
    runs: tuple[tuple[int, int], ...]
    repeats: int = 1

    @property
    def stop(self) -> int:
        return self.start + self.period * self.repeats

    def count(self) -> int:
        return self.repeats * sum(n for _, n in self.runs)

    def each(self, reverse: bool = False) -> Iterator[Run]:
        periods = reversed(range(self.repeats)) if reverse else range(self.repeats)
        for m in periods:
            base = self.start + m * self.period
            for offset, n in reversed(self.runs) if reverse else self.runs:
                yield base + offset, base + offset + n

    def between(self, lo: int, hi: int) -> list[Block]:
        """This block cut to [lo, hi): whole periods stay one block, the cut ones become runs."""
        p = self.period
        touched = (max(0, (lo - self.start) // p), min(self.repeats, -(-(hi - self.start) // p)))
        whole = (max(0, -(-(lo - self.start) // p)), min(self.repeats, (hi - self.start) // p))
        if whole[0] >= whole[1]:
            return _cut(self._periods(*touched), lo, hi)
        middle = Block(self.start + whole[0] * p, p, self.runs, whole[1] - whole[0])
        return [*_cut(self._periods(touched[0], whole[0]), lo, hi), middle, *_cut(self._periods(whole[1], touched[1]), lo, hi)]

    def _periods(self, first: int, stop: int) -> Iterator[Run]:
        return Block(self.start + first * self.period, self.period, self.runs, max(0, stop - first)).each()


def _cut(runs: Iterable[Run], lo: int, hi: int) -> list[Block]:
    return _plain((max(a, lo), min(b, hi)) for a, b in runs)


def _plain(runs: Iterable[Run]) -> list[Block]:
    return [Block(a, b - a, ((0, b - a),)) for a, b in runs if b > a]


@dataclass(frozen=True, eq=False)
class Rows:
    """A set of rows (or columns) as ordered runs: what 'never read' lists, at any size."""

    blocks: tuple[Block, ...] = ()

    @classmethod
    def of(cls, rows: Iterable[int]) -> Rows:
        """From rows in increasing order."""
        runs: list[list[int]] = []
        for r in rows:
            if runs and r == runs[-1][1]:
                runs[-1][1] = r + 1
            else:
                runs.append([r, r + 1])
        return cls(tuple(_plain((a, b) for a, b in runs)))

    def runs(self, reverse: bool = False) -> Iterator[Run]:
        """Maximal runs, in order (or from the last): lazy, so the first few cost little."""
        pending: Run | None = None
        for block in reversed(self.blocks) if reverse else self.blocks:
            for lo, hi in block.each(reverse):
                if pending is not None and (hi == pending[0] if reverse else lo == pending[1]):
                    pending = (lo, pending[1]) if reverse else (pending[0], hi)
                    continue
                if pending is not None:
                    yield pending
                pending = (lo, hi)
        if pending is not None:
            yield pending

    def between(self, lo: int, hi: int) -> Rows:
        return Rows(tuple(c for b in self.blocks if b.stop > lo and b.start < hi for c in b.between(lo, hi)))

    def __len__(self) -> int:
        return sum(b.count() for b in self.blocks)

    def __bool__(self) -> bool:
        return any(b.runs for b in self.blocks)

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.runs():
            yield from range(lo, hi)

    def __contains__(self, r: object) -> bool:
        if not isinstance(r, int):
            return False
        for b in self.blocks:
            if b.start <= r < b.stop:
                q = (r - b.start) % b.period
                if any(offset <= q < offset + n for offset, n in b.runs):
                    return True
        return False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Rows, tuple, list)):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = [f"{a}-{b - 1}" for a, b in itertools.islice(self.runs(), 9)]
        return f"Rows({', '.join(shown[:8])}{', ...' if len(shown) > 8 else ''})"


class Taps:
    """The taps ``i*stride + j*dilation - pad_before`` (``i < count``, ``j < kernel``) below ``limit``,
    with membership in O(1): ``t`` is a tap iff ``t + pad_before = i*stride + j*dilation`` for some
    ``i`` and ``j`` in range, solved with the modular inverse of the strides' reduced forms."""

    def __init__(self, stride: int, dilation: int, kernel: int, count: int, pad_before: int, limit: int | None):
        self.stride, self.dilation, self.kernel, self.count = stride, dilation, kernel, count
        self.pad_before, self.limit = pad_before, limit
        self.g = gcd(stride, dilation)
        self.s1, self.d1 = stride // self.g, dilation // self.g
        self.inv = pow(self.s1, -1, self.d1)
        # Between these, a row is a tap iff its offset modulo the stride is: the pattern repeats.
        self.periodic = (-pad_before + (kernel - 1) * dilation, -pad_before + (count - 1) * stride)
        self.stop = -pad_before + (count - 1) * stride + (kernel - 1) * dilation + 1
        if limit is not None:
            self.stop = min(self.stop, limit)

    def __contains__(self, t: int) -> bool:
        if self.limit is not None and t >= self.limit:
            return False
        u = t + self.pad_before
        if u < 0 or u % self.g:
            return False
        x = u // self.g
        a = x * self.inv % self.d1  # the smallest window index i that can reach x
        b = (x - a * self.s1) // self.d1
        if a >= self.count or b < 0:
            return False
        # i = a + m*d1 and j = b - m*s1 for m >= 0: is some m in range of both?
        top = min((self.count - 1 - a) // self.d1, b // self.s1)
        return max(0, -((self.kernel - 1 - b) // self.s1)) <= top

    def irregular(self, t: int) -> bool:
        return -self.pad_before <= t < self.stop and not self.periodic[0] <= t <= self.periodic[1]


# A view: rows r in [lo, hi) read tap t = sign*r + shift (the input itself, or a padding mode's copy).
View = tuple[int, int, int, int]


def never_read(ax: AxisWindows, *, outright: int = TRACE_LIMIT, limit: int = TRACE_LIMIT) -> Rows | None:
    """The input rows no window of ``ax`` reads (padding modes' copies count as reads), or None
    when tracing them would take more than ``limit`` rows one by one."""
    a, n = ax.arith, ax.arith.size
    taps = Taps(a.stride, a.dilation, a.kernel, ax.count, ax.pad_before, ax.limit)
    pb, pa = ax.pad_before, ax.pad_after
    views: list[View] = [(1, 0, 0, n)]
    if ax.padding_mode == "reflect":
        views += [(-1, 0, 1, min(pb, n - 1) + 1), (-1, 2 * (n - 1), max(0, n - 1 - pa), n - 1)]
    elif ax.padding_mode == "circular":
        views += [(1, -n, max(0, n - pb), n), (1, n, 0, min(pa, n))]
    specials: set[int] = set()
    if ax.padding_mode == "replicate":
        # Conv2d has no ceil_mode: no window reaches past the padding, so the first tap
        # and the last window's last tap say whether any tap falls in the padding.
        specials = {r for r, hit in ((0, pb > 0), (n - 1, pa > 0 and ax.taps(ax.count - 1)[-1] >= n)) if hit}

    def read(r: int) -> bool:
        return r in specials or any(lo <= r < hi and sign * r + shift in taps for sign, shift, lo, hi in views)

    return _trace(read, n, taps, views, outright, limit)


def never_written(ax: UnpoolAxis, *, outright: int = TRACE_LIMIT, limit: int = TRACE_LIMIT) -> Rows | None:
    """MaxUnpool2d's output rows outside every window: no input value can land there."""
    taps = Taps(ax.stride, 1, ax.kernel, ax.size, ax.pad, None)
    return _trace(lambda r: r in taps, ax.out, taps, [(1, 0, 0, ax.out)], outright, limit)


def _trace(read: Callable[[int], bool], size: int, taps: Taps, views: list[View], outright: int, limit: int) -> Rows | None:
    if size <= outright:
        return Rows.of(r for r in range(size) if not read(r))
    # Where the regime can change: each view's ends, and the ends of the taps' periodic part.
    cuts = {0, 1, size - 1, size}
    for sign, shift, lo, hi in views:
        cuts |= {lo, hi}
        # t >= T starts at row T - shift going up, and ends after row shift - T going down.
        for t in (-taps.pad_before, taps.periodic[0], taps.periodic[1] + 1, taps.stop):
            cuts.add(t - shift if sign == 1 else shift - t + 1)
    cuts = sorted(c for c in cuts if 0 <= c <= size)
    blocks: list[Block] = []
    spent = 0
    for lo, hi in itertools.pairwise(cuts):
        live = [(sign, shift) for sign, shift, a, b in views if a <= lo < b]
        period = taps.stride
        if hi - lo <= 2 * period or any(taps.irregular(sign * lo + shift) for sign, shift in live):
            spent += hi - lo
            if spent > limit:
                return None
            blocks += Rows.of(r for r in range(lo, hi) if not read(r)).blocks
            continue
        spent += period
        if spent > limit:
            return None
        pattern = [read(lo + q) for q in range(period)]
        if not any(pattern):
            blocks += _plain([(lo, hi)])
            continue
        # Start the repeating block on a row that is read, so no run wraps across periods.
        first = pattern.index(True)
        start = lo + first
        rotated = pattern[first:] + pattern[:first]
        repeats = (hi - start) // period
        blocks += Rows.of(r for r in range(lo, start) if not pattern[r - lo]).blocks
        unread = Rows.of(q for q in range(period) if not rotated[q])
        blocks.append(Block(start, period, tuple((a, b - a) for a, b in unread.runs()), repeats))
        rest = start + repeats * period
        blocks += Rows.of(r for r in range(rest, hi) if not rotated[r - rest]).blocks
    return Rows(tuple(b for b in blocks if b.runs and b.repeats))


def inner(rows: Rows, size: int) -> Rows:
    """The rows between the first and the last row read (not those before or after every read)."""
    first = next(rows.runs(), None)
    last = next(rows.runs(reverse=True), None)
    lo = first[1] if first is not None and first[0] == 0 else 0
    hi = last[0] if last is not None and last[1] == size else size
    return rows.between(lo, hi) if lo < hi else Rows()
