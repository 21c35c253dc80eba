"""Experiment configuration: frozen dataclasses, resolved as defaults < TOML file < CLI flags.

Everything a run does is decided here, before any data is touched, so a bad value fails
fast with one clear line (a :class:`ConfigError`) and never leaves a run directory behind.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from convlab.calls import parse_layers
from convlab.errors import ConfigError
from convlab.modules import call_text
from convlab.optimizers import OPTIMIZER_NAMES
from convlab.pretrained import pretrained_layers
from convlab.stages import STAGE_VALIDATORS, ConvConfig, PoolConfig, StageConfig, _at_least
from convlab.values import names, parse_value, read_text_file, toml_value

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


@dataclass(frozen=True)
class StackConfig:
    """``convlab stack``: the layers, as PyTorch code, and where their weights come from."""

    # Each layer as written in PyTorch, e.g. "Conv2d(3, 32, 5, padding=2)"; parsed, never evaluated.
    layers: tuple[str, ...] = ()
    # A .pt/.pth file: a state_dict (or a whole model of torch.nn layers) matching the stack's parameters in order.
    weights: str | None = None
    # A torchvision model whose first `upto` stages, with ImageNet weights, are the stack.
    pretrained: str | None = None
    upto: int | None = None
    # Channels shown per map stage in its picture (the first ones).
    max_channels: int = 16




@dataclass(frozen=True)
class TrainConfig:
    """``convlab train``: the stack trained as a classifier (nn.CrossEntropyLoss)."""

    optimizer: str = "sgd"
    lr: float = 0.01  # the lesson's SGD learning rate
    epochs: int = 1
    # A new random order of the training images each epoch (seeded); off: in order, as the
    # lesson's DataLoader(batch_size=64) reads them.
    shuffle: bool = True
    # Stop after this many steps (batches) in all, even mid-epoch; None: when the epochs are done.
    max_steps: int | None = None
    # Evaluate on the eval set every this many steps; None: at the end of each epoch. Always at the end.
    eval_every: int | None = None
    # Log kernels and the probe batch's views every this many steps (and at the first and last).
    snapshot_every: int = 100
    eval_split: str = "test"
    # Evaluate on the eval set's first this many batches; None: all of it.
    eval_batches: int | None = None
    # Keep this fraction of the training images out of training and evaluate on them instead of
    # eval_split; None: no holdout (a folder, which has one set, holds out 0.2).
    holdout: float | None = None
    # As torch.optim computes it (sgd, adam: + wd * weight in the gradient; adamw: decoupled);
    # None: the optimizer's own default (0; adamw 0.01).
    weight_decay: float | None = None
    # At the end, log each map stage's top patches over the evaluation images (as convlab top does).
    top: bool = False


@dataclass(frozen=True)
class TopConfig:
    """``convlab top``: each channel's top-k dataset patches, for the network of a stack."""

    # Patches per channel: the images whose largest activation in that channel is largest.
    k: int = 9
    # The stages shown (counted from 1); None: every map stage.
    stages: tuple[int, ...] | None = None
    # The channels shown in every chosen stage; None: the first [stack] max_channels of each.
    channels: tuple[int, ...] | None = None
    # Count only the images of this class (a name of the dataset's classes).
    class_name: str | None = None


@dataclass(frozen=True)
class PredictConfig:
    """``convlab predict``: your own images through a trained classifier: what it says, and why."""

    # The images: files, or folders of them (a folder's class subfolders are its images' labels).
    paths: tuple[str, ...] = ()
    # Classes listed per image, the most probable first.
    top_k: int = 3
    # The class the attributions explain, by name; None: each image's predicted class.
    target: str | None = None
    # The conv stage Grad-CAM reads, by stage number; None: the last conv stage.
    layer: int | None = None
    # Attribution methods, comma-separated (gradcam, saliency, occlusion), or none.
    attributions: str = "gradcam,saliency,occlusion"
    # STAGE:CHANNEL:Y:X: how that value of a stage's output was computed, for each image shown.
    trace: str | None = None
    # The first this many images are shown (pictures, attributions, the terminal's bar charts);
    # every image is predicted and counted.
    pictures: int = 16


# What each experiment command's own config section is.
COMMANDS: dict[str, type] = {
    "conv": ConvConfig, "pool": PoolConfig, "stack": StackConfig, "train": TrainConfig, "predict": PredictConfig, "top": TopConfig,
}
# Commands that run a stack of layers ([stack] layers), and the sections each command's file holds
# beside [data], [run] and [views] (by default, its own).
STACK_COMMANDS = ("stack", "train", "predict", "top")
OWN_SECTIONS = {"train": ("stack", "train"), "predict": ("stack", "predict"), "top": ("stack", "top")}


def command_sections(command: str) -> dict[str, type]:
    own = OWN_SECTIONS.get(command, (command,))
    return {name: COMMANDS[name] for name in own} | {"data": DataConfig, "run": RunConfig, "views": ViewConfig}


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
    # convlab stack and train: where the stages came from (their text is derived from ``stages``).
    stack: StackConfig = field(default_factory=StackConfig)
    # convlab train only.
    train: TrainConfig = field(default_factory=TrainConfig)
    # convlab top only.
    top: TopConfig = field(default_factory=TopConfig)
    # convlab predict only.
    predict: PredictConfig = field(default_factory=PredictConfig)

    @property
    def is_stack(self) -> bool:
        """Stages written as PyTorch layers (``convlab stack``, ``train``, ``predict``)."""
        return self.command in STACK_COMMANDS

    @property
    def layer(self) -> StageConfig:
        """The stage of a one-stage experiment."""
        if len(self.stages) != 1:
            raise ValueError(f"a {len(self.stages)}-stage experiment has no single layer")
        return self.stages[0]

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass, in the order a config file lists them."""
        if not self.is_stack:
            return {self.command: self.layer, "data": self.data, "run": self.run, "views": self.views}
        layers = () if self.stack.pretrained else tuple(call_text(s) for s in self.stages)
        heads: dict[str, Any] = {"stack": dataclasses.replace(self.stack, layers=layers)}
        for name in OWN_SECTIONS.get(self.command, ())[1:]:
            heads[name] = getattr(self, name)
        return heads | {"data": self.data, "run": self.run, "views": self.views}


SPLITS = ("test", "train")
TRAIN_LOGDIR = "logs/train"
# Matched with fullmatch: "$" alone would accept a trailing newline.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,4})?")
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
SCALES = ("raw", "minmax", "symmetric")
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
    if exp.command == "train":
        validate_train(exp.train)
    if exp.command == "predict":
        validate_predict(exp.predict)
    if exp.command == "top":
        validate_top(exp.top)
    if exp.is_stack:
        _at_least(exp.stack.max_channels, "max_channels")
        if exp.stack.weights is not None:
            option = weights_option(exp.command)
            check_path(exp.stack.weights, option)
            if exp.stack.pretrained is not None:
                raise ConfigError(f"{option} and --pretrained both set the stack's weights; use one of them")

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


def weights_option(command: str) -> str:
    """The option that gives a stack its weights file ([stack] weights in a file), as the command names it."""
    return "--init-weights" if command == "train" else "--weights"


def validate_train(train: TrainConfig) -> None:
    if train.optimizer not in OPTIMIZER_NAMES:
        raise ConfigError(f"unknown optimizer {train.optimizer!r}; choose from {', '.join(OPTIMIZER_NAMES)}")
    if not train.lr > 0:
        raise ConfigError(f"lr must be above 0, got {train.lr}")
    decay = train.weight_decay
    if decay is not None and decay < 0:
        raise ConfigError(f"weight_decay must be 0 or more, got {decay:g}")
    if decay is not None and train.optimizer in ("sgd", "adamw") and train.lr * decay >= 1:
        raise ConfigError(
            f"weight_decay {decay:g} with lr {train.lr:g}: {train.optimizer} shrinks each weight by lr*weight_decay = "
            f"{train.lr * decay:g} of itself every step, which must stay below 1; use a weight_decay below {1 / train.lr:g}"
        )
    for name in ("epochs", "max_steps", "eval_every", "snapshot_every", "eval_batches"):
        _at_least(getattr(train, name), name)
    if train.eval_split not in SPLITS:
        raise ConfigError(f"unknown eval_split {train.eval_split!r}; choose from {', '.join(SPLITS)}")
    if train.holdout is not None and not 0 < train.holdout < 1:
        raise ConfigError(f"holdout is the fraction of training images kept for evaluation, above 0 and below 1; got {train.holdout}")


def validate_predict(predict: PredictConfig) -> None:
    if not predict.paths:
        raise ConfigError("convlab predict needs images: give image files or folders, e.g. convlab predict --run logs/train/train-... photo.jpg")
    for path in predict.paths:
        check_path(path, "an image path")
    _at_least(predict.top_k, "top_k")
    _at_least(predict.layer, "layer")
    _at_least(predict.pictures, "pictures", 0)


def validate_top(top: TopConfig) -> None:
    _at_least(top.k, "k")
    for name, values, lowest in (("stages", top.stages, 1), ("channels", top.channels, 0)):
        if values is None:
            continue
        if not values:
            raise ConfigError(f"{name} is empty; leave it out for the default")
        if min(values) < lowest:
            raise ConfigError(f"{name} are counted from {lowest}; got {min(values)}")
        if len(set(values)) != len(values):
            raise ConfigError(f"{name}: {', '.join(map(str, values))} names one twice")


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


