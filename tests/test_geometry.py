"""convlab.geometry against real PyTorch modules: spans, same padding, ceil_mode, tap kinds, layer text."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from torch import nn

from convlab.geometry import (
    AxisArithmetic,
    axis_arithmetic,
    axis_windows,
    hw,
    layer_call,
    layer_padding,
    pair_arg,
    pair_tuple,
    same_padding,
    span,
    tap_kind,
)
from convlab.layers import build_layer
from convlab.lessons import TRANSPOSED_CASES, transposed_case_layer
from convlab.stages import ConvConfig, ConvTranspose2dConfig, PoolConfig
from convlab.upsampling import layer_windows, transposed_axes

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_by_each_output(conv: nn.Conv2d, length: int) -> list[set[int]]:
    """For a 1 x length input: the input columns each output reads (its gradient is non-zero)."""
    nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 1, length, requires_grad=True)
    y = conv(x)[0, 0, 0]
    out = []
    for i in range(y.shape[0]):
        (grad,) = torch.autograd.grad(y[i], x, retain_graph=True)
        out.append({c for c in range(length) if grad[0, 0, 0, c]})
    return out


@PROPERTY
@given(kernel=st.integers(1, 6), dilation=st.integers(1, 4), extra=st.integers(0, 5))
def test_span_is_the_extent_pytorch_needs(kernel, dilation, extra):
    length = span(kernel, dilation) + extra
    y = F.conv2d(torch.zeros(1, 1, 1, length), torch.ones(1, 1, 1, kernel), dilation=(1, dilation))
    assert y.shape[-1] == extra + 1
    with pytest.raises(RuntimeError):
        F.conv2d(torch.zeros(1, 1, 1, span(kernel, dilation) - 1), torch.ones(1, 1, 1, kernel), dilation=(1, dilation))


@PROPERTY
@given(kernel=st.integers(1, 6), dilation=st.integers(1, 3), length=st.integers(1, 12))
def test_same_padding_puts_the_odd_one_after_as_pytorch(kernel, dilation, length):
    before, after = same_padding(kernel, dilation)
    assert before + after == span(kernel, dilation) - 1 and after - before in (0, 1)
    cfg = ConvConfig(kernel_size=(1, kernel), dilation=(1, dilation), padding="same")
    assert layer_padding(cfg) == ((0, 0), (before, after))
    conv = nn.Conv2d(1, 1, (1, kernel), padding="same", dilation=(1, dilation), bias=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that an odd total pads a copy of the input
        read = read_by_each_output(conv, length)
    ax = axis_windows(cfg, 1, length)[1]
    assert ax.count == len(read) == length
    assert read == [{t for t in ax.taps(i) if ax.kind(t) == "input"} for i in range(ax.count)]


def test_an_odd_same_padding_total():
    assert same_padding(4, 1) == (1, 2)
    assert same_padding(2, 3) == (1, 2)
    assert same_padding(3, 2) == (2, 2)
    cfg = ConvConfig(kernel_size=(4, 3), padding="same")
    h, w = axis_windows(cfg, 8, 8)
    assert (h.pad_before, h.pad_after, h.arith.pad) == (1, 2, 2) and (w.pad_before, w.pad_after) == (1, 1)
    assert list(h.taps(0)) == [-1, 0, 1, 2] and list(h.taps(7)) == [6, 7, 8, 9] and h.limit == 10


@PROPERTY
@given(
    size=st.integers(1, 14), kernel=st.integers(1, 5), stride=st.integers(1, 5), pad=st.integers(0, 2),
    dilation=st.integers(1, 3), ceil_mode=st.booleans(),
)
def test_output_size_and_ceil_modes_last_window_rule_agree_with_pytorch(size, kernel, stride, pad, dilation, ceil_mode):
    assume(pad <= kernel // 2)
    a = AxisArithmetic("W", size, kernel, stride, pad, dilation, ceil_mode)
    pool = nn.MaxPool2d((1, kernel), (1, stride), (0, pad), (1, dilation), ceil_mode=ceil_mode)
    try:
        expected = pool(torch.zeros(1, 1, 1, size)).shape[-1]
    except RuntimeError:
        expected = 0
    assert a.out == expected


@PROPERTY
@given(
    size=st.integers(1, 9), kernel=st.integers(1, 5), stride=st.integers(1, 6), pad=st.integers(0, 2),
    dilation=st.integers(1, 7), ceil_mode=st.booleans(),
)
@example(size=1, kernel=2, stride=1, pad=1, dilation=2, ceil_mode=False)  # the MaxPool2d(2, 1, 1, 2) on 1 pixel
@example(size=2, kernel=2, stride=1, pad=1, dilation=3, ceil_mode=False)  # taps on both sides of a 2-pixel input
@example(size=2, kernel=2, stride=3, pad=1, dilation=3, ceil_mode=True)  # a lone ceil_mode window
@example(size=3, kernel=2, stride=1, pad=1, dilation=3, ceil_mode=False)  # dilation = size: never empty
def test_a_max_pool_window_reads_no_input_exactly_where_pytorch_gives_minus_inf(size, kernel, stride, pad, dilation, ceil_mode):
    """The forward pass only (the backward is what writes outside the input): on a finite input,
    PyTorch's max pooling gives -inf exactly at the windows that read no input value, the first of
    which is unread_window()'s."""
    assume(pad <= kernel // 2)
    a = AxisArithmetic("W", size, kernel, stride, pad, dilation, ceil_mode)
    assume(a.out >= 1)
    y = F.max_pool2d(torch.rand(1, 1, 1, size), (1, kernel), (1, stride), (0, pad), (1, dilation), ceil_mode=ceil_mode)
    assert y.shape[-1] == a.out
    empty = [i for i, v in enumerate(y[0, 0, 0].tolist()) if v == float("-inf")]
    assert a.unread_window() == (empty[0] if empty else None)
    # Every window's taps, as the rule reads them: those of an empty window all lie outside the input.
    for i in empty:
        assert all(not 0 <= t < size for t in a.taps(i))


def test_ceil_mode_drops_a_last_window_that_would_start_in_the_padding():
    # 4 + 2*1 - 2 = 4 and stride 3: rounding up gives 3 windows; the third would start at 5 >= 4 + 1.
    a = AxisArithmetic("H", 4, 2, 3, 1, 1, ceil_mode=True)
    assert a.out == 2 == nn.MaxPool2d(2, 3, 1, ceil_mode=True)(torch.zeros(1, 1, 4, 4)).shape[-1]
    # 6 + 2*1 - 3 = 5 and stride 2: rounding up gives 4 windows; the fourth starts at 6 < 6 + 1,
    # inside the input, so PyTorch keeps it though it reaches past the padded input.
    a = AxisArithmetic("H", 6, 3, 2, 1, 1, ceil_mode=True)
    ax = axis_windows(PoolConfig(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True), 6, 6)[0]
    assert a.out == ax.count == 4 == nn.MaxPool2d(3, 2, 1, ceil_mode=True)(torch.zeros(1, 1, 6, 6)).shape[-1]
    assert [ax.kind(t) for t in ax.taps(3)] == ["input", "padding", "edge"] and ax.overhang(3) == 1


@PROPERTY
@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)), pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_tap_kinds_are_what_avg_pool_counts(size, kernel, stride, pad):
    """AvgPool2d (count_include_pad) divides by the taps on the input or the padding, never
    those past the edge: with ones as input, each output is (input taps) / (input + padding taps)."""
    assume(all(p <= k // 2 for p, k in zip(pad, kernel)))
    cfg = PoolConfig(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=True, mode="avg")
    axes = axis_windows(cfg, *size)
    assume(axes[0].count > 0 and axes[1].count > 0)
    y = nn.AvgPool2d(kernel, stride, pad, ceil_mode=True)(torch.ones(1, 1, *size, dtype=torch.float64))[0, 0]
    assert tuple(y.shape) == (axes[0].count, axes[1].count)
    for i in range(axes[0].count):
        for j in range(axes[1].count):
            kinds = [tap_kind(axes, r, c) for r in axes[0].taps(i) for c in axes[1].taps(j)]
            assert y[i, j].item() == pytest.approx(kinds.count("input") / (len(kinds) - kinds.count("edge")))


def test_tap_kind_on_a_corner():
    axes = axis_windows(PoolConfig(kernel_size=(3, 3), padding=(1, 1), ceil_mode=True), 4, 4)
    assert [tap_kind(axes, r, 0) for r in range(-1, 7)] == ["padding", "input", "input", "input", "input", "padding",
                                                            "edge", "edge"]
    assert tap_kind(axes, -1, -1) == "padding" and tap_kind(axes, 5, 6) == "edge" and tap_kind(axes, 0, 3) == "input"


def test_extent_covers_padding_input_and_taps_past_the_edge():
    ceil = axis_windows(PoolConfig(kernel_size=(3, 3), ceil_mode=True), 7, 7)[0]
    assert ceil.extent() == range(0, 9) and ceil.extent(2) == range(0, 7)
    padded = axis_windows(ConvConfig(kernel_size=(3, 3), padding=(1, 1)), 5, 5)[0]
    assert padded.extent() == range(-1, 6)


def test_axis_arithmetic_of_each_layer():
    h, w = axis_arithmetic(PoolConfig(kernel_size=(3, 2)), 32, 31)
    assert (h.stride, w.stride, h.out, w.out) == (3, 2, 10, 15)
    h, w = axis_arithmetic(ConvConfig(kernel_size=(4, 4), padding="valid", stride=(2, 2)), 9, 9)
    assert (h.pad, h.out, h.same) == (0, 3, False)
    assert axis_arithmetic(ConvConfig(kernel_size=(4, 4), padding="same"), 9, 9)[0].out == 9


# ----------------------------------------------------------------------------- text


def test_pair_text():
    assert hw((3, 3)) == "3" and hw((3, 5)) == "3x5" and hw("same") == "same"
    assert pair_tuple((3, 5)) == "(3, 5)" and pair_tuple(torch.Size([6, 3, 3, 3])) == "(6, 3, 3, 3)"
    assert pair_arg((2, 2)) == "2" and pair_arg((2, 1)) == "(2, 1)"


@pytest.mark.parametrize(
    "cfg, module",
    [
        (ConvConfig(), lambda: nn.Conv2d(3, 6, 3)),
        (ConvConfig(out_channels=4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=1,
                    bias=False, padding_mode="reflect"),
         lambda: nn.Conv2d(3, 4, (3, 5), (2, 1), (1, 2), (2, 1), bias=False, padding_mode="reflect")),
        (ConvConfig(out_channels=6, groups=3, padding="same"), lambda: nn.Conv2d(3, 6, 3, padding="same", groups=3)),
        (ConvConfig(padding="valid"), lambda: nn.Conv2d(3, 6, 3, padding="valid")),
        # The pools keep their arguments as given: convlab gives a square size as one number, as a
        # learner writes it, so the module prints as PyTorch prints MaxPool2d(3).
        (PoolConfig(), lambda: nn.MaxPool2d(3)),
        (PoolConfig(kernel_size=(3, 3), ceil_mode=True), lambda: nn.MaxPool2d(3, ceil_mode=True)),
        (PoolConfig(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 2), ceil_mode=True),
         lambda: nn.MaxPool2d((2, 3), (1, 2), 1, 2, ceil_mode=True)),
        (PoolConfig(kernel_size=(2, 2), padding=(1, 1), ceil_mode=True, mode="avg"),
         lambda: nn.AvgPool2d(2, padding=1, ceil_mode=True)),
    ],
)
def test_layer_call_module_form_is_print_of_the_module(cfg, module):
    assert layer_call(cfg, 3) == repr(module()) == repr(build_layer(cfg, 3))


def test_layer_call_unpool_is_print_of_maxunpool2d():
    cfg = PoolConfig(kernel_size=(2, 3), stride=(3, 3), padding=(1, 1), dilation=(2, 2), ceil_mode=True)
    assert layer_call(cfg, unpool=True) == repr(nn.MaxUnpool2d((2, 3), (3, 3), (1, 1)))


def test_layer_call_lesson_form_shows_what_a_learner_types():
    assert layer_call(PoolConfig(), form="lesson") == "nn.MaxPool2d(kernel_size=3, ceil_mode=False)"
    pool = PoolConfig(kernel_size=(2, 3), stride=(2, 2), padding=(1, 0), dilation=(2, 2), ceil_mode=True)
    assert layer_call(pool, form="lesson") == (
        "nn.MaxPool2d(kernel_size=(2, 3), stride=2, padding=(1, 0), dilation=2, ceil_mode=True)"
    )
    # A stride given equal to the kernel is still shown: the learner typed it.
    assert layer_call(PoolConfig(kernel_size=(2, 2), stride=(2, 2)), form="lesson") == (
        "nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=False)"
    )
    conv = ConvConfig(in_channels=1, out_channels=1, bias=False)
    assert layer_call(conv, form="lesson") == "F.conv2d(input, kernel, stride=1)"
    assert layer_call(ConvConfig(padding="same", dilation=(2, 1)), form="lesson") == (
        "F.conv2d(input, kernel, stride=1, padding='same', dilation=(2, 1))"
    )


def test_layer_call_caption_form_names_every_window_setting():
    assert layer_call(ConvConfig(stride=(2, 2), padding=(1, 1)), form="caption") == (
        "Conv2d  kernel 3  stride 2  padding 1  dilation 1"
    )
    assert layer_call(ConvConfig(kernel_size=(4, 4), padding="same"), form="caption") == (
        "Conv2d  kernel 4  stride 1  padding same  dilation 1"
    )
    assert layer_call(PoolConfig(kernel_size=(2, 3), ceil_mode=True), form="caption") == (
        "MaxPool2d  kernel 2x3  stride 2x3  padding 0  dilation 1  ceil_mode=True"
    )
    assert layer_call(PoolConfig(mode="avg"), form="caption") == "AvgPool2d  kernel 3  stride 3  padding 0  ceil_mode=False"
    with pytest.raises(ValueError, match="unknown form 'repr'"):
        layer_call(PoolConfig(), form="repr")


# ----------------------------------------------------------------------------- ConvTranspose2d


def _direct_convolution(cfg: ConvTranspose2dConfig, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """nn.ConvTranspose2d computed as convlab says it is: the input stretched by zeros, padded as
    the geometry says (cropped where negative, output_padding more after), then an ordinary
    F.conv2d, stride 1, with the kernel flipped and its in and out channels swapped per group."""
    h, w = transposed_axes(cfg, *x.shape[2:])
    n, c = x.shape[:2]
    stretched = x.new_zeros(n, c, h.stretched, w.stretched)
    stretched[:, :, :: h.stride, :: w.stride] = x
    (top, bottom), (left, right) = ((a.windows().pad_before, a.windows().pad_after) for a in (h, w))
    padded = F.pad(stretched, (left, right, top, bottom))  # negative pads crop
    g = cfg.groups
    kernel = weight.reshape(g, c // g, *weight.shape[1:]).transpose(1, 2).reshape(-1, c // g, *weight.shape[2:])
    return F.conv2d(padded, kernel.flip(2, 3), dilation=cfg.dilation, groups=g)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=st.integers(1, 2), per_group=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 4), st.integers(0, 4)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    extra=st.tuples(st.integers(0, 2), st.integers(0, 2)), size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
)
def test_zero_insertion_then_a_convolution_is_conv_transpose2d(groups, per_group, kernel, stride, padding, dilation, extra, size):
    """Over random cases: the direct convolution the geometry describes equals nn.ConvTranspose2d
    to float rounding, and its size is the transposed formula's."""
    output_padding = tuple(min(e, max(s, d) - 1) for e, s, d in zip(extra, stride, dilation))
    cin, cout = groups * per_group[0], groups * per_group[1]
    cfg = ConvTranspose2dConfig(cin, cout, kernel, stride, padding, output_padding, groups, False, dilation)
    assume(all(a.out >= 1 for a in transposed_axes(cfg, *size)))
    module = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, groups, False, dilation)
    x = torch.randn(2, cin, *size)
    expected = module(x)
    got = _direct_convolution(cfg, x, module.weight)
    assert got.shape == expected.shape == (2, cout, *(a.out for a in transposed_axes(cfg, *size)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 16)])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [(3, 2, 1, 1), (4, 2, 1, 1), (3, 3, 0, 2), (5, 1, 2, 1), (2, 3, 1, 1)])
def test_output_padding_picks_each_size_the_conv_maps_to_the_input(size, kernel, stride, padding, dilation):
    """Conv2d with the same arguments takes each of conv_sizes to the input's size, and
    output_padding 0, 1, ... gets each of them back."""
    cfg = ConvTranspose2dConfig(1, 1, (kernel, kernel), (stride, stride), (padding, padding), dilation=(dilation, dilation))
    axis = transposed_axes(cfg, *size)[0]
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
    for n in axis.conv_sizes:
        op = n - axis.out  # output_padding 0 gives axis.out
        assert conv(torch.zeros(1, 1, n, 1 + (kernel - 1) * dilation)).shape[2] == size[0]
        if op < max(stride, dilation):
            up = nn.ConvTranspose2d(1, 1, kernel, stride, padding, op, dilation=dilation)
            assert up(torch.zeros(1, 1, *size)).shape[2] == n
    before = axis.conv_sizes.start - 1  # one smaller is refused or maps elsewhere
    if before >= 1 and before + 2 * padding >= 1 + (kernel - 1) * dilation:
        assert conv(torch.zeros(1, 1, before, 1 + (kernel - 1) * dilation)).shape[2] != size[0]


# conv_arithmetic's Makefile (bin/generate_makefile) draws each transposed GIF from its forward
# convolution's input size: the size its transposed output has.
GIF_OUTPUTS = {
    "no-padding-no-strides": 4, "arbitrary-padding-no-strides": 5, "same-padding-no-strides": 5,
    "full-padding-no-strides": 5, "no-padding-strides": 5, "padding-strides": 5, "padding-strides-odd": 6,
}


@pytest.mark.parametrize("name", sorted(GIF_OUTPUTS))
def test_the_seven_conv_arithmetic_transposed_cases_give_their_gifs_shapes(name):
    cfg, size = transposed_case_layer(name)
    module = build_layer(cfg, 1)
    assert tuple(module(torch.zeros(1, 1, *size)).shape[2:]) == (GIF_OUTPUTS[name],) * 2
    axes = layer_windows(cfg, *size)
    assert (axes[0].count, axes[1].count) == (GIF_OUTPUTS[name],) * 2
    assert set(TRANSPOSED_CASES) == set(GIF_OUTPUTS)


def test_zero_inserted_windows_kinds_and_extent():
    cfg = ConvTranspose2dConfig(1, 1, (3, 3), (2, 2), (1, 1), (1, 1))  # padding-strides-odd: 3x3 -> 6x6
    h, _ = layer_windows(cfg, 3, 3)
    assert [h.kind(t) for t in range(-2, 7)] == ["edge", "padding", "input", "zero", "input", "zero", "input", "padding", "padding"]
    assert list(h.extent()) == list(range(-1, 7)) and h.count == 6
    assert list(h.taps(0)) == [-1, 0, 1] and list(h.taps(5)) == [4, 5, 6]
    assert tap_kind(layer_windows(cfg, 3, 3), 1, 0) == "zero" and tap_kind(layer_windows(cfg, 3, 3), -1, 1) == "padding"
    cropped = ConvTranspose2dConfig(1, 1, (3, 3), padding=(3, 3))  # padding beyond dilation*(kernel-1): a crop
    c, _ = layer_windows(cropped, 6, 6)
    assert c.count == 2 and list(c.extent()) == list(range(6)) and list(c.taps(0)) == [1, 2, 3]


def test_layer_call_of_a_transposed_convolution():
    cfg = ConvTranspose2dConfig(3, 6, (3, 3), (2, 2), (1, 1), (1, 1))
    assert layer_call(cfg) == repr(nn.ConvTranspose2d(3, 6, 3, 2, 1, 1)) == repr(build_layer(cfg, 3))
    odd = ConvTranspose2dConfig(4, 6, (2, 3), (1, 2), (0, 1), (0, 1), 2, False, (2, 1))
    assert layer_call(odd) == repr(nn.ConvTranspose2d(4, 6, (2, 3), (1, 2), (0, 1), (0, 1), 2, False, (2, 1)))
    assert layer_call(cfg, form="lesson") == "F.conv_transpose2d(input, kernel, stride=2, padding=1, output_padding=1)"
    assert layer_call(cfg, form="caption") == "ConvTranspose2d  kernel 3  stride 2  padding 1  dilation 1  output_padding 1"
