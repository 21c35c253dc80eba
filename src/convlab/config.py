"""Experiment configuration: frozen dataclasses, resolved as defaults < TOML file < CLI flags.

Everything a run does is decided here, before any data is touched, so a bad value fails
fast with one clear line (a :class:`ConfigError`) and never leaves a run directory behind.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Pair = tuple[int, int]


class ConvlabError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""

    exit_code = 2


class ConfigError(ConvlabError):
    """A bad option or config-file value."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped a run; exit code 128 + the signal number, as shells report it.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it; not a
    KeyboardInterrupt, which typer would turn into a silent exit 130 whatever the signal.
    """

    def __init__(self, signum: int, name: str, detail: str = ""):
        super().__init__(signum, name)
        self.signum, self.name, self.detail = signum, name, detail
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return f"interrupted by {self.name}" + (f" {self.detail}" if self.detail else "")


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar10"
    split: str = "test"
    data_dir: str = "data"
    download: bool = True
    batch_size: int = 64
    max_batches: int | None = None
    # dataset 'folder' only. None: 128 (shorter side resized to it, centre square crop); 0: keep sizes.
    image_size: int | None = None
    # dataset 'folder' only: read images as 1-channel (luma) instead of RGB.
    grayscale: bool = False


@dataclass(frozen=True)
class ConvConfig:
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


@dataclass(frozen=True)
class RunConfig:
    # "auto" = cuda when available, else cpu.
    device: str = "auto"
    seed: int = 0
    logdir: str = "logs"
    run_name: str | None = None


@dataclass(frozen=True)
class ViewConfig:
    # Extra views beside the tutorial's tags, comma-separated; None: every view that applies.
    show: str | None = None
    # How the extra image views map values to grey levels: raw, minmax or symmetric.
    scale: str = "symmetric"
    # How many images of each batch the per-channel view shows.
    images: int = 4
    # Nearest-neighbour upscaling factor of the extra image views; None: so small maps are
    # at least 64 pixels wide.
    zoom: int | None = None


LayerConfig = Union[ConvConfig, PoolConfig]
LAYER_CONFIGS: dict[str, type] = {"conv": ConvConfig, "pool": PoolConfig}


@dataclass(frozen=True)
class Experiment:
    command: str
    layer: LayerConfig
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    views: ViewConfig = field(default_factory=ViewConfig)

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass, in the order a config file lists them."""
        return {self.command: self.layer, "data": self.data, "run": self.run, "views": self.views}


SPLITS = ("test", "train")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_WORDS = ("same", "valid")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
POOL_MODES = ("max", "avg")
# Extra views and the commands they apply to (the tutorial's own tags are always logged).
VIEWS = {"channels": ("conv", "pool"), "kernels": ("conv",), "stats": ("conv", "pool")}
SCALES = ("raw", "minmax", "symmetric")


# ----------------------------------------------------------------------------- parsing

_HXW = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")


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
            n = int(text)
            return (n, n)
        m = _HXW.match(text)
        if m:
            return (int(m.group(1)), int(m.group(2)))
    choices = ", ".join(("N", "HxW", *words))
    raise ConfigError(f"{name}: cannot read {value!r}; use one of: {choices} (e.g. 3 or 3x5)")


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ConfigError(f"{name}: expected an integer, got {value!r}")


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _parse_str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"{name}: expected a string, got {value!r}")


_PAIR_FIELDS = {"kernel_size", "stride", "dilation", "padding"}
_INT_FIELDS = {"in_channels", "out_channels", "groups", "batch_size", "max_batches", "seed", "image_size", "images", "zoom"}
_BOOL_FIELDS = {"download", "bias", "ceil_mode", "grayscale", "unpool"}
_NAME_LIST_FIELDS = {"init", "show"}


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
    if key in _BOOL_FIELDS:
        return _parse_bool(value, name)
    if key in _NAME_LIST_FIELDS:
        return _parse_names(value, name)
    return _parse_str(value, name)


# ----------------------------------------------------------------------------- files


def _unknown_key(where: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"{where}: unknown key '{key}'; {hint}valid keys: {', '.join(valid)}")


def read_config_file(path: str | Path, command: str) -> dict[str, dict[str, Any]]:
    """Read a TOML experiment file into ``{section: {key: raw value}}``, rejecting unknown keys.

    Sections are ``[conv]`` or ``[pool]`` (the one matching ``command``), ``[data]`` and ``[run]``.
    A top-level ``command = "conv"`` is allowed and must match the command being run.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None

    sections = {command: LAYER_CONFIGS[command], "data": DataConfig, "run": RunConfig, "views": ViewConfig}
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key == "command":
            if not isinstance(value, str) or value not in LAYER_CONFIGS:
                raise ConfigError(f"{path}: unknown command {value!r}; choose from {', '.join(LAYER_CONFIGS)}")
            if value != command:
                raise ConfigError(
                    f"{path} is a '{value}' experiment; run it with: convlab {value} --config {path}"
                )
            continue
        if key in LAYER_CONFIGS and key != command:
            raise ConfigError(
                f"{path} has a [{key}] section, but this is 'convlab {command}'; "
                f"run it with: convlab {key} --config {path}"
            )
        if key not in sections:
            raise _unknown_key(str(path), key, ["command", *sections])
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{key}' must be a [{key}] table, got {value!r}")
        valid = [f.name for f in fields(sections[key])]
        for sub in value:
            if sub not in valid:
                raise _unknown_key(f"{path} [{key}]", sub, valid)
        out[key] = dict(value)
    return out


def dump_toml(exp: Experiment) -> str:
    """The resolved experiment as TOML, readable back by ``--config`` (None values omitted)."""
    lines = [f'command = "{exp.command}"', ""]
    for name, section in exp.sections().items():
        lines.append(f"[{name}]")
        for f in fields(section):
            value = getattr(section, f.name)
            if value is None:
                lines.append(f"# {f.name} = (default)")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# ----------------------------------------------------------------------------- resolve


def resolve(
    command: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_file: str | Path | None = None,
) -> Experiment:
    """Build and validate an experiment: defaults < ``config_file`` < ``overrides``.

    ``overrides`` maps a section name (``conv``/``pool``, ``data``, ``run``) to raw values;
    ``None`` values mean "not given" and never override anything.
    """
    if command not in LAYER_CONFIGS:
        raise ConfigError(f"unknown command {command!r}; choose from {', '.join(LAYER_CONFIGS)}")
    layers = {command: LAYER_CONFIGS[command], "data": DataConfig, "run": RunConfig, "views": ViewConfig}
    merged: dict[str, dict[str, Any]] = {name: {} for name in layers}
    if config_file is not None:
        for name, values in read_config_file(config_file, command).items():
            merged[name].update(values)
    for name, values in (overrides or {}).items():
        if name not in merged:
            raise ConfigError(f"unknown section {name!r}")
        merged[name].update({k: v for k, v in values.items() if v is not None})
    if command == "conv":
        _out_channels_from_init(merged["conv"])

    built = {}
    for name, cls in layers.items():
        valid = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in merged[name].items():
            if key not in valid:
                raise _unknown_key(f"[{name}]", key, sorted(valid))
            kwargs[key] = parse_value(name, key, value)
        built[name] = cls(**kwargs)
    exp = Experiment(command=command, layer=built[command], data=built["data"], run=built["run"], views=built["views"])
    validate(exp)
    return exp


def _out_channels_from_init(conv: dict[str, Any]) -> None:
    """``--init sobel-x,sobel-y`` alone gives 2 output channels: one per named kernel."""
    init = parse_value("conv", "init", conv.get("init"))
    if init and init != "random" and conv.get("out_channels") is None:
        conv["out_channels"] = len(names(init))


def replace(exp: Experiment, section: str, **changes: Any) -> Experiment:
    """A copy of ``exp`` with some fields of one section changed (validated again)."""
    current = exp.sections()[section]
    new = dataclasses.replace(current, **changes)
    key = "layer" if section == exp.command else section
    out = dataclasses.replace(exp, **{key: new})
    validate(out)
    return out


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


def validate(exp: Experiment) -> None:
    """Check every value that can be checked without knowing the input size."""
    _within_torch_range(exp)
    layer = exp.layer
    _positive_pair(layer.kernel_size, "kernel_size")
    _positive_pair(layer.stride, "stride")
    _positive_pair(layer.dilation, "dilation")
    _positive_pair(layer.padding, "padding", minimum=0)

    if isinstance(layer, ConvConfig):
        _at_least(layer.out_channels, "out_channels")
        _at_least(layer.in_channels, "in_channels")
        _at_least(layer.groups, "groups")
        if layer.out_channels % layer.groups:
            raise ConfigError(
                f"groups={layer.groups} must divide out_channels={layer.out_channels}; "
                f"try --groups 1 or an out_channels that is a multiple of {layer.groups}"
            )
        if layer.padding_mode not in PADDING_MODES:
            raise ConfigError(
                f"unknown padding_mode {layer.padding_mode!r}; choose from {', '.join(PADDING_MODES)}"
            )
        if layer.padding == "same" and layer.stride != (1, 1):
            raise ConfigError(
                "padding 'same' needs stride 1 (PyTorch does not support it for strided "
                "convolutions); use a number for --padding"
            )
        validate_init(layer)
    else:
        kh, kw = layer.kernel_size
        ph, pw = layer.padding
        if ph > kh // 2 or pw > kw // 2:
            raise ConfigError(
                f"pool padding {ph}x{pw} is too large for kernel {kh}x{kw}: PyTorch allows at most "
                f"half the kernel size ({kh // 2}x{kw // 2})"
            )
        validate_pool_mode(layer)

    data = exp.data
    if data.split not in SPLITS:
        raise ConfigError(f"unknown split {data.split!r}; choose from {', '.join(SPLITS)}")
    _at_least(data.batch_size, "batch_size")
    _at_least(data.max_batches, "max_batches")
    if data.image_size is not None and data.image_size < 0:
        raise ConfigError(f"image_size must be 0 (keep each image's size) or more, got {data.image_size}")

    run = exp.run
    if not DEVICE_PATTERN.match(run.device):
        raise ConfigError(f"unknown device {run.device!r}; use auto, cpu, cuda or cuda:N")
    if run.seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {run.seed}")
    if run.run_name is not None:
        check_run_name(run.run_name)
    validate_views(exp.views, exp.command)


def _within_torch_range(exp: Experiment) -> None:
    # TOML and typer give any Python int; PyTorch's layers take 32-bit sizes and a 64-bit seed.
    for name, section in exp.sections().items():
        for f in fields(section):
            value, limit = getattr(section, f.name), 2**63 - 1 if f.name == "seed" else 2**31 - 1
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, int) and not isinstance(v, bool) and abs(v) > limit:
                    raise ConfigError(f"{name}.{f.name}: {v} is far too large; PyTorch takes at most {limit}")


def check_run_name(name: str) -> None:
    """A run name is one directory below the logdir: no separators, no '..', no hidden names."""
    # Below the 255-byte file-name limit, with room for the "-2" a taken generated name gets.
    if len(name) > 200:
        raise ConfigError(f"run name is {len(name)} characters long; use at most 200")
    if not name or name in (".", "..") or "/" in name or "\\" in name or not RUN_NAME_PATTERN.match(name):
        raise ConfigError(
            f"run name {name!r} is not allowed: use letters, digits and . _ + = - "
            "(no path separators or '..'); it names one directory inside --logdir"
        )


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


def validate_views(views: ViewConfig, command: str) -> None:
    for view in names(views.show):
        if view == "none":
            if names(views.show) != ["none"]:
                raise ConfigError(f"views: 'none' cannot be combined with other views ({views.show})")
        elif view not in VIEWS:
            raise ConfigError(f"unknown view {view!r}; choose from {', '.join(VIEWS)} (or none)")
        elif command not in VIEWS[view]:
            raise ConfigError(f"view {view!r} does not apply to 'convlab {command}' (a pool layer has no weights)")
    if views.scale not in SCALES:
        raise ConfigError(f"unknown scale {views.scale!r}; choose from {', '.join(SCALES)}")
    _at_least(views.images, "views.images")
    _at_least(views.zoom, "zoom")


def selected_views(exp: Experiment) -> list[str]:
    """The extra views this run logs, in a fixed order."""
    if exp.views.show is None:
        return [v for v, commands in VIEWS.items() if exp.command in commands]
    chosen = names(exp.views.show)
    return [v for v in VIEWS if v in chosen]
