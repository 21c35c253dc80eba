"""Layer factories and the shape arithmetic that explains them.

``build_layer`` returns a real ``torch.nn.Conv2d`` / ``torch.nn.MaxPool2d`` with exactly the
configured arguments. ``output_shape`` predicts the output from PyTorch's documented
formulas and turns every impossible shape into a :class:`ShapeError` that says the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from convlab.config import ConfigError, ConvConfig, LayerConfig, Pair, PoolConfig
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


def pool_stride(cfg: PoolConfig) -> Pair:
    return cfg.stride if cfg.stride is not None else cfg.kernel_size


def conv_padding(cfg: ConvConfig) -> Pair:
    """The padding actually added on each side (for ``same``: the larger half, as PyTorch pads)."""
    if cfg.padding == "valid":
        return (0, 0)
    if cfg.padding == "same":
        return tuple(d * (k - 1) // 2 + d * (k - 1) % 2 for k, d in zip(cfg.kernel_size, cfg.dilation))
    return cfg.padding


def build_layer(cfg: LayerConfig, in_channels: int) -> "nn.Module":
    from torch import nn

    if isinstance(cfg, ConvConfig):
        if in_channels % cfg.groups:
            raise ShapeError(
                f"groups={cfg.groups} must divide in_channels={in_channels}; "
                f"use a --groups that divides both {in_channels} and {cfg.out_channels}"
            )
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


@dataclass(frozen=True)
class AxisArithmetic:
    """One spatial axis: out = floor_or_ceil((size + 2*pad - dilation*(kernel-1) - 1)/stride + 1)."""

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
        """The input extent one window covers, dilation gaps included."""
        return self.dilation * (self.kernel - 1) + 1

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
        pad, stride, ceil, same = conv_padding(cfg), cfg.stride, False, cfg.padding == "same"
    else:
        pad, stride, ceil, same = cfg.padding, pool_stride(cfg), cfg.ceil_mode, False
    return tuple(
        AxisArithmetic(axis, size, k, s, p, d, ceil, same)
        for axis, size, k, s, p, d in zip(("H", "W"), (height, width), cfg.kernel_size, stride, pad, cfg.dilation)
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


def max_unpool(x: "torch.Tensor", cfg: PoolConfig) -> "torch.Tensor":
    """``MaxUnpool2d(MaxPool2d(x))``: each window's maximum back at its position, 0 elsewhere.

    ``output_size`` is always the input's size: left out, PyTorch infers a size from the
    pooled one, which fails or differs from the input with ceil_mode, odd sizes or padding.
    MaxUnpool2d has no dilation, so it gets the window's span (``dilation*(k-1)+1``) as its
    kernel size; with that its size check accepts every input MaxPool2d accepts.
    """
    from torch import nn

    stride = pool_stride(cfg)
    pool = nn.MaxPool2d(cfg.kernel_size, stride, cfg.padding, cfg.dilation, return_indices=True, ceil_mode=cfg.ceil_mode)
    span = tuple(d * (k - 1) + 1 for k, d in zip(cfg.kernel_size, cfg.dilation))
    pooled, indices = pool(x)
    return nn.MaxUnpool2d(span, stride, cfg.padding)(pooled, indices, output_size=x.shape[-2:])
