"""convlab.coverage: the rows never read, worked out arithmetically, against a tap-by-tap listing."""

import time

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from convlab.coverage import TRACE_LIMIT, Rows, inner, never_read, never_written
from convlab.geometry import AxisWindows, UnpoolAxis, axis_windows
from convlab.layers import ShapeError, output_shape
from convlab.stages import ConvConfig, PoolConfig

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- the listing to agree with


def source(ax: AxisWindows, t: int) -> int | None:
    """The input row a tap at ``t`` reads: itself, a padding mode's copy, or None (zeros, edge)."""
    n = ax.arith.size
    if 0 <= t < n:
        return t
    if t < -ax.pad_before or t >= ax.limit or ax.padding_mode == "zeros":
        return None
    if ax.padding_mode == "reflect":
        return -t if t < 0 else 2 * (n - 1) - t
    if ax.padding_mode == "replicate":
        return 0 if t < 0 else n - 1
    return t % n


def listed_never_read(ax: AxisWindows) -> list[int]:
    seen = [False] * ax.arith.size
    for i in range(ax.count):
        for t in ax.taps(i):
            r = source(ax, t)
            if r is not None:
                seen[r] = True
    return [r for r, hit in enumerate(seen) if not hit]


def listed_inner(ax: AxisWindows) -> list[int]:
    missed = set(listed_never_read(ax))
    hits = [r for r in range(ax.arith.size) if r not in missed]
    return [r for r in range(hits[0], hits[-1]) if r in missed] if hits else []


def listed_never_written(a: UnpoolAxis) -> list[int]:
    hit = [False] * a.out
    for i in range(a.size):
        start = i * a.stride - a.pad
        for t in range(max(start, 0), min(start + a.kernel, a.out)):
            hit[t] = True
    return [r for r, h in enumerate(hit) if not h]


# ----------------------------------------------------------------------------- layers to draw


@st.composite
def layers(draw, size=st.integers(1, 60), deep_padding=True):
    """(cfg, size): one axis of a conv (any padding mode, 'same' too) or a max pool (ceil_mode too) that fits."""
    n, k, d = draw(size), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    if draw(st.booleans()):
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        # Up to n - 1: a reflection's copies then reach deep into the input.
        deep = [st.integers(0, n - 1)] if deep_padding else []
        padding = draw(st.one_of(st.just("same"), st.integers(0, 8), *deep))
        stride = 1 if padding == "same" else draw(st.integers(1, 7))
        cfg = ConvConfig(kernel_size=(k, 1), stride=(stride, 1), dilation=(d, 1), padding_mode=mode,
                         padding=padding if padding == "same" else (padding, 0))
    else:
        cfg = PoolConfig(kernel_size=(k, 1), stride=(draw(st.integers(1, 7)), 1), dilation=(d, 1),
                         padding=(draw(st.integers(0, k // 2)), 0), ceil_mode=draw(st.booleans()))
    try:
        output_shape(cfg, (1, n, 1))
    except ShapeError:
        assume(False)
    return cfg, n


def axis(cfg, size: int) -> AxisWindows:
    return axis_windows(cfg, size, 1)[0]


# A reflection whose copies of the irregular first rows sit in a stretch that repeats otherwise.
REFLECTED_HEAD = ConvConfig(kernel_size=(4, 1), stride=(5, 1), dilation=(4, 1), padding=(14, 0), padding_mode="reflect")


@PROPERTY
@given(layer=layers(), limit=st.sampled_from([TRACE_LIMIT, 40]))
@example(layer=(REFLECTED_HEAD, 29), limit=TRACE_LIMIT)
def test_the_arithmetic_agrees_with_the_listing(layer, limit):
    """Forced past the row-by-row path (``outright=0``), on sizes small enough to list."""
    ax = axis(*layer)
    expected = listed_never_read(ax)
    assert never_read(ax) == expected  # small: traced outright
    rows = never_read(ax, outright=0, limit=limit)
    assume(rows is not None)  # a small limit gives up on some
    assert list(rows) == expected and len(rows) == len(expected) and bool(rows) == bool(expected)
    assert list(rows.runs(reverse=True))[::-1] == list(rows.runs())
    assert all((r in rows) == (r in expected) for r in range(-2, ax.arith.size + 2))
    assert list(inner(rows, ax.arith.size)) == listed_inner(ax)


@PROPERTY
@given(size=st.integers(1, 20), kernel=st.integers(1, 5), stride=st.integers(1, 7), pad=st.integers(0, 2),
       output_size=st.one_of(st.none(), st.integers(0, 200)))
def test_never_written_agrees_with_the_listing(size, kernel, stride, pad, output_size):
    a = UnpoolAxis("H", size, kernel, stride, pad, output_size)
    assume(a.out >= 0)
    expected = listed_never_written(a)
    assert never_written(a) == expected
    assert list(never_written(a, outright=0)) == expected


@PROPERTY
@given(layer=layers(size=st.integers(120, 160), deep_padding=False), periods=st.integers(10**6, 10**8))
def test_a_huge_input_repeats_the_pattern_of_a_small_one(layer, periods):
    """``m`` more strides of input add ``m`` windows: the ends stay as they were (the far one
    moved by ``m`` strides) and the count grows by ``m`` times what one more stride adds."""
    cfg, n = layer
    s = axis(cfg, n).arith.stride
    small, one_more = listed_never_read(axis(cfg, n)), listed_never_read(axis(cfg, n + s))
    big_axis = axis(cfg, n + periods * s)
    assert big_axis.count == axis(cfg, n).count + periods
    start = time.perf_counter()
    big = never_read(big_axis)
    assert time.perf_counter() - start < 2
    assert big is not None
    assert len(big) == len(small) + periods * (len(one_more) - len(small))
    edge = 40
    assert list(big.between(0, edge)) == [r for r in small if r < edge]
    far = [r - periods * s for r in big.between(big_axis.arith.size - edge, big_axis.arith.size)]
    assert far == [r for r in small if r >= n - edge]


def test_every_row_of_the_largest_input_is_read_by_a_3x3_conv():
    ax = axis_windows(ConvConfig(), 2**31 - 1, 2**31 - 1)[0]
    rows = never_read(ax)
    assert rows == () and not rows and len(rows) == 0


def test_stride_3_on_the_largest_input_misses_two_rows_in_three():
    ax = axis_windows(ConvConfig(kernel_size=(1, 1), stride=(3, 3)), 2**31 - 1, 1)[0]
    rows = never_read(ax)
    assert len(rows) == 2 * (2**31 - 1) // 3
    assert list(rows.between(0, 10)) == [1, 2, 4, 5, 7, 8]
    # 2**31 - 2 is a multiple of 3: the last window reads the last row.
    assert next(rows.runs(reverse=True)) == (2**31 - 4, 2**31 - 2)
    assert 2**31 - 3 in rows and 2**31 - 2 not in rows and 2**31 - 5 not in rows
    assert next(inner(rows, 2**31 - 1).runs(reverse=True)) == (2**31 - 4, 2**31 - 2)


def test_windows_too_irregular_to_trace_are_not_listed():
    cfg = ConvConfig(kernel_size=(1000, 1), dilation=(1000, 1), stride=(999, 1))
    assert never_read(axis_windows(cfg, 2**31 - 1, 1)[0]) is None
    # The same windows on an input small enough are traced outright.
    assert never_read(axis_windows(cfg, 999_001 + 999, 1)[0], outright=10**6, limit=10**6) is not None


def test_rows_of_a_list():
    rows = Rows.of([0, 1, 2, 5, 9, 10])
    assert list(rows.runs()) == [(0, 3), (5, 6), (9, 11)] and len(rows) == 6
    assert list(rows.between(1, 10)) == [1, 2, 5, 9]
    assert rows == [0, 1, 2, 5, 9, 10] and rows != (0, 1) and repr(rows) == "Rows(0-2, 5-5, 9-10)"
    assert list(inner(rows, 11)) == [5]


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes_read_their_copies(mode):
    # Stride 4, a 1-row window, padding 2 on 10 rows: taps -2, 2, 6, 10; -2 and 10 are padding.
    ax = axis_windows(ConvConfig(kernel_size=(1, 1), stride=(4, 4), padding=(2, 2), padding_mode=mode), 10, 10)[0]
    expected = {"zeros": [0, 1, 3, 4, 5, 7, 8, 9], "reflect": [0, 1, 3, 4, 5, 7, 9], "replicate": [1, 3, 4, 5, 7, 8],
                "circular": [1, 3, 4, 5, 7, 9]}[mode]
    assert listed_never_read(ax) == expected
    assert list(never_read(ax)) == list(never_read(ax, outright=0)) == expected
