"""Stage kind -> the real nn.Module, and each kind's shape rule.

``build_layer`` returns a real ``torch.nn`` module with exactly the configured arguments
(:data:`FACTORIES`, one entry per stage kind). ``stage_output_shape`` predicts a stage's
output per image, a ``(C, H, W)`` map or ``(F,)`` features (:data:`SHAPE_RULES`); a window
layer's output size comes from :mod:`convlab.geometry`'s arithmetic (PyTorch's documented
formulas), and every impossible shape is a :class:`ShapeError` that says the sizes. The
memory guards refuse, before anything is allocated, weights or a batch no lesson means.
torch is imported inside the factories only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convlab.errors import ConfigError
from convlab.geometry import as_written, axis_arithmetic, hw, pool_stride, span
from convlab.kernels import init_conv
from convlab.modules import call_text, torch_name
from convlab.stages import (
    ELEMENTWISE_KINDS,
    ConvConfig,
    ConvTranspose2dConfig,
    LayerConfig,
    PoolConfig,
    StageConfig,
    UpsampleConfig,
)
from convlab.upsampling import transposed_axes, upsample_axes

if TYPE_CHECKING:
    import torch
    from torch import nn


class ShapeError(ConfigError):
    """The layer cannot be applied to inputs of this shape."""


class UnreadWindow(ShapeError):
    """A max pool window that reads no input value: ``reason`` says where, ``fits`` the layers
    (the same, with less padding or dilation) that would fit; the message says both in flags."""

    def __init__(self, reason: str, fits: tuple[PoolConfig, ...], fix: str):
        super().__init__(f"{reason}; use {fix}")
        self.reason, self.fits = reason, fits


def resolved_in_channels(cfg: LayerConfig, data_channels: int) -> int:
    if isinstance(cfg, ConvConfig) and cfg.in_channels is not None:
        if cfg.in_channels != data_channels:
            raise ShapeError(
                f"in_channels={cfg.in_channels} but the images have {data_channels} channel(s); "
                f"drop --in-channels or set it to {data_channels}"
            )
        return cfg.in_channels
    return data_channels


def build_layer(cfg: StageConfig, in_channels: int) -> nn.Module:
    """The real module. ``output_shape`` comes first on every path: it turns what the
    constructor would raise (groups that do not divide in_channels) into a ShapeError."""
    return FACTORIES[cfg.kind](cfg, in_channels)


def _conv(cfg: ConvConfig, in_channels: int) -> nn.Module:
    from torch import nn

    conv = nn.Conv2d(
        cfg.in_channels if cfg.in_channels is not None else in_channels,
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


def _pool(cfg: PoolConfig, in_channels: int) -> nn.Module:
    from torch import nn

    # Given as a learner writes them (3 for 3x3), so the module prints as PyTorch prints
    # MaxPool2d(3): the pools keep their arguments as given, where Conv2d makes pairs of them.
    kernel, stride, padding = (as_written(v) for v in (cfg.kernel_size, pool_stride(cfg), cfg.padding))
    if cfg.mode == "avg":
        # count_include_pad stays PyTorch's default (True): padded zeros count in the average.
        return nn.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=cfg.ceil_mode)
    return nn.MaxPool2d(kernel_size=kernel, stride=stride, padding=padding, dilation=as_written(cfg.dilation), ceil_mode=cfg.ceil_mode)


def _torch(build: Callable[[Any], nn.Module]) -> Callable[[Any, int], nn.Module]:
    """A factory that needs only the config (and torch.nn, imported on first use)."""

    def factory(cfg: Any, in_channels: int) -> nn.Module:
        from torch import nn

        return build(nn, cfg)

    return factory


# inplace is never passed on: every stage's output is still shown after the next stage ran.
FACTORIES: dict[str, Callable[[Any, int], nn.Module]] = {
    "conv": _conv,
    "pool": _pool,
    "relu": _torch(lambda nn, c: nn.ReLU()),
    "leakyrelu": _torch(lambda nn, c: nn.LeakyReLU(c.negative_slope)),
    "sigmoid": _torch(lambda nn, c: nn.Sigmoid()),
    "tanh": _torch(lambda nn, c: nn.Tanh()),
    "gelu": _torch(lambda nn, c: nn.GELU(approximate=c.approximate)),
    "elu": _torch(lambda nn, c: nn.ELU(c.alpha)),
    "batchnorm2d": _torch(lambda nn, c: nn.BatchNorm2d(c.num_features, c.eps, c.momentum, c.affine, c.track_running_stats)),
    "dropout": _torch(lambda nn, c: nn.Dropout(c.p)),
    "dropout2d": _torch(lambda nn, c: nn.Dropout2d(c.p)),
    "flatten": _torch(lambda nn, c: nn.Flatten(c.start_dim, c.end_dim)),
    "linear": _torch(lambda nn, c: nn.Linear(c.in_features, c.out_features, c.bias)),
    # dim None is PyTorch's implicit dim 1 for batches of maps or features; given, it warns no more.
    "softmax": _torch(lambda nn, c: nn.Softmax(dim=1 if c.dim is None else c.dim)),
    "identity": _torch(lambda nn, c: nn.Identity()),
    "convtranspose": _torch(lambda nn, c: nn.ConvTranspose2d(
        c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.output_padding, c.groups, c.bias, c.dilation)),
    # One number where both axes agree, as typed: the module (and its repr) is PyTorch's own.
    "upsample": _torch(lambda nn, c: nn.Upsample(_one(c.size), _one(c.scale_factor), c.mode, c.align_corners, c.recompute_scale_factor)),
}


def _one(pair: tuple[Any, Any] | None) -> Any:
    return pair[0] if pair is not None and pair[0] == pair[1] else pair


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
    if isinstance(cfg, PoolConfig) and cfg.mode == "max":
        for a in axes:
            window = a.unread_window()
            if window is not None:
                raise _unread_window(cfg, input_shape, a, window)
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


def _unread_window(cfg: PoolConfig, input_shape: tuple[int, int, int], a: Any, window: int) -> UnreadWindow:
    """A max pool window that reads only padding: which, where, and the padding or dilation that would fit."""
    import dataclasses

    axis = 0 if a.axis == "H" else 1
    what = ("height", "rows") if axis == 0 else ("width", "columns")
    taps = list(a.taps(window))
    shown = ", ".join(map(str, taps[:4])) + (f", ... {taps[-1]}" if len(taps) > 4 else "")

    def fits(changed: PoolConfig) -> bool:
        try:
            output_shape(changed, input_shape)
        except ShapeError:
            return False
        return True

    def changed(pair: tuple[int, int], value: int) -> tuple[int, int]:
        return (value, value) if pair[0] == pair[1] else tuple(value if i == axis else v for i, v in enumerate(pair))

    layers, flags = [], []
    for name, low in (("padding", 0), ("dilation", 1)):
        pair = getattr(cfg, name)
        # The largest smaller value that fits (a few thousand tries at most, each a few integer operations).
        for value in range(pair[axis] - 1, max(low, pair[axis] - 4096) - 1, -1):
            layer = dataclasses.replace(cfg, **{name: changed(pair, value)})
            if fits(layer):
                layers.append(layer)
                flags.append(f"--{name} {hw(getattr(layer, name))}")
                break
    inside = f"{what[1][:-1]} 0" if a.size == 1 else f"{what[1]} 0 to {a.size - 1}"
    reason = (
        f"window {window} on the input's {what[0]} of {a.size} reads only padding ({what[1]} {shown}; the input is "
        f"{inside}), no input value: PyTorch's MaxPool2d gives -inf there, with an index outside the input that its "
        "backward pass writes to (a memory error)"
    )
    return UnreadWindow(reason, tuple(layers), " or ".join(flags) or "a larger input, or a smaller --dilation or --padding")


# ----------------------------------------------------------------------------- shapes of any stage

# Per image: (C, H, W) for a map, (F,) for feature vectors.
Shape = tuple[int, ...]


def shape_text(shape: Shape) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else f"a {tuple(shape)} map (C, H, W)"


def _need_map(cfg: StageConfig, shape: Shape, fix: str = "put it before Flatten()") -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{torch_name(cfg)} works on (C, H, W) maps, but its input is {shape_text(shape)} per image; {fix}")
    return shape  # type: ignore[return-value]


def _window_shape(cfg: LayerConfig, shape: Shape) -> Shape:
    return output_shape(cfg, _need_map(cfg, shape))


def _same(cfg: StageConfig, shape: Shape) -> Shape:
    return shape


def _batchnorm2d(cfg: Any, shape: Shape) -> Shape:
    channels = _need_map(cfg, shape)[0]
    if cfg.num_features != channels:
        raise ShapeError(f"num_features={cfg.num_features} but the input has {channels} channels; use BatchNorm2d({channels})")
    return shape


def _dropout2d(cfg: Any, shape: Shape) -> Shape:
    return _need_map(cfg, shape, "Dropout2d zeroes whole channels; on features use Dropout()")


def _flatten(cfg: Any, shape: Shape) -> Shape:
    dims = 1 + len(shape)  # the batch's dims: N first
    for name, dim in (("start_dim", cfg.start_dim), ("end_dim", cfg.end_dim)):
        if not -dims <= dim < dims:
            raise ShapeError(f"Flatten {name}={dim}: a batch of {shape_text(shape)} has dims 0..{dims - 1} (or -{dims}..-1)")
    start, end = cfg.start_dim % dims, cfg.end_dim % dims
    if start == 0:
        raise ShapeError("Flatten(start_dim=0) would flatten the whole batch into one vector; convlab shows images one by one: use Flatten()")
    if start > end:
        raise ShapeError(f"Flatten start_dim={cfg.start_dim} comes after end_dim={cfg.end_dim}; use Flatten()")
    out = (*shape[: start - 1], math.prod(shape[start - 1 : end]), *shape[end:])
    if len(out) not in (1, 3):
        raise ShapeError(
            f"{call_text(cfg)} gives {tuple(out)} per image, neither a (C, H, W) map nor a feature vector; use Flatten()"
        )
    return out


def _linear(cfg: Any, shape: Shape) -> Shape:
    if len(shape) != 1:
        raise ShapeError(
            f"Linear takes feature vectors, but its input is {shape_text(shape)} per image; put Flatten() before it "
            f"(it gives {math.prod(shape)} = {'x'.join(map(str, shape))} features)"
        )
    if cfg.in_features != shape[0]:
        raise ShapeError(f"in_features={cfg.in_features} but the input has {shape[0]} features; use Linear({shape[0]}, {cfg.out_features})")
    return (cfg.out_features,)


def _softmax(cfg: Any, shape: Shape) -> Shape:
    if cfg.dim is None:
        return shape
    dims = 1 + len(shape)
    if not -dims <= cfg.dim < dims:
        raise ShapeError(f"Softmax dim={cfg.dim}: a batch of {shape_text(shape)} has dims 0..{dims - 1} (or -{dims}..-1)")
    if cfg.dim % dims == 0:
        raise ShapeError(f"Softmax(dim={cfg.dim}) would normalise across the images of a batch; use Softmax(dim=1)")
    return shape


def _convtranspose(cfg: ConvTranspose2dConfig, shape: Shape) -> Shape:
    channels, height, width = _need_map(cfg, shape)
    if cfg.in_channels != channels:
        raise ShapeError(f"in_channels={cfg.in_channels} but the input has {channels} channels")
    for a in transposed_axes(cfg, height, width):
        if a.out < 1:
            raise ShapeError(
                f"ConvTranspose2d gives {a.formula()} on {'the height' if a.axis == 'H' else 'the width'}: padding "
                f"{a.pad} crops more than the {a.out + 2 * a.pad} rows it makes; use less padding"
            )
    return (cfg.out_channels, *(a.out for a in transposed_axes(cfg, height, width)))


def _upsample(cfg: UpsampleConfig, shape: Shape) -> Shape:
    channels, height, width = _need_map(cfg, shape)
    axes = upsample_axes(cfg, height, width)
    for name, n, a in zip(("height", "width"), (height, width), axes):
        if a.out < 1:
            factor = cfg.scale_factor[0 if name == "height" else 1]
            raise ShapeError(
                f"scale_factor {factor} makes the {name} floor({n} * {factor}) = {a.out}; use a scale_factor "
                f"of at least {1 / n:.3g}, or size"
            )
    return (channels, axes[0].out, axes[1].out)


SHAPE_RULES: dict[str, Callable[[Any, Shape], Shape]] = {
    "conv": _window_shape,
    "pool": _window_shape,
    **{kind: _same for kind in ELEMENTWISE_KINDS if kind != "dropout2d"},
    "dropout2d": _dropout2d,
    "batchnorm2d": _batchnorm2d,
    "flatten": _flatten,
    "linear": _linear,
    "softmax": _softmax,
    "convtranspose": _convtranspose,
    "upsample": _upsample,
}


# ----------------------------------------------------------------------------- memory guards

# 4 GiB of float32 for one batch's output or the weights: far beyond any lesson (the tutorial's
# batch is 1.4 MB); past it a typo (-p 10000, -c 1000000) would exhaust memory mid-run.
MAX_TENSOR_ELEMENTS = 2**30


def check_weights(stage: StageConfig, in_channels: int) -> None:
    """Refuse, before allocating them, weights that no lesson means."""
    if isinstance(stage, ConvConfig):
        kh, kw = stage.kernel_size
        per_group = max(in_channels // stage.groups, 1)
        elements = stage.out_channels * per_group * kh * kw
        if elements > MAX_TENSOR_ELEMENTS:
            raise ConfigError(
                f"the weights ({stage.out_channels} x {per_group} x {kh} x {kw}) would need "
                f"{elements * 4 / 2**30:,.0f} GiB; use a smaller --out-channels or --kernel"
            )
    if isinstance(stage, ConvTranspose2dConfig):
        kh, kw = stage.kernel_size
        elements = stage.in_channels * (stage.out_channels // stage.groups) * kh * kw
        if elements > MAX_TENSOR_ELEMENTS:
            raise ConfigError(
                f"the weights of {call_text(stage)} ({stage.in_channels} x {stage.out_channels // stage.groups} x {kh} x {kw}) "
                f"would need {elements * 4 / 2**30:,.0f} GiB; use fewer channels or a smaller kernel_size"
            )
    if stage.kind == "linear" and stage.in_features * stage.out_features > MAX_TENSOR_ELEMENTS:
        raise ConfigError(
            f"the weights of {call_text(stage)} ({stage.out_features} x {stage.in_features}) would need "
            f"{stage.in_features * stage.out_features * 4 / 2**30:,.0f} GiB; use fewer features"
        )


def check_batch_memory(batch_size: int, num_images: int, shape: Shape) -> None:
    """Refuse a stage whose one batch of output no lesson means, before anything runs."""
    batch = min(batch_size, num_images)
    elements = batch * math.prod(shape)
    if elements > MAX_TENSOR_ELEMENTS:
        what = "(C, H, W)" if len(shape) == 3 else "features"
        raise ConfigError(
            f"one batch of {batch} outputs of {shape} {what} would need "
            f"{elements * 4 / 2**30:,.0f} GiB; use a smaller --batch-size, --padding or --out-channels"
        )


def stage_output_shape(cfg: StageConfig, input_shape: Shape) -> Shape:
    """A stage's output per image, or a ShapeError saying why it cannot take this input."""
    return SHAPE_RULES[cfg.kind](cfg, tuple(input_shape))


def describe_arithmetic(cfg: StageConfig, input_shape: Shape) -> list[str]:
    """Human-readable lines: the output-size formula with the numbers substituted."""
    if not isinstance(cfg, (ConvConfig, PoolConfig)):
        out = stage_output_shape(cfg, input_shape)
        return [f"{shape_text(tuple(input_shape))} -> {shape_text(out)}"]
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
