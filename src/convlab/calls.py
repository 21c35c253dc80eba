"""Reading a layer as a learner writes it: ``Conv2d(3, 32, 5, padding=2)`` parsed with
:mod:`ast`, the callee looked up in :mod:`convlab.modules`' allow-list, every argument a
literal bound to PyTorch's own signature, into a stage config. Nothing is evaluated.
"""

from __future__ import annotations

import ast
import difflib
import math
import shlex
from collections.abc import Sequence
from typing import Any

from convlab.errors import ConfigError
from convlab.modules import (
    MAX_INT,
    MAX_LAYER_CHARS,
    REQUIRED,
    SIGNATURES,
    TORCH_PREFIXES,
    LayerError,
    Param,
    Signature,
    is_int,
    short_text,
    value_text,
)
from convlab.stages import STAGE_VALIDATORS, StageConfig
from convlab.values import PADDING_WORDS


def _what(node: ast.AST) -> str:
    """What a non-literal is, in a learner's words."""
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {short_text(ast.unparse(node), 40)!r}"
    if isinstance(node, ast.Call):
        return f"the call {short_text(ast.unparse(node), 40)!r}"
    if isinstance(node, ast.Lambda):
        return "a lambda"
    if isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp)):
        return f"the expression {short_text(ast.unparse(node), 40)!r} (write the value it gives)"
    return f"{short_text(ast.unparse(node), 40)!r}"


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
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) in TORCH_PREFIXES:
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
    if isinstance(body, ast.Tuple) and all(isinstance(e, ast.Call) for e in body.elts):  # a Sequential's arguments
        parts = " ".join(_shell_word(ast.get_source_segment(text.strip(), e) or ast.unparse(e)) for e in body.elts)
        raise LayerError(
            f"{len(body.elts)} layers separated by commas in one argument; give each layer as its own argument: "
            f"{short_text(parts, 200)} (in a config file, each its own item of the layers list)"
        )
    if isinstance(body, ast.Name) and body.id in SIGNATURES:
        raise LayerError(f"{body.id} names the class; call it to make a layer: {body.id}()")
    if not isinstance(body, ast.Call):
        raise LayerError(f"{_what(body)} is not a layer; write one call such as Conv2d(3, 32, 5, padding=2) or ReLU()")
    return body


def _shell_word(text: str) -> str:
    """A layer as one shell argument, in double quotes as the docs write them where that is safe."""
    return f'"{text}"' if not any(c in text for c in '"$`\\!') else shlex.quote(text)


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
            raise LayerError(f"{sig.name}({p.name}={value_text(bound[p.name])}): {p.refuse}")
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
        if is_int(value):
            return (_int(value, name), _int(value, name))
        if isinstance(value, tuple) and len(value) == 2 and all(is_int(v) for v in value):
            return (_int(value[0], name), _int(value[1], name))
        words = " or 'same'/'valid'" if kind == "padding" else ""
        raise LayerError(f"{name}: expected an integer or a pair (h, w){words}, got {value_text(value)}")
    if kind == "int":
        if is_int(value):
            return _int(value, name)
        raise LayerError(f"{name}: expected an integer, got {value_text(value)}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise LayerError(f"{name}: expected True or False, got {value_text(value)}")
    if kind == "float":
        if _finite(value):
            return float(value)
        raise LayerError(f"{name}: expected a finite number, got {value_text(value)}")
    if kind == "scale":
        if _finite(value) and value == 0:
            return None  # as PyTorch's Upsample reads it: scale_factor=0 is none given
        if _finite(value):
            return (float(value), float(value))
        if isinstance(value, tuple) and len(value) == 2 and all(_finite(v) for v in value):
            return (float(value[0]), float(value[1]))
        raise LayerError(f"{name}: expected a finite number or a pair (h, w) of them, got {value_text(value)}")
    if kind == "str":
        if isinstance(value, str) and value in p.choices:
            return value
        raise LayerError(f"{name}: expected one of {', '.join(map(repr, p.choices))}, got {value_text(value)}")
    raise LayerError(f"{name}: expected None, got {value_text(value)}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300 and math.isfinite(value)


def _int(value: int, name: str) -> int:
    if abs(value) > MAX_INT:
        raise LayerError(f"{name}: {short_text(str(value), 16)} is far too large; PyTorch takes at most {MAX_INT}")
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
            shown = short_text(text) if isinstance(text, str) else repr(text)
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
