"""Experiment configuration: config files read and written, and an experiment resolved as
defaults < TOML file < CLI flags (the sections are :mod:`convlab.experiment`'s dataclasses).

Everything a run does is decided here, before any data is touched, so a bad value fails
fast with one clear line (a :class:`ConfigError`, see :mod:`convlab.validation`) and never
leaves a run directory behind.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Mapping
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any

from convlab.calls import parse_layers
from convlab.errors import ConfigError
from convlab.experiment import COMMANDS, OWN_SECTIONS, STACK_COMMANDS, Experiment, StackConfig, command_sections
from convlab.pretrained import pretrained_layers
from convlab.stages import StageConfig
from convlab.validation import validate
from convlab.values import names, parse_value, read_text_file, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


TRAIN_LOGDIR = "logs/train"
# The section of a config file that makes it a sweep over settings (see convlab.sweep).
SWEEP_SECTION = "sweep"
# The commands `convlab sweep` runs side by side.
SWEEP_COMMANDS = ("conv", "pool", "stack")


# ----------------------------------------------------------------------------- files


def _unknown_key(where: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"{where}: unknown key '{key}'; {hint}valid keys: {', '.join(valid)}")


def read_config_file(path: str | Path, command: str, *, sweep: bool = False) -> dict[str, dict[str, Any]]:
    """Read a TOML experiment file into ``{section: {key: raw value}}``, rejecting unknown keys.

    Sections are ``[conv]``, ``[pool]`` or ``[stack]`` (the one matching ``command``), ``[data]``,
    ``[run]`` and ``[views]``.
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

    sections = command_sections(command)
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key == "command":
            if not isinstance(value, str) or value not in COMMANDS:
                raise ConfigError(f"{path}: unknown command {value!r}; choose from {', '.join(COMMANDS)}")
            # convlab train trains, convlab predict runs, and convlab top looks into the stack a 'stack'
            # experiment file describes.
            if value != command and not (command in ("train", "predict", "top") and value == "stack"):
                raise ConfigError(
                    f"{path} is a '{value}' experiment; run it with: convlab {value} --config {path}"
                )
            continue
        if key == SWEEP_SECTION:
            if not sweep and command in SWEEP_COMMANDS:
                raise ConfigError(
                    f"{path} is a sweep (it has a [{key}] section); run it with: convlab sweep {command} --config {path}"
                )
            if not sweep:
                raise ConfigError(
                    f"{path} is a sweep (it has a [{key}] section), and 'convlab {command}' does not sweep "
                    f"(convlab sweep {'|'.join(SWEEP_COMMANDS)} do); remove the [{key}] section to run it"
                )
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{key}' must be a [{key}] table, got {value!r}")
            out[key] = dict(value)
            continue
        if key in COMMANDS and key not in sections:
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
    model: bool = False,
) -> Experiment:
    """Build and validate an experiment: defaults < ``config_file`` < ``overrides``.

    ``overrides`` maps a section name (``conv``/``pool``, ``data``, ``run``) to raw values;
    ``None`` values mean "not given" and never override anything. With ``sweep``, the file
    may hold a ``[sweep]`` section, which is not part of any one experiment and is skipped.
    With ``model`` (a stack or train command), the network is a Python ``nn.Module`` (the
    notebook API's ``model=``): the experiment has no stages, and layers, weights and a
    pretrained model, which would be a second network, are refused.
    """
    if command not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    layers = command_sections(command)
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
    if command == "train":
        merged["data"].setdefault("split", "train")
        # Training runs in a logdir of their own: TensorBoard's HParams tab takes its columns and
        # metrics from one run of the logdir it shows, so beside conv and stack runs test/accuracy was blank.
        merged["run"].setdefault("logdir", TRAIN_LOGDIR)
        # How many batches a stack run shows (a stack file's [data] max_batches) does not bound
        # training: --epochs and --max-steps do.
        merged["data"].pop("max_batches", None)

    built = {}
    for name, cls in layers.items():
        valid = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in merged[name].items():
            if key not in valid:
                raise _unknown_key(f"[{name}]", key, sorted(valid))
            kwargs[key] = parse_value(name, key, value)
        built[name] = cls(**kwargs)
    sections = dict(data=built["data"], run=built["run"], views=built["views"])
    if command in STACK_COMMANDS:
        stack = built["stack"]
        stages = _model_stages(stack) if model else stack_stages(stack)
        for name in OWN_SECTIONS.get(command, ())[1:]:
            sections[name] = built[name]
        exp = Experiment(command=command, stages=stages, stack=dataclasses.replace(stack, layers=()), **sections)
        exp = dataclasses.replace(exp, stack=exp.sections()["stack"])
    else:
        exp = Experiment(command=command, stages=(built[command],), **sections)
    validate(exp)
    return exp


# Which section of an Experiment each shared setting is in; every other setting is the command's own.
SECTIONS = {
    "data": ("dataset", "split", "data_dir", "download", "batch_size", "max_batches", "image_size", "grayscale"),
    "run": ("device", "seed", "logdir", "run_name"),
    "views": ("show", "scale", "images", "zoom"),
}
# The settings of 'convlab train' that are in its [stack] section.
STACK_KEYS = ("layers", "weights", "max_channels")
# The settings of 'convlab predict' that are in its [stack] section (its arguments are read by convlab.predict.run).
PREDICT_STACK_KEYS = ("weights", "pretrained", "upto", "max_channels")
# Those of 'convlab top' ([top] holds its own).
TOP_STACK_KEYS = (*STACK_KEYS, "pretrained", "upto")
# Options that say what to do with an experiment, not what it is: never part of its config.
ACTIONS = frozenset({"config", "dry_run", "quiet", "size", "channels", "output_size", "animate", "frames_logdir",
                     "input_matrix", "weight", "cell", "vary", "skip_invalid", "inputs", "from_run", "out", "as_json"})


def overrides(command: str, settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`resolve`'s overrides, by section, from settings named as the config keys they set:
    a command's options (``ctx.params``) or the notebook API's keyword arguments."""
    section_of = {key: section for section, keys in SECTIONS.items() for key in keys}
    if command == "train":
        section_of |= {key: "stack" for key in STACK_KEYS}
    if command == "predict":
        section_of |= {key: "stack" for key in PREDICT_STACK_KEYS}
    if command == "top":
        section_of |= {key: "stack" for key in TOP_STACK_KEYS}
    sections: dict[str, dict[str, Any]] = {command: {}}
    for name, value in settings.items():
        if name not in ACTIONS:
            sections.setdefault(section_of.get(name, command), {})[name] = _plain(value)
    return sections


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and not value:  # a variadic argument left out
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def stack_stages(stack: StackConfig) -> tuple[StageConfig, ...]:
    """The stages of ``convlab stack``: its layers parsed, or a pretrained model's first ones."""
    if stack.pretrained is not None:
        if stack.layers:
            raise ConfigError(f"--pretrained {stack.pretrained} gives the layers; leave out the LAYER arguments (or [stack] layers)")
        return parse_layers(pretrained_layers(stack.pretrained, stack.upto))
    if stack.upto is not None:
        raise ConfigError("--upto counts the first stages of a --pretrained model; give --pretrained NAME too")
    if not stack.layers:
        raise ConfigError(
            'a stack needs layers: convlab stack "Conv2d(3, 32, 5, padding=2)" "ReLU()" ..., '
            "a --config file with [stack] layers = [...], or --pretrained NAME"
        )
    return parse_layers(stack.layers)


def _model_stages(stack: StackConfig) -> tuple[StageConfig, ...]:
    """A Python model is the whole network: nothing else may set its layers or weights."""
    given = [name for name in ("layers", "weights", "pretrained", "upto") if getattr(stack, name) not in (None, ())]
    if given:
        raise ConfigError(f"model= is the whole network, with its own weights; leave out {', '.join(given)} "
                          "(from the keywords or the config file)")
    return ()


def _out_channels_from_init(conv: dict[str, Any]) -> None:
    """``--init sobel-x,sobel-y`` alone gives 2 output channels: one per named kernel."""
    init = parse_value("conv", "init", conv.get("init"))
    if init and init != "random" and conv.get("out_channels") is None:
        conv["out_channels"] = len(names(init))
