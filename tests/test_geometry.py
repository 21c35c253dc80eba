"""convlab.geometry against real PyTorch modules: spans, same padding, ceil_mode, tap kinds, layer text."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from convlab.config import ConvConfig, PoolConfig
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
