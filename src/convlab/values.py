"""Text from flags and TOML files -> typed values, and values -> TOML text that reads back.

Torch-free and dataclass-free: :mod:`convlab.config` says which field takes which kind of
value; this module knows how to read each kind and how to write it back.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Union

from convlab.errors import ConfigError
from convlab.files import read_bytes

Pair = tuple[int, int]
PADDING_WORDS = ("same", "valid")


_HXW = re.compile(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*")
# More digits than any size or seed PyTorch takes; int() of a huge string is slow, and Python
# refuses past 4300 digits, so the length is checked first.
_MAX_DIGITS = 30


def _to_int(text: str, name: str) -> int:
    if len(text.strip().lstrip("+-")) > _MAX_DIGITS:
        raise ConfigError(f"{name}: {text.strip()[:12]}... ({len(text.strip())} digits) is far too large")
    return int(text)


def parse_pair(value: Any, name: str, *, words: tuple[str, ...] = ()) -> Union[Pair, str]:
    """An int, ``"HxW"``, ``[h, w]`` (or one of ``words``) -> ``(h, w)``; sign is checked later."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer or HxW, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return (int(value[0]), int(value[1]))
        raise ConfigError(f"{name}: expected two integers [h, w], got {list(value)!r}")
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in words:
            return text.lower()
        if re.fullmatch(r"-?\d+", text):
            n = _to_int(text, name)
            return (n, n)
        m = _HXW.fullmatch(text)
        if m:
            return (_to_int(m.group(1), name), _to_int(m.group(2), name))
    choices = ", ".join(("N", "HxW", *words))
    raise ConfigError(f"{name}: cannot read {value!r}; use one of: {choices} (e.g. 3 or 3x5)")


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return _to_int(value, name)
    raise ConfigError(f"{name}: expected an integer, got {value!r}")


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _parse_float(value: Any, name: str) -> float:
    """A finite number: an int or float from TOML, a float from a flag, or its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    else:
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(number):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return number


def _parse_str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"{name}: expected a string, got {value!r}")


_PAIR_FIELDS = {"kernel_size", "stride", "dilation", "padding"}
_INT_FIELDS = {
    "in_channels", "out_channels", "groups", "batch_size", "max_batches", "seed", "image_size", "images", "zoom",
    "upto", "max_channels", "epochs", "max_steps", "eval_every", "snapshot_every", "eval_batches",
    "top_k", "layer", "pictures", "k",
}
_FLOAT_FIELDS = {"lr", "holdout", "weight_decay"}
_BOOL_FIELDS = {"download", "bias", "ceil_mode", "grayscale", "unpool", "shuffle", "top"}
_NAME_LIST_FIELDS = {"init", "show", "attributions"}
_TEXT_LIST_FIELDS = {"layers", "paths"}
_INT_LIST_FIELDS = {"stages", "channels"}


def _parse_names(value: Any, name: str) -> str:
    """``"a, B"`` or ``["a", "B"]`` -> ``"a,b"``: a list of names kept as one canonical string."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ConfigError(f"{name}: expected comma-separated names or a list of strings, got {value!r}")
    names = [item.strip().lower() for item in items]
    if not names or any(not n for n in names):
        raise ConfigError(f"{name}: empty name in {value!r}; separate names with single commas")
    return ",".join(names)


def _parse_texts(value: Any, name: str) -> tuple[str, ...]:
    """A list of strings kept as written (each is read later, e.g. a layer's PyTorch code)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    example = '["photo.jpg", "my_photos"]' if name.endswith("paths") else '["Conv2d(3, 32, 5, padding=2)", "ReLU()"]'
    raise ConfigError(f"{name}: expected a list of strings, e.g. {example}, got {value!r}")


def _parse_ints(value: Any, name: str) -> tuple[int, ...]:
    """``"1,3,5"``, ``3`` or ``[1, 3, 5]`` -> ``(1, 3, 5)``; the range is checked later."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    return tuple(_parse_int(item.strip() if isinstance(item, str) else item, name) for item in items)


def names(value: str | None) -> list[str]:
    """A canonical name-list field (``init``, ``show``) as a list."""
    return value.split(",") if value else []


def parse_value(section: str, key: str, value: Any) -> Any:
    """Coerce one raw value (from TOML or a CLI flag) to the field's type."""
    name = f"{section}.{key}"
    if value is None:
        return None
    if key in _PAIR_FIELDS:
        words = PADDING_WORDS if (section == "conv" and key == "padding") else ()
        return parse_pair(value, name, words=words)
    if key in _INT_FIELDS:
        return _parse_int(value, name)
    if key in _FLOAT_FIELDS:
        return _parse_float(value, name)
    if key in _BOOL_FIELDS:
        return _parse_bool(value, name)
    if key in _NAME_LIST_FIELDS:
        return _parse_names(value, name)
    if key in _TEXT_LIST_FIELDS:
        return _parse_texts(value, name)
    if key in _INT_LIST_FIELDS:
        return _parse_ints(value, name)
    return _parse_str(value, name)


def switch_or_text(key: str, text: str) -> Any:
    """A value typed as text for ``key`` (``convlab sweep --vary KEY=...``) as its flag gives it.

    A switch (``ceil_mode``, ``unpool``, ``bias``, ...) is a ``--x/--no-x`` flag, which gives a
    bool, so ``true``/``false`` become one; any other value is the text itself, as an option
    gives it, and :func:`parse_value` reads it.
    """
    if key in _BOOL_FIELDS and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return text


# An experiment file is a few hundred bytes; past this it is not one (e.g. --config /dev/zero).
MAX_CONFIG_BYTES = 1 << 20


def read_text_file(path: Path) -> str:
    """A config file's text: a regular file of at most MAX_CONFIG_BYTES, in UTF-8."""
    data = read_bytes(path, limit=MAX_CONFIG_BYTES, what="config file", hint="an experiment file is a few lines of TOML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite (checked when read): 0.01, 1e-05, both TOML floats
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value) and value:
        return "[\n" + "".join(f"    {_toml_string(v)},\n" for v in value) + "]"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return _toml_string(str(value))


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, so it reads back."""
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
