"""Layer factories and the shape checks that guard them.

``build_layer`` returns a real ``torch.nn.Conv2d`` / ``torch.nn.MaxPool2d`` with exactly the
configured arguments. ``output_shape`` predicts the output with :mod:`convlab.geometry`'s
arithmetic (PyTorch's documented formulas) and turns every impossible shape into a
:class:`ShapeError` that says the sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlab.config import ConfigError, ConvConfig, LayerConfig, PoolConfig
from convlab.geometry import axis_arithmetic, pool_stride, span
from convlab.kernels import init_conv

if TYPE_CHECKING:
    import torch
    from torch import nn


class ShapeError(ConfigError):
    """The layer cannot be applied to inputs of this shape."""


def resolved_in_channels(cfg: LayerConfig, data_channels: int) -> int:
    if isinstance(cfg, ConvConfig) and cfg.in_channels is not None:
        if cfg.in_channels != data_channels:
            raise ShapeError(
                f"in_channels={cfg.in_channels} but the images have {data_channels} channel(s); "
                f"drop --in-channels or set it to {data_channels}"
            )
        return cfg.in_channels
    return data_channels


def build_layer(cfg: LayerConfig, in_channels: int) -> nn.Module:
    """The real module. ``output_shape`` comes first on every path: it turns what the
    constructor would raise (groups that do not divide in_channels) into a ShapeError."""
    from torch import nn

    if isinstance(cfg, ConvConfig):
        conv = nn.Conv2d(
            in_channels,
            cfg.out_channels,
            kernel_size=cfg.kernel_size,
            stride=cfg.stride,
            padding=cfg.padding,
            dilation=cfg.dilation,
            groups=cfg.groups,
            bias=cfg.bias,
            padding_mode=cfg.padding_mode,
        )
        init_conv(conv, cfg)
        return conv
    if cfg.mode == "avg":
        # count_include_pad stays PyTorch's default (True): padded zeros count in the average.
        return nn.AvgPool2d(kernel_size=cfg.kernel_size, stride=pool_stride(cfg), padding=cfg.padding, ceil_mode=cfg.ceil_mode)
    return nn.MaxPool2d(
        kernel_size=cfg.kernel_size,
        stride=pool_stride(cfg),
        padding=cfg.padding,
        dilation=cfg.dilation,
        ceil_mode=cfg.ceil_mode,
    )


def output_shape(cfg: LayerConfig, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) in -> (C, H, W) out, or a ShapeError naming the sizes that do not fit."""
    channels, height, width = input_shape
    in_channels = resolved_in_channels(cfg, channels)
    axes = axis_arithmetic(cfg, height, width)
    for a in axes:
        if a.out < 1:
            dil = f" (spans {a.span} with dilation {a.dilation})" if a.dilation > 1 else ""
            raise ShapeError(
                f"kernel {a.kernel}{dil} does not fit the input's {'height' if a.axis == 'H' else 'width'}: "
                f"{a.size} + 2*{a.pad} padding = {a.padded} < {a.span}; use a smaller --kernel or "
                "--dilation, or more --padding"
            )
    if isinstance(cfg, ConvConfig):
        if cfg.padding_mode in ("reflect", "circular"):
            # replicate repeats the edge pixel, so it has no such limit.
            for a in axes:
                limit = a.size if cfg.padding_mode == "circular" else a.size - 1
                if a.pad > limit:
                    raise ShapeError(
                        f"padding {a.pad} is too large for padding_mode '{cfg.padding_mode}' on an input "
                        f"of {a.axis}={a.size} (at most {limit}); use less --padding or --padding-mode zeros"
                    )
        if in_channels % cfg.groups:
            raise ShapeError(
                f"groups={cfg.groups} must divide in_channels={in_channels}; "
                f"use a --groups that divides both {in_channels} and {cfg.out_channels}"
            )
        out_channels = cfg.out_channels
    else:
        out_channels = in_channels
    return (out_channels, axes[0].out, axes[1].out)


def describe_arithmetic(cfg: LayerConfig, input_shape: tuple[int, int, int]) -> list[str]:
    """Human-readable lines: the output-size formula with the numbers substituted."""
    _, height, width = input_shape
    out = output_shape(cfg, input_shape)
    lines = [a.formula() for a in axis_arithmetic(cfg, height, width)]
    lines.append(f"(C, H, W): {tuple(input_shape)} -> {out}")
    return lines


def max_unpool(x: torch.Tensor, cfg: PoolConfig) -> torch.Tensor:
    """``MaxUnpool2d(MaxPool2d(x))``: each window's maximum back at its position, 0 elsewhere.

    ``output_size`` is always the input's size: left out, PyTorch infers a size from the
    pooled one, which fails or differs from the input with ceil_mode, odd sizes or padding.
    MaxUnpool2d has no dilation, so it gets the window's span (``dilation*(k-1)+1``) as its
    kernel size; with that its size check accepts every input MaxPool2d accepts.
    """
    from torch import nn

    stride = pool_stride(cfg)
    pool = nn.MaxPool2d(cfg.kernel_size, stride, cfg.padding, cfg.dilation, return_indices=True, ceil_mode=cfg.ceil_mode)
    kernel_span = tuple(span(k, d) for k, d in zip(cfg.kernel_size, cfg.dilation))
    pooled, indices = pool(x)
    return nn.MaxUnpool2d(kernel_span, stride, cfg.padding)(pooled, indices, output_size=x.shape[-2:])
