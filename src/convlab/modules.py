"""torch.nn layers as a learner writes them, read without running anything.

``Conv2d(3, 32, 5, padding=2)`` is parsed with :mod:`ast` into a stage config: the callee
must be one of the allow-listed ``torch.nn`` classes in :data:`SIGNATURES` (PyTorch's own
argument names, order and defaults) and every argument a literal (a number, True/False, a
string, None, or a tuple or list of those). Nothing a user types is ever evaluated. The
config is written back as a call (:func:`call_text`) that parses to the same config, which
is how ``config.toml`` repeats a stack. Torch-free.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from convlab.errors import ConfigError
from convlab.stages import (
    PADDING_MODES,
    STAGE_VALIDATORS,
    BatchNorm2dConfig,
    ConvConfig,
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
)
from convlab.values import PADDING_WORDS


class LayerError(ConfigError):
    """A layer that is not a literal call of an allow-listed torch.nn class."""


REQUIRED = object()  # an argument without a default
# A layer is one short call; past this it is not one (and ast's work stays bounded).
MAX_LAYER_CHARS = 1000
# PyTorch's layers take 32-bit sizes.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Param:
    """One argument as PyTorch names it. ``kind``: int, pair, pair?, padding, bool, float, float?,
    int?, str (one of ``choices``). ``refuse``: convlab takes only the default, and why."""

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
    "linear": "Linear", "softmax": "Softmax", "identity": "Identity",
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
    )
}
# Stage kind -> its class (the pool kind has two, told apart by mode: see signature_of).
KIND_SIGNATURES = {"conv": SIGNATURES["Conv2d"], "pool": SIGNATURES["MaxPool2d"]} | {
    kind: SIGNATURES[name] for kind, name in _TORCH_NAMES.items()
}
# What a learner may paste in front of a class name.
_PREFIXES = ("nn", "torch.nn")


def signature_of(cfg: StageConfig) -> Signature:
    if isinstance(cfg, PoolConfig):
        return SIGNATURES["AvgPool2d" if cfg.mode == "avg" else "MaxPool2d"]
    return KIND_SIGNATURES[cfg.kind]


def torch_name(cfg: StageConfig) -> str:
    """The torch.nn class a stage is: ``Conv2d``, ``MaxPool2d``, ``ReLU``, ..."""
    return signature_of(cfg).name


# ----------------------------------------------------------------------------- reading a call


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _what(node: ast.AST) -> str:
    """What a non-literal is, in a learner's words."""
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {_short(ast.unparse(node), 40)!r}"
    if isinstance(node, ast.Call):
        return f"the call {_short(ast.unparse(node), 40)!r}"
    if isinstance(node, ast.Lambda):
        return "a lambda"
    if isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp)):
        return f"the expression {_short(ast.unparse(node), 40)!r} (write the value it gives)"
    return f"{_short(ast.unparse(node), 40)!r}"


def _literal(node: ast.AST, depth: int = 0) -> Any:
    """A literal argument's value, or a LayerError saying what it is instead."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.Tuple, ast.List)) and depth == 0:
        return tuple(_literal(e, depth + 1) for e in node.elts)
    raise LayerError(
        f"{_what(node)} is not allowed in a layer's arguments; write literal values only "
        "(numbers, True/False, strings, tuples)"
    )


def _callee(node: ast.AST) -> str:
    """``Conv2d``, ``nn.Conv2d`` or ``torch.nn.Conv2d`` -> ``Conv2d``; anything else is refused."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) in _PREFIXES:
        return node.attr
    raise LayerError(f"only a torch.nn class can be called, not {_what(node)}; e.g. Conv2d(3, 32, 5, padding=2)")


def _call(text: str) -> ast.Call:
    if len(text) > MAX_LAYER_CHARS:
        raise LayerError(f"{len(text):,} characters are too many for one layer; a layer is one call such as Conv2d(3, 32, 5, padding=2)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise LayerError(f"not a layer call ({reason}); write it as in PyTorch, e.g. Conv2d(3, 32, 5, padding=2)") from None
    body = tree.body
    if isinstance(body, ast.Tuple) and len(body.elts) == 1:  # pasted with the comma from a Sequential
        body = body.elts[0]
    if isinstance(body, ast.Name) and body.id in SIGNATURES:
        raise LayerError(f"{body.id} names the class; call it to make a layer: {body.id}()")
    if not isinstance(body, ast.Call):
        raise LayerError(f"{_what(body)} is not a layer; write one call such as Conv2d(3, 32, 5, padding=2) or ReLU()")
    return body


def _signature(name: str) -> Signature:
    if name in SIGNATURES:
        return SIGNATURES[name]
    if name in ("Sequential", "ModuleList"):
        raise LayerError(f"give each layer of the {name} as its own argument (or TOML list item), not the {name}")
    by_lower = {n.lower(): n for n in SIGNATURES}
    close = [by_lower[name.lower()]] if name.lower() in by_lower else difflib.get_close_matches(name, SIGNATURES, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise LayerError(f"unknown layer {name!r}; {hint}convlab builds: {', '.join(SIGNATURES)}")


def _bind(sig: Signature, call: ast.Call) -> dict[str, Any]:
    """PyTorch's argument binding: positions in order, then keywords by name, then defaults."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        raise LayerError("*args and **kwargs are not allowed; write each argument")
    args = [_literal(a) for a in call.args]
    kwargs = {k.arg: _literal(k.value) for k in call.keywords}
    if sig.ignores_arguments:
        return {}
    names = [p.name for p in sig.params]
    if len(args) > len(names):
        raise LayerError(f"{sig.name} takes at most {len(names)} positional argument(s) ({', '.join(names)}), got {len(args)}")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LayerError(f"{sig.name} has no argument {key!r}; {hint}it takes: {', '.join(names) or 'none'}")
        if key in bound:
            raise LayerError(f"{sig.name} got {key!r} twice: by position and by keyword")
        bound[key] = value
    out = {}
    for p in sig.params:
        if p.name not in bound:
            if p.default is REQUIRED:
                needed = ", ".join(q.name for q in sig.params if q.default is REQUIRED)
                raise LayerError(f"{sig.name} needs {p.name} (its required arguments: {needed})")
            out[p.name] = p.default
            continue
        if p.refuse and bound[p.name] != p.default:
            raise LayerError(f"{sig.name}({p.name}={_value_text(bound[p.name])}): {p.refuse}")
        out[p.name] = _coerce(p, bound[p.name], sig.name)
    return out


def _coerce(p: Param, value: Any, where: str) -> Any:
    name = f"{where} {p.name}"
    kind = p.kind
    if value is None and (kind.endswith("?") or kind == "none"):
        return None
    kind = kind.rstrip("?")
    if kind in ("pair", "padding"):
        if kind == "padding" and isinstance(value, str) and value in PADDING_WORDS:
            return value
        if _is_int(value):
            return (_int(value, name), _int(value, name))
        if isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) for v in value):
            return (_int(value[0], name), _int(value[1], name))
        words = " or 'same'/'valid'" if kind == "padding" else ""
        raise LayerError(f"{name}: expected an integer or a pair (h, w){words}, got {_value_text(value)}")
    if kind == "int":
        if _is_int(value):
            return _int(value, name)
        raise LayerError(f"{name}: expected an integer, got {_value_text(value)}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise LayerError(f"{name}: expected True or False, got {_value_text(value)}")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300 and math.isfinite(value):
            return float(value)
        raise LayerError(f"{name}: expected a finite number, got {_value_text(value)}")
    if kind == "str":
        if isinstance(value, str) and value in p.choices:
            return value
        raise LayerError(f"{name}: expected one of {', '.join(map(repr, p.choices))}, got {_value_text(value)}")
    raise LayerError(f"{name}: expected None, got {_value_text(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: int, name: str) -> int:
    if abs(value) > MAX_INT:
        raise LayerError(f"{name}: {_short(str(value), 16)} is far too large; PyTorch takes at most {MAX_INT}")
    return value


def parse_layer(text: str) -> StageConfig:
    """One layer written as PyTorch code -> its stage config, or a LayerError (one line)."""
    if not isinstance(text, str):
        raise LayerError(f"expected a layer as a string such as \"ReLU()\", got {text!r}")
    call = _call(text)
    sig = _signature(_callee(call.func))
    cfg = sig.build(_bind(sig, call))
    STAGE_VALIDATORS[cfg.kind](cfg)
    return cfg


# A stack longer than this is no lesson (and each stage's output is kept for its picture).
MAX_STAGES = 100


def parse_layers(texts: Sequence[str]) -> tuple[StageConfig, ...]:
    """Every layer of a stack; an error names the stage (counted from 1) and what it says."""
    if len(texts) > MAX_STAGES:
        raise LayerError(f"a stack of {len(texts)} layers is too long; convlab runs at most {MAX_STAGES}")
    stages = []
    for i, text in enumerate(texts, 1):
        try:
            stages.append(parse_layer(text))
        except ConfigError as exc:
            shown = _short(text) if isinstance(text, str) else repr(text)
            raise LayerError(f"stage {i} {shown}: {exc}") from None
    return tuple(stages)


def split_layers(text: str) -> tuple[str, ...]:
    """A layer list written as a Sequential's arguments -> one text per layer, split by :mod:`ast`
    at the top-level commas only: ``"Conv2d(3, 8, (3, 5)), ReLU()"`` -> ``("Conv2d(3, 8, (3, 5))",
    "ReLU()")``. Nothing is evaluated or checked here: :func:`parse_layers` reads each part."""
    if len(text) > MAX_LAYER_CHARS * MAX_STAGES:
        raise LayerError(f"{len(text):,} characters are too many for a list of layers")
    # In brackets, as a Sequential's arguments are: a line break then spaces is no indentation error.
    source = f"({text.strip()}\n)"
    try:
        body = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise LayerError(f"not a list of layer calls ({reason}); separate the calls with commas, e.g. Conv2d(3, 8, 3), ReLU()") from None
    if not isinstance(body, ast.Tuple):
        return (text.strip(),)
    if not body.elts:
        raise LayerError("no layers in '()'; write calls separated by commas, e.g. Conv2d(3, 8, 3), ReLU()")
    return tuple(ast.get_source_segment(source, e) or ast.unparse(e) for e in body.elts)


# ----------------------------------------------------------------------------- writing it back


def _value_text(value: Any) -> str:
    """A value as Python code writes it: ``3``, ``(3, 5)``, ``'same'``, ``0.01``, ``True``."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1] and all(_is_int(v) for v in value):
            return str(value[0])
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    if isinstance(value, str):
        return repr(value)
    return _short(repr(value), 30)


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
            parts.append(_value_text(value))
        elif value != p.default:
            parts.append(f"{p.name}={_value_text(value)}")
    return f"{sig.name}({', '.join(parts)})"


def stage_tag(index: int, cfg: StageConfig, count: int) -> str:
    """A stage's TensorBoard tag, zero-padded so tags list in stage order: ``01-conv2d``."""
    return f"{index:0{max(2, len(str(count)))}d}-{torch_name(cfg).lower()}"
