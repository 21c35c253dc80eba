import itertools
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from convlab.calls import parse_layer
from convlab.errors import ConfigError
from convlab.layers import ShapeError, build_layer, describe_arithmetic, output_shape, stage_output_shape
from convlab.stages import ConvConfig, PoolConfig


def test_conv_is_a_real_conv2d_with_exactly_the_arguments():
    cfg = ConvConfig(out_channels=4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                     groups=1, bias=False, padding_mode="reflect")
    m = build_layer(cfg, 3)
    assert type(m) is nn.Conv2d
    assert (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation) == (
        3, 4, (3, 5), (2, 1), (1, 2), (1, 2))
    assert m.bias is None and m.padding_mode == "reflect" and m.groups == 1


def test_pool_is_a_real_maxpool2d_with_stride_defaulting_to_kernel():
    m = build_layer(PoolConfig(kernel_size=(3, 3), ceil_mode=True), 3)
    assert type(m) is nn.MaxPool2d
    assert m.kernel_size == 3 and m.stride == 3 and m.ceil_mode is True  # as nn.MaxPool2d(3, ceil_mode=True) keeps them
    assert repr(m) == repr(nn.MaxPool2d(3, ceil_mode=True)) == "MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=True)"
    wide = build_layer(PoolConfig(kernel_size=(2, 3), stride=(2, 2)), 3)
    assert wide.kernel_size == (2, 3) and wide.stride == 2


CONV_CASES = [
    ConvConfig(out_channels=c, kernel_size=k, stride=s, padding=p, dilation=d)
    for c, k, s, p, d in itertools.product(
        [1, 6], [(1, 1), (3, 3), (5, 2)], [(1, 1), (2, 3)], [(0, 0), (1, 2), "valid"], [(1, 1), (2, 1)]
    )
] + [ConvConfig(kernel_size=(k, k), padding="same", dilation=(d, d)) for k in (2, 3, 4) for d in (1, 2)]

POOL_CASES = [
    PoolConfig(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    for k, s, p, d, ceil in itertools.product(
        [(2, 2), (3, 3), (3, 4)], [None, (1, 1), (2, 2), (4, 3)], [(0, 0), (1, 1)], [(1, 1), (2, 2)], [False, True]
    )
]


@pytest.mark.parametrize("cfg", CONV_CASES + POOL_CASES, ids=repr)
@pytest.mark.parametrize("size", [(32, 32), (7, 9)])
def test_predicted_shape_agrees_with_pytorch(cfg, size):
    shape = (3, *size)
    module = build_layer(cfg, 3)
    try:
        real = tuple(module(torch.zeros(1, *shape)).shape[1:])
    except RuntimeError:
        with pytest.raises(ShapeError):
            output_shape(cfg, shape)
        return
    assert output_shape(cfg, shape) == real


def test_ceil_mode_keeps_the_window_over_the_edge():
    assert output_shape(PoolConfig(kernel_size=(3, 3)), (3, 32, 32)) == (3, 10, 10)
    assert output_shape(PoolConfig(kernel_size=(3, 3), ceil_mode=True), (3, 32, 32)) == (3, 11, 11)


@pytest.mark.parametrize(
    "cfg, shape, message",
    [
        (ConvConfig(kernel_size=(40, 40)), (3, 32, 32), r"kernel 40 does not fit the input's height: 32 \+ 2\*0 padding = 32 < 40"),
        (ConvConfig(kernel_size=(3, 3), dilation=(20, 20)), (3, 32, 32), "spans 41 with dilation 20"),
        (PoolConfig(kernel_size=(5, 5)), (3, 4, 4), "does not fit"),
        (ConvConfig(in_channels=1), (3, 32, 32), "in_channels=1 but the images have 3"),
        (ConvConfig(groups=2, out_channels=6), (3, 32, 32), "groups=2 must divide in_channels=3"),
        (ConvConfig(padding=(8, 8), padding_mode="reflect"), (3, 8, 8), "too large for padding_mode 'reflect'"),
    ],
)
def test_impossible_shapes_say_the_sizes(cfg, shape, message):
    with pytest.raises(ShapeError, match=message):
        output_shape(cfg, shape)


def test_describe_arithmetic_substitutes_the_numbers():
    lines = describe_arithmetic(ConvConfig(), (3, 32, 32))
    assert lines[0] == "H_out = floor((32 + 2*0 - 1*(3-1) - 1) / 1 + 1) = 30"
    assert lines[-1] == "(C, H, W): (3, 32, 32) -> (6, 30, 30)"
    assert "ceil((32 + 2*0 - 1*(3-1) - 1) / 3 + 1) = 11" in describe_arithmetic(
        PoolConfig(ceil_mode=True), (3, 32, 32))[0]


# ----------------------------------------------------------------------------- going back up


def _torch_shape(build, x):
    """PyTorch's output shape (C, H, W), or None where it refuses, building or calling the layer.
    An empty output counts as refused: a grouped ConvTranspose2d cropped to nothing returns one
    where groups=1 raises "Output size is too small"; convlab refuses both."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = build()(x)
    except (RuntimeError, ValueError):
        return None
    return tuple(y.shape[1:]) if y.numel() else None


def _convlab_shape(text, shape):
    try:
        return stage_output_shape(parse_layer(text), shape)
    except ConfigError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c=st.integers(1, 4), out=st.integers(1, 6), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    output_padding=st.tuples(st.integers(0, 3), st.integers(0, 3)), groups=st.integers(1, 3),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)), bias=st.booleans(),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
def test_convtranspose_shapes_and_refusals_are_pytorchs(c, out, kernel, stride, padding, output_padding, groups, dilation, bias, size):
    """Over random arguments and sizes, the predicted shape is torch's and convlab refuses exactly
    what torch refuses (output_padding at least the stride and the dilation, groups that do not
    divide, an output cropped to nothing)."""
    text = f"ConvTranspose2d({c}, {out}, {kernel}, {stride}, {padding}, {output_padding}, {groups}, {bias}, {dilation})"
    real = _torch_shape(lambda: nn.ConvTranspose2d(c, out, kernel, stride, padding, output_padding, groups, bias, dilation),
                        torch.zeros(1, c, *size))
    assert _convlab_shape(text, (c, *size)) == real, text


SCALES = st.sampled_from([-1.0, 0.0, 0.1, 0.5, 0.75, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.none() | st.integers(-1, 12) | st.tuples(st.integers(0, 12), st.integers(0, 12)),
    scale=st.none() | SCALES | st.tuples(SCALES, SCALES), mode=st.sampled_from(["nearest", "bilinear"]),
    align_corners=st.sampled_from([None, False, True]), recompute=st.sampled_from([None, False, True]),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
)
def test_upsample_shapes_and_refusals_are_pytorchs(size, scale, mode, align_corners, recompute, shape):
    """size or scale_factor (one, not both), nearest or bilinear, align_corners only with bilinear,
    recompute_scale_factor only with a scale: convlab's shape and refusals are torch's."""
    text = f"Upsample({size}, {scale}, {mode!r}, {align_corners}, {recompute})"
    real = _torch_shape(lambda: nn.Upsample(size, scale, mode, align_corners, recompute), torch.zeros(1, *shape))
    assert _convlab_shape(text, shape) == real, text


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("ConvTranspose2d(3, 3, 3, padding=3)", (3, 2, 2), "H_out = (2 - 1)*1 - 2*3 + 1*(3-1) + 0 + 1 = -2 on the height: padding 3"),
        ("ConvTranspose2d(4, 3, 3)", (3, 8, 8), "in_channels=4 but the input has 3 channels"),
        ("Upsample(scale_factor=0.1)", (3, 8, 8), "scale_factor 0.1 makes the height floor(8 * 0.1) = 0"),
        ("Upsample(scale_factor=2)", (12,), "Upsample works on (C, H, W) maps, but its input is 12 features"),
    ],
)
def test_going_back_up_says_what_does_not_fit(text, shape, message):
    with pytest.raises(ShapeError, match=re.escape(message)):
        stage_output_shape(parse_layer(text), shape)
