"""Experiment configuration: frozen dataclasses, resolved as defaults < TOML file < CLI flags.

Everything a run does is decided here, before any data is touched, so a bad value fails
fast with one clear line (a :class:`ConfigError`) and never leaves a run directory behind.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union

from convlab.errors import ConfigError
from convlab.errors import ConvlabError as ConvlabError  # re-exported: raised across convlab
from convlab.errors import Interrupted as Interrupted
from convlab.values import PADDING_WORDS as PADDING_WORDS
from convlab.values import Pair, names, parse_value, read_text_file, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


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


# One stage of an experiment: a layer kind and its arguments. A new stage kind is one config
# class here (with ``kind`` and a ``validate`` function below) and one factory in layers.py.
StageConfig = Union[ConvConfig, PoolConfig]
LayerConfig = StageConfig
STAGE_KINDS: dict[str, type] = {"conv": ConvConfig, "pool": PoolConfig}


@dataclass(frozen=True)
class Experiment:
    """Data, an ordered tuple of stages the images go through, how to run, what to show.

    ``convlab conv`` and ``convlab pool`` are one-stage experiments whose config section is
    named after the stage's kind (``[conv]`` / ``[pool]``).
    """

    command: str
    stages: tuple[StageConfig, ...]
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    views: ViewConfig = field(default_factory=ViewConfig)

    @property
    def layer(self) -> StageConfig:
        """The stage of a one-stage experiment."""
        if len(self.stages) != 1:
            raise ValueError(f"a {len(self.stages)}-stage experiment has no single layer")
        return self.stages[0]

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass, in the order a config file lists them."""
        return {self.command: self.layer, "data": self.data, "run": self.run, "views": self.views}


SPLITS = ("test", "train")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# Matched with fullmatch: "$" alone would accept a trailing newline.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,4})?")
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
POOL_MODES = ("max", "avg")
SCALES = ("raw", "minmax", "symmetric")
# The section of a config file that makes it a sweep over settings (see convlab.sweep).
SWEEP_SECTION = "sweep"



# ----------------------------------------------------------------------------- files


def _unknown_key(where: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"{where}: unknown key '{key}'; {hint}valid keys: {', '.join(valid)}")


def read_config_file(path: str | Path, command: str, *, sweep: bool = False) -> dict[str, dict[str, Any]]:
    """Read a TOML experiment file into ``{section: {key: raw value}}``, rejecting unknown keys.

    Sections are ``[conv]`` or ``[pool]`` (the one matching ``command``), ``[data]`` and ``[run]``.
    A top-level ``command = "conv"`` is allowed and must match the command being run. A
    ``[sweep]`` section is returned as it is when ``sweep`` (convlab.sweep checks its keys);
    otherwise the file is a sweep and the error says how to run it.
    """
    path = Path(path)
    text = read_text_file(path)
    if text.startswith("\ufeff"):
        raise ConfigError(
            f"{path} starts with a byte-order mark (BOM), which TOML does not allow; "
            "save it as UTF-8 without BOM"
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not a convlab experiment: its arrays or tables are nested too deep") from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise ConfigError(f"{path} holds a value convlab cannot read: {exc}") from None

    sections = {command: STAGE_KINDS[command], "data": DataConfig, "run": RunConfig, "views": ViewConfig}
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key == "command":
            if not isinstance(value, str) or value not in STAGE_KINDS:
                raise ConfigError(f"{path}: unknown command {value!r}; choose from {', '.join(STAGE_KINDS)}")
            if value != command:
                raise ConfigError(
                    f"{path} is a '{value}' experiment; run it with: convlab {value} --config {path}"
                )
            continue
        if key == SWEEP_SECTION:
            if not sweep:
                raise ConfigError(
                    f"{path} is a sweep (it has a [{key}] section); run it with: convlab sweep {command} --config {path}"
                )
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{key}' must be a [{key}] table, got {value!r}")
            out[key] = dict(value)
            continue
        if key in STAGE_KINDS and key != command:
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
                lines.append(f"{f.name} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)



# ----------------------------------------------------------------------------- resolve


def resolve(
    command: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_file: str | Path | None = None,
    *,
    sweep: bool = False,
) -> Experiment:
    """Build and validate an experiment: defaults < ``config_file`` < ``overrides``.

    ``overrides`` maps a section name (``conv``/``pool``, ``data``, ``run``) to raw values;
    ``None`` values mean "not given" and never override anything. With ``sweep``, the file
    may hold a ``[sweep]`` section, which is not part of any one experiment and is skipped.
    """
    if command not in STAGE_KINDS:
        raise ConfigError(f"unknown command {command!r}; choose from {', '.join(STAGE_KINDS)}")
    layers = {command: STAGE_KINDS[command], "data": DataConfig, "run": RunConfig, "views": ViewConfig}
    merged: dict[str, dict[str, Any]] = {name: {} for name in layers}
    if config_file is not None:
        for name, values in read_config_file(config_file, command, sweep=sweep).items():
            if name != SWEEP_SECTION:
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
    exp = Experiment(command=command, stages=(built[command],), data=built["data"], run=built["run"], views=built["views"])
    validate(exp)
    return exp


def _out_channels_from_init(conv: dict[str, Any]) -> None:
    """``--init sobel-x,sobel-y`` alone gives 2 output channels: one per named kernel."""
    init = parse_value("conv", "init", conv.get("init"))
    if init and init != "random" and conv.get("out_channels") is None:
        conv["out_channels"] = len(names(init))


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
    """Check every value the config alone decides (no input size, data or machine needed)."""
    _within_torch_range(exp)
    for stage in exp.stages:
        STAGE_VALIDATORS[stage.kind](stage)

    data = exp.data
    if data.split not in SPLITS:
        raise ConfigError(f"unknown split {data.split!r}; choose from {', '.join(SPLITS)}")
    _at_least(data.batch_size, "batch_size")
    _at_least(data.max_batches, "max_batches")
    if data.image_size is not None and data.image_size < 0:
        raise ConfigError(f"image_size must be 0 (keep each image's size) or more, got {data.image_size}")

    check_path(data.data_dir, "--data-dir")
    check_path(exp.run.logdir, "--logdir")
    for stage in exp.stages:
        if isinstance(stage, ConvConfig) and stage.weights is not None:
            check_path(stage.weights, "--weights")

    run = exp.run
    if not DEVICE_PATTERN.fullmatch(run.device):
        raise ConfigError(f"unknown device {run.device!r}; use auto, cpu, cuda or cuda:N")
    if run.seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {run.seed}")
    if run.run_name is not None:
        check_run_name(run.run_name)
    views = exp.views
    if views.scale not in SCALES:
        raise ConfigError(f"unknown scale {views.scale!r}; choose from {', '.join(SCALES)}")
    _at_least(views.images, "views.images")
    _at_least(views.zoom, "zoom")


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


# The file-name limit of Linux, macOS and Windows file systems, in bytes.
MAX_NAME_BYTES = 255


def check_path(path: str, option: str) -> None:
    """A path convlab can use and save in config.toml: not empty, names within the OS limit,
    UTF-8 (TOML is UTF-8, so a run with another name could not be repeated from its config)."""
    if not path.strip():
        raise ConfigError(f"{option} is empty; give a path (e.g. {option} .)")
    if "\0" in path:
        raise ConfigError(f"{option} {path!r} holds a NUL character, which no path can")
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ConfigError(
            f"{option} {shown} is not valid UTF-8; convlab saves each run's settings as TOML (UTF-8), "
            "which cannot hold that name: rename it or use a link with a UTF-8 name"
        ) from None
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{option}: a name in it is {len(longest)} bytes long ({longest[:20].decode(errors='replace')}...); "
            f"file systems allow at most {MAX_NAME_BYTES}"
        )


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
    if not name or name in (".", "..") or "/" in name or "\\" in name or not RUN_NAME_PATTERN.fullmatch(name):
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


STAGE_VALIDATORS = {"conv": validate_conv, "pool": validate_pool}
