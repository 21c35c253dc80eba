"""What the config alone decides, checked: every value of an experiment (no input size, data
or machine needed), paths convlab saves, run names. One clear line (a :class:`ConfigError`) for
each, before any run directory exists.
"""

from __future__ import annotations

import re
from dataclasses import fields

from convlab.errors import ConfigError
from convlab.experiment import Experiment, PredictConfig, TopConfig, TrainConfig
from convlab.optimizers import OPTIMIZER_NAMES
from convlab.stages import STAGE_VALIDATORS, ConvConfig, _at_least

SPLITS = ("test", "train")
# Matched with fullmatch: "$" alone would accept a trailing newline.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,4})?")
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
SCALES = ("raw", "minmax", "symmetric")


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
