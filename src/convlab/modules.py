"""The torch.nn classes a stack may use, as PyTorch declares them, and a stage written back.

:data:`SIGNATURES` is the allow-list: each class with PyTorch's own argument names, order and
defaults, and the stage config it makes. :mod:`convlab.calls` reads ``Conv2d(3, 32, 5,
padding=2)`` against it (every argument a literal; nothing a user types is ever evaluated);
:func:`call_text` writes a stage back as a call that parses to the same config, which is how
``config.toml`` repeats a stack. Torch-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convlab.errors import ConfigError
from convlab.stages import (
    PADDING_MODES,
    UPSAMPLE_MODES,
    BatchNorm2dConfig,
    ConvConfig,
    ConvTranspose2dConfig,
    Dropout2dConfig,
    DropoutConfig,
    ELUConfig,
    FlattenConfig,
    GELUConfig,
    IdentityConfig,
    LeakyReLUConfig,
    LinearConfig,
    PoolConfig,
    ReLUConfig,
    SigmoidConfig,
    SoftmaxConfig,
    StageConfig,
    TanhConfig,
    UpsampleConfig,
)


class LayerError(ConfigError):
    """A layer that is not a literal call of an allow-listed torch.nn class."""


REQUIRED = object()  # an argument without a default
# A layer is one short call; past this it is not one (and ast's work stays bounded).
MAX_LAYER_CHARS = 1000
# PyTorch's layers take 32-bit sizes.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Param:
    """One argument as PyTorch names it. ``kind``: int, pair, pair?, padding, bool, bool?, float, float?,
    scale? (a number or a pair of numbers, kept as a pair of floats), int?, str (one of ``choices``). ``refuse``: convlab takes only the default, and why."""

    name: str
    default: Any = REQUIRED
    kind: str = "int"
    choices: tuple[str, ...] = ()
    refuse: str = ""


@dataclass(frozen=True)
class Signature:
    """A torch.nn class: its arguments in PyTorch's order (each by position or keyword), the
    stage config they make, and the arguments a config gives back."""

    name: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], StageConfig]
    arguments: Callable[[Any], dict[str, Any]]
    # Identity takes any arguments and ignores them, as PyTorch's does.
    ignores_arguments: bool = False


def _fields(cfg: Any) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _plain(cls: type, *params: Param, ignores_arguments: bool = False) -> Signature:
    """A class whose config fields are exactly its arguments (device and dtype aside)."""
    own = {f.name for f in dataclasses.fields(cls)}
    return Signature(
        _TORCH_NAMES[cls.kind],
        params,
        lambda bound: cls(**{k: v for k, v in bound.items() if k in own}),
        _fields,
        ignores_arguments,
    )


_TORCH_NAMES = {
    "relu": "ReLU", "leakyrelu": "LeakyReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "gelu": "GELU", "elu": "ELU",
    "batchnorm2d": "BatchNorm2d", "dropout": "Dropout", "dropout2d": "Dropout2d", "flatten": "Flatten",
    "linear": "Linear", "softmax": "Softmax", "identity": "Identity", "convtranspose": "ConvTranspose2d",
    "upsample": "Upsample",
}
_DEVICE = Param("device", None, "none", refuse="convlab puts every layer on --device; leave device out")
_DTYPE = Param("dtype", None, "none", refuse="convlab runs every layer in float32; leave dtype out")
_INPLACE = Param("inplace", False, "bool")


def _conv(bound: dict[str, Any]) -> ConvConfig:
    return ConvConfig(**{k: v for k, v in bound.items() if k not in ("device", "dtype")})


def _conv_arguments(cfg: ConvConfig) -> dict[str, Any]:
    return {k: v for k, v in _fields(cfg).items() if k not in ("init", "weights")}


def _pool(mode: str) -> Callable[[dict[str, Any]], PoolConfig]:
    def build(bound: dict[str, Any]) -> PoolConfig:
        keep = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
        return PoolConfig(mode=mode, **{k: v for k, v in bound.items() if k in keep})

    return build


def _pool_arguments(cfg: PoolConfig) -> dict[str, Any]:
    args = {"kernel_size": cfg.kernel_size, "stride": cfg.stride, "padding": cfg.padding}
    if cfg.mode == "max":
        args["dilation"] = cfg.dilation
    args["ceil_mode"] = cfg.ceil_mode
    return args


_WINDOW = (Param("kernel_size", kind="pair"), Param("stride", None, "pair?"), Param("padding", (0, 0), "pair"))

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature(
            "Conv2d",
            (
                Param("in_channels"), Param("out_channels"), Param("kernel_size", kind="pair"),
                Param("stride", (1, 1), "pair"), Param("padding", (0, 0), "padding"), Param("dilation", (1, 1), "pair"),
                Param("groups", 1), Param("bias", True, "bool"),
                Param("padding_mode", "zeros", "str", PADDING_MODES), _DEVICE, _DTYPE,
            ),
            _conv,
            _conv_arguments,
        ),
        Signature(
            "MaxPool2d",
            (
                *_WINDOW, Param("dilation", (1, 1), "pair"),
                Param("return_indices", False, "bool", refuse="it makes MaxPool2d return (output, indices), "
                      "which no next stage takes; leave return_indices out"),
                Param("ceil_mode", False, "bool"),
            ),
            _pool("max"),
            _pool_arguments,
        ),
        Signature(
            "AvgPool2d",
            (
                *_WINDOW, Param("ceil_mode", False, "bool"),
                Param("count_include_pad", True, "bool", refuse="convlab's AvgPool2d counts padded zeros in the "
                      "average, as PyTorch does by default; leave count_include_pad out"),
                Param("divisor_override", None, "int?", refuse="convlab's AvgPool2d divides by the window size, "
                      "as PyTorch does by default; leave divisor_override out"),
            ),
            _pool("avg"),
            _pool_arguments,
        ),
        _plain(ReLUConfig, _INPLACE),
        _plain(LeakyReLUConfig, Param("negative_slope", 0.01, "float"), _INPLACE),
        _plain(SigmoidConfig),
        _plain(TanhConfig),
        _plain(GELUConfig, Param("approximate", "none", "str", ("none", "tanh"))),
        _plain(ELUConfig, Param("alpha", 1.0, "float"), _INPLACE),
        _plain(
            BatchNorm2dConfig, Param("num_features"), Param("eps", 1e-05, "float"), Param("momentum", 0.1, "float?"),
            Param("affine", True, "bool"), Param("track_running_stats", True, "bool"), _DEVICE, _DTYPE,
        ),
        _plain(DropoutConfig, Param("p", 0.5, "float"), _INPLACE),
        _plain(Dropout2dConfig, Param("p", 0.5, "float"), _INPLACE),
        _plain(FlattenConfig, Param("start_dim", 1), Param("end_dim", -1)),
        _plain(LinearConfig, Param("in_features"), Param("out_features"), Param("bias", True, "bool"), _DEVICE, _DTYPE),
        _plain(SoftmaxConfig, Param("dim", None, "int?")),
        _plain(IdentityConfig, ignores_arguments=True),
        _plain(
            ConvTranspose2dConfig,
            Param("in_channels"), Param("out_channels"), Param("kernel_size", kind="pair"), Param("stride", (1, 1), "pair"),
            Param("padding", (0, 0), "pair"), Param("output_padding", (0, 0), "pair"), Param("groups", 1),
            Param("bias", True, "bool"), Param("dilation", (1, 1), "pair"),
            Param("padding_mode", "zeros", "str", PADDING_MODES, refuse="PyTorch's ConvTranspose2d pads with zeros only "
                  "(it refuses any other padding_mode); leave padding_mode out"),
            _DEVICE, _DTYPE,
        ),
        _plain(
            UpsampleConfig, Param("size", None, "pair?"), Param("scale_factor", None, "scale?"),
            Param("mode", "nearest", "str", UPSAMPLE_MODES), Param("align_corners", None, "bool?"),
            Param("recompute_scale_factor", None, "bool?"),
        ),
    )
}
# Stage kind -> its class (the pool kind has two, told apart by mode: see signature_of).
KIND_SIGNATURES = {"conv": SIGNATURES["Conv2d"], "pool": SIGNATURES["MaxPool2d"]} | {
    kind: SIGNATURES[name] for kind, name in _TORCH_NAMES.items()
}
# What a learner may paste in front of a class name.
TORCH_PREFIXES = ("nn", "torch.nn")


def signature_of(cfg: StageConfig) -> Signature:
    if isinstance(cfg, PoolConfig):
        return SIGNATURES["AvgPool2d" if cfg.mode == "avg" else "MaxPool2d"]
    return KIND_SIGNATURES[cfg.kind]


def torch_name(cfg: StageConfig) -> str:
    """The torch.nn class a stage is: ``Conv2d``, ``MaxPool2d``, ``ReLU``, ..."""
    return signature_of(cfg).name


def stage_of(module: Any) -> StageConfig | None:
    """A torch.nn module of an allow-listed class (that class itself, not a subclass) read back as
    its stage: each argument from the module's attribute of the same name (``bias``: whether it has
    one). None for any other module, or one whose arguments convlab does not take
    (``Upsample(mode='bicubic')``, a ``Conv2d`` whose groups do not divide its channels)."""
    from convlab.stages import STAGE_VALIDATORS

    cls = type(module)
    sig = SIGNATURES.get(cls.__name__)
    if sig is None or not cls.__module__.startswith("torch.nn.modules."):
        return None
    bound = {}
    for p in sig.params:
        if p.kind == "none" or p.refuse:
            continue  # device and dtype; and what convlab takes only at PyTorch's default
        value = getattr(module, p.name, p.default)
        if p.name == "bias" and p.kind == "bool":
            value = value is not None  # the module holds the bias itself, or None
        elif p.kind in ("pair", "pair?", "padding", "scale?") and value is not None and not isinstance(value, str):
            value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
            value = tuple(float(v) for v in value) if p.kind == "scale?" else value
        if value is REQUIRED or (p.choices and value not in p.choices):
            return None
        bound[p.name] = value
    try:
        cfg = sig.build(bound)
        STAGE_VALIDATORS[cfg.kind](cfg)
    except (ConfigError, TypeError, ValueError):
        return None
    return cfg


# ----------------------------------------------------------------------------- text helpers


def short_text(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)



# ----------------------------------------------------------------------------- writing it back


def value_text(value: Any) -> str:
    """A value as Python code writes it: ``3``, ``(3, 5)``, ``'same'``, ``0.01``, ``True``."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1] and all(is_int(v) or isinstance(v, float) for v in value):
            return value_text(value[0])
        return "(" + ", ".join(value_text(v) for v in value) + ")"
    if isinstance(value, str):
        return repr(value)
    return short_text(repr(value), 30)


def call_text(cfg: StageConfig) -> str:
    """The stage as a call that parses back to it: required arguments by position, every other
    one that differs from PyTorch's default by keyword, e.g. ``Conv2d(3, 32, 5, padding=2)``."""
    sig = signature_of(cfg)
    values = sig.arguments(cfg)
    parts = []
    for p in sig.params:
        if p.name not in values:
            continue
        value = values[p.name]
        if p.default is REQUIRED:
            parts.append(value_text(value))
        elif value != p.default:
            parts.append(f"{p.name}={value_text(value)}")
    return f"{sig.name}({', '.join(parts)})"


def stage_tag(index: int, cfg: StageConfig, count: int) -> str:
    """A stage's TensorBoard tag, zero-padded so tags list in stage order: ``01-conv2d``."""
    return f"{index:0{max(2, len(str(count)))}d}-{torch_name(cfg).lower()}"


def input_tag(count: int) -> str:
    """The images' tag in a stack of ``count`` stages, as stage 0: ``00-input`` lists before
    ``01-conv2d`` (TensorBoard sorts tags by name; ``input`` came after ``09-linear``)."""
    return f"{0:0{max(2, len(str(count)))}d}-input"
