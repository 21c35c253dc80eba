"""The stages an experiment's images go through: one frozen config class per stage kind,
with the validator that checks what the config alone decides.

Torch-free. A new stage kind is one config class here (with ``kind``), its validator in
:data:`STAGE_VALIDATORS`, a factory and a shape rule in :mod:`convlab.layers`, and its
PyTorch signature in :mod:`convlab.modules`; the tests check every registry covers every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from convlab.errors import ConfigError
from convlab.values import Pair, names

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
POOL_MODES = ("max", "avg")


@dataclass(frozen=True)
class ConvConfig:
    kind: ClassVar[str] = "conv"
    # None: take the dataset's channel count (3 for CIFAR10).
    in_channels: int | None = None
    out_channels: int = 6
    kernel_size: Pair = (3, 3)
    stride: Pair = (1, 1)
    # A pair, or PyTorch's "same" / "valid".
    padding: Union[Pair, str] = (0, 0)
    padding_mode: str = "zeros"
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    # "random" (PyTorch's default init) or named kernels, one per output channel (see kernels.py).
    init: str = "random"
    # A .pt / .npy file with the layer's weight (out_channels, in_channels/groups, kH, kW).
    weights: str | None = None


@dataclass(frozen=True)
class PoolConfig:
    kind: ClassVar[str] = "pool"
    kernel_size: Pair = (3, 3)
    # None: the kernel size, as in PyTorch.
    stride: Pair | None = None
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    # "max" (MaxPool2d) or "avg" (AvgPool2d).
    mode: str = "max"
    # Also log MaxUnpool2d(pool(x)): only the maxima, back at their input positions.
    unpool: bool = False


# ----------------------------------------------------------------------------- what a stack adds
# The other torch.nn layers ``convlab stack`` builds. Fields are PyTorch's arguments, named,
# ordered and defaulted as PyTorch has them (device and dtype aside: see modules.py).
# ``inplace`` is kept as written but never used: each stage's output is shown after the
# next stage has run, so no stage may overwrite its input.


@dataclass(frozen=True)
class ReLUConfig:
    kind: ClassVar[str] = "relu"
    inplace: bool = False


@dataclass(frozen=True)
class LeakyReLUConfig:
    kind: ClassVar[str] = "leakyrelu"
    negative_slope: float = 0.01
    inplace: bool = False


@dataclass(frozen=True)
class SigmoidConfig:
    kind: ClassVar[str] = "sigmoid"


@dataclass(frozen=True)
class TanhConfig:
    kind: ClassVar[str] = "tanh"


@dataclass(frozen=True)
class GELUConfig:
    kind: ClassVar[str] = "gelu"
    approximate: str = "none"


@dataclass(frozen=True)
class ELUConfig:
    kind: ClassVar[str] = "elu"
    alpha: float = 1.0
    inplace: bool = False


@dataclass(frozen=True)
class BatchNorm2dConfig:
    """Run in eval mode: normalised with the running statistics (0 and 1 until weights are loaded)."""

    kind: ClassVar[str] = "batchnorm2d"
    num_features: int
    eps: float = 1e-05
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True


@dataclass(frozen=True)
class DropoutConfig:
    """Eval mode, as a trained model is used: nothing is dropped."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.5
    inplace: bool = False


@dataclass(frozen=True)
class Dropout2dConfig:
    kind: ClassVar[str] = "dropout2d"
    p: float = 0.5
    inplace: bool = False


@dataclass(frozen=True)
class FlattenConfig:
    kind: ClassVar[str] = "flatten"
    start_dim: int = 1
    end_dim: int = -1


@dataclass(frozen=True)
class LinearConfig:
    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class SoftmaxConfig:
    kind: ClassVar[str] = "softmax"
    # None: PyTorch's implicit choice, dim 1 for a batch of maps or of feature vectors.
    dim: int | None = None


@dataclass(frozen=True)
class IdentityConfig:
    kind: ClassVar[str] = "identity"


# ----------------------------------------------------------------------------- going back up


@dataclass(frozen=True)
class ConvTranspose2dConfig:
    """The gradient of a Conv2d with the same arguments: each input value stamps the kernel onto
    the output, ``stride`` apart. padding_mode is always PyTorch's only one for it, 'zeros'."""

    kind: ClassVar[str] = "convtranspose"
    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    # Added after the bottom and right edges: picks one of the sizes the Conv2d could have had.
    output_padding: Pair = (0, 0)
    groups: int = 1
    bias: bool = True
    dilation: Pair = (1, 1)


@dataclass(frozen=True)
class UpsampleConfig:
    """``nn.Upsample``: ``size`` or ``scale_factor`` (one of them), nearest or bilinear."""

    kind: ClassVar[str] = "upsample"
    size: Pair | None = None
    # Per axis (H, W); a single number is both.
    scale_factor: tuple[float, float] | None = None
    mode: str = "nearest"
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None


# One stage of an experiment: a layer kind and its arguments.
StageConfig = Union[
    ConvConfig, PoolConfig, ReLUConfig, LeakyReLUConfig, SigmoidConfig, TanhConfig, GELUConfig, ELUConfig,
    BatchNorm2dConfig, DropoutConfig, Dropout2dConfig, FlattenConfig, LinearConfig, SoftmaxConfig, IdentityConfig,
    ConvTranspose2dConfig, UpsampleConfig,
]
LayerConfig = Union[ConvConfig, PoolConfig]  # the window layers: geometry, explain and the demos take these
STAGE_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (ConvConfig, PoolConfig, ReLUConfig, LeakyReLUConfig, SigmoidConfig, TanhConfig, GELUConfig, ELUConfig,
                BatchNorm2dConfig, DropoutConfig, Dropout2dConfig, FlattenConfig, LinearConfig, SoftmaxConfig, IdentityConfig,
                ConvTranspose2dConfig, UpsampleConfig)
}
# Stages that change each value on its own, keeping the shape: a one-stage stack of one of
# these is the activation lesson, logged as 'input' and 'output'.
ELEMENTWISE_KINDS = ("relu", "leakyrelu", "sigmoid", "tanh", "gelu", "elu", "dropout", "dropout2d", "identity")


# ----------------------------------------------------------------------------- validators


def _at_least(value: int | None, name: str, minimum: int = 1) -> None:
    """``None`` (not set) passes; anything below ``minimum`` is a one-line error."""
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def _positive_pair(value: Any, name: str, *, minimum: int = 1) -> None:
    if value is None or isinstance(value, str):
        return
    h, w = value
    if h < minimum or w < minimum:
        what = "at least 1" if minimum == 1 else "0 or more"
        raise ConfigError(f"{name} must be {what}, got {h}x{w}")


def _window(stage: StageConfig) -> None:
    _positive_pair(stage.kernel_size, "kernel_size")
    _positive_pair(stage.stride, "stride")
    _positive_pair(stage.dilation, "dilation")
    _positive_pair(stage.padding, "padding", minimum=0)


def validate_conv(conv: ConvConfig) -> None:
    _window(conv)
    _at_least(conv.out_channels, "out_channels")
    _at_least(conv.in_channels, "in_channels")
    _at_least(conv.groups, "groups")
    if conv.out_channels % conv.groups:
        raise ConfigError(
            f"groups={conv.groups} must divide out_channels={conv.out_channels}; "
            f"try --groups 1 or an out_channels that is a multiple of {conv.groups}"
        )
    if conv.padding_mode not in PADDING_MODES:
        raise ConfigError(f"unknown padding_mode {conv.padding_mode!r}; choose from {', '.join(PADDING_MODES)}")
    if conv.padding == "same" and conv.stride != (1, 1):
        raise ConfigError(
            "padding 'same' needs stride 1 (PyTorch does not support it for strided "
            "convolutions); use a number for --padding"
        )
    validate_init(conv)


def validate_pool(pool: PoolConfig) -> None:
    _window(pool)
    kh, kw = pool.kernel_size
    ph, pw = pool.padding
    if ph > kh // 2 or pw > kw // 2:
        raise ConfigError(
            f"pool padding {ph}x{pw} is too large for kernel {kh}x{kw}: PyTorch allows at most "
            f"half the kernel size ({kh // 2}x{kw // 2})"
        )
    validate_pool_mode(pool)


def validate_init(conv: ConvConfig) -> None:
    """Named kernels: one per output channel, and not together with --weights.

    The names themselves are checked where the kernels live (``kernels.py``), when the layer
    is built, which is still before anything is loaded or written.
    """
    init = names(conv.init)
    if conv.weights is not None and init != ["random"]:
        raise ConfigError("--init and --weights both set the layer's weights; use one of them")
    if init != ["random"] and len(init) != conv.out_channels:
        raise ConfigError(
            f"--init names {len(init)} kernel(s) ({', '.join(init)}) but out_channels={conv.out_channels}; "
            "give one name per output channel (use 'random' for a channel with PyTorch's default "
            "init), or leave out --out-channels"
        )


def validate_pool_mode(pool: PoolConfig) -> None:
    if pool.mode not in POOL_MODES:
        raise ConfigError(f"unknown pool mode {pool.mode!r}; choose from {', '.join(POOL_MODES)}")
    if pool.mode == "avg":
        if pool.unpool:
            raise ConfigError(
                "--unpool needs --mode max: MaxUnpool2d puts each window's maximum back where it was, "
                "and average pooling keeps no positions to put anything back"
            )
        if pool.dilation != (1, 1):
            raise ConfigError("--mode avg has no dilation (torch.nn.AvgPool2d has none); use --dilation 1")


def _nothing(stage: Any) -> None:
    """A stage whose arguments PyTorch accepts whatever they are (or that has none)."""


def validate_gelu(gelu: GELUConfig) -> None:
    if gelu.approximate not in GELU_APPROXIMATIONS:
        raise ConfigError(f"GELU approximate={gelu.approximate!r}; PyTorch takes {' or '.join(map(repr, GELU_APPROXIMATIONS))}")


def validate_batchnorm2d(bn: BatchNorm2dConfig) -> None:
    _at_least(bn.num_features, "num_features")
    if not bn.eps > 0:
        raise ConfigError(f"BatchNorm2d eps must be above 0 (it keeps the division finite), got {bn.eps}")


def validate_dropout(dropout: DropoutConfig | Dropout2dConfig) -> None:
    if not 0 <= dropout.p <= 1:
        raise ConfigError(f"dropout probability p must be between 0 and 1, got {dropout.p}")


def validate_linear(linear: LinearConfig) -> None:
    _at_least(linear.in_features, "in_features")
    _at_least(linear.out_features, "out_features")


def validate_convtranspose(conv: ConvTranspose2dConfig) -> None:
    """What PyTorch refuses when it builds or first calls the layer, said before anything runs."""
    _window(conv)
    _positive_pair(conv.output_padding, "output_padding", minimum=0)
    _at_least(conv.in_channels, "in_channels")
    _at_least(conv.out_channels, "out_channels")
    _at_least(conv.groups, "groups")
    for name in ("in_channels", "out_channels"):
        if getattr(conv, name) % conv.groups:
            raise ConfigError(f"groups={conv.groups} must divide {name}={getattr(conv, name)}; use a groups that divides both channel counts")
    for axis, op, s, d in zip("HW", conv.output_padding, conv.stride, conv.dilation):
        if op >= s and op >= d:
            raise ConfigError(
                f"output_padding {op} on {axis} must be smaller than the stride ({s}) or the dilation ({d}): it picks one of "
                f"the {s} input sizes a Conv2d with stride {s} maps to the same size; use output_padding 0..{max(s, d) - 1}"
            )


def validate_upsample(up: UpsampleConfig) -> None:
    if (up.size is None) == (up.scale_factor is None):
        which = "both" if up.size is not None else "neither"
        raise ConfigError(f"Upsample takes size or scale_factor, one of them; {which} given: e.g. Upsample(scale_factor=2)")
    _positive_pair(up.size, "size")
    if up.scale_factor is not None and min(up.scale_factor) <= 0:
        h, w = up.scale_factor
        raise ConfigError(f"Upsample scale_factor must be above 0, got {h if h == w else f'({h}, {w})'}")
    if up.align_corners is not None and up.mode != "bilinear":
        raise ConfigError(f"align_corners is for mode='bilinear' only (PyTorch refuses it with mode={up.mode!r}); leave it out")
    if up.recompute_scale_factor and up.size is not None:
        raise ConfigError("recompute_scale_factor=True needs scale_factor, not size (PyTorch: it is not meaningful with an explicit size)")


GELU_APPROXIMATIONS = ("none", "tanh")
UPSAMPLE_MODES = ("nearest", "bilinear")

STAGE_VALIDATORS = {
    "conv": validate_conv, "pool": validate_pool, "relu": _nothing, "leakyrelu": _nothing, "sigmoid": _nothing,
    "tanh": _nothing, "gelu": validate_gelu, "elu": _nothing, "batchnorm2d": validate_batchnorm2d,
    "dropout": validate_dropout, "dropout2d": validate_dropout, "flatten": _nothing, "linear": validate_linear,
    "softmax": _nothing, "identity": _nothing, "convtranspose": validate_convtranspose, "upsample": validate_upsample,
}
