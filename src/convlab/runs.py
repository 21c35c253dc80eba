"""Run bookkeeping, torch-free: run names, run directories, and the files beside the event file.

A run is one directory inside ``--logdir``, named after what ran and when. It is created
exclusively, so an existing run is never reused or overwritten. Beside its event file it holds
``config.toml`` (the resolved experiment) and ``summary.json`` (status, steps, shapes).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError
from convlab.experiment import Experiment
from convlab.files import read_bytes
from convlab.geometry import hw, pool_stride
from convlab.modules import torch_name
from convlab.stages import ConvConfig

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"


class LogdirError(ConvlabError):
    """The run directory cannot be created where asked."""


def default_run_name(exp: Experiment, now: datetime | None = None, *, model: str | None = None) -> str:
    """Says what ran and when, e.g. ``conv-c6-k3-s1-p0-20261128-142501``; a Python model's run
    (``model``: its class name) is named after its class, ``stack-tudui-20261128-142501``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    if model is not None:
        parts = [exp.command, "".join(c for c in model.lower() if c.isascii() and (c.isalnum() or c == "_")) or "model"]
    elif exp.is_stack:
        parts = stack_name_parts(exp)
    else:
        parts = [part for stage in exp.stages for part in stage_name_parts(stage)]
    if exp.data.dataset != "cifar10":
        parts.append(exp.data.dataset)
    return "-".join([*parts, stamp])


def default_sweep_name(exp: Experiment, now: datetime | None = None) -> str:
    """A sweep's directory, holding one run per combination: e.g. ``sweep-pool-20261128-142501``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    parts = ["sweep", exp.command]
    if exp.data.dataset != "cifar10":
        parts.append(exp.data.dataset)
    return "-".join([*parts, stamp])


# A stack's run name lists this many layers, then how many more.
NAMED_LAYERS = 4


def stack_name_parts(exp: Experiment) -> list[str]:
    """``stack-conv2d-relu-maxpool2d``; a longer stack ends in ``+N``; a pretrained one is named after its model."""
    stack = exp.stack
    if stack.pretrained is not None:
        return [exp.command, stack.pretrained, f"upto{len(exp.stages)}"]
    parts = [exp.command, *layer_names([torch_name(s).lower() for s in exp.stages])]
    if stack.weights is not None:
        parts.append("weights")
    return parts


def layer_names(names: list[str]) -> list[str]:
    """The first NAMED_LAYERS of a stack's layer names, the last of them with how many more: ``relu+2``."""
    parts = names[:NAMED_LAYERS]
    if len(names) > NAMED_LAYERS:
        parts[-1] += f"+{len(names) - NAMED_LAYERS}"
    return parts


def stage_name_parts(stage: Any) -> list[str]:
    """What one stage contributes to a run name: its kind and the settings that differ."""
    if isinstance(stage, ConvConfig):
        parts = ["conv", f"c{stage.out_channels}", f"k{hw(stage.kernel_size)}", f"s{hw(stage.stride)}", f"p{hw(stage.padding)}"]
        if stage.dilation != (1, 1):
            parts.append(f"d{hw(stage.dilation)}")
        if stage.groups != 1:
            parts.append(f"g{stage.groups}")
        if stage.weights is not None:
            parts.append("weights")
        elif stage.init != "random":
            parts.append(stage.init.replace(",", "+"))
        return parts
    parts = [f"{stage.mode}pool", f"k{hw(stage.kernel_size)}", f"s{hw(pool_stride(stage))}", f"p{hw(stage.padding)}"]
    if stage.dilation != (1, 1):
        parts.append(f"d{hw(stage.dilation)}")
    if stage.ceil_mode:
        parts.append("ceil")
    if stage.unpool:
        parts.append("unpool")
    return parts


def _taken(logdir: Path, name: str) -> LogdirError:
    return LogdirError(
        f"run '{name}' already exists in {logdir}/ and is never overwritten; "
        "choose another --run-name or leave it out for a fresh one"
    )


def _not_a_directory(logdir: Path) -> LogdirError:
    return LogdirError(f"--logdir {logdir} is a file, not a directory; choose another --logdir")


def check_logdir(logdir: str | Path, run_name: str | None) -> None:
    """Fail before any data is loaded if ``logdir/run_name`` surely cannot be created.

    Nothing is created here; :func:`create_run_dir` still creates exclusively and reports
    what only trying can find out (a full or read-only disk, a race with another run).
    """
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise _not_a_directory(logdir)
    existing = next(p for p in (logdir, *logdir.parents) if p.exists())
    if not existing.is_dir():
        raise LogdirError(f"cannot create --logdir {logdir}: {existing} is a file; choose another --logdir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LogdirError(f"cannot create --logdir {logdir}: {existing} is not writable; choose another --logdir")
    if run_name is not None and (logdir / run_name).exists():
        raise _taken(logdir, run_name)


def create_run_dir(logdir: str | Path, name: str, *, explicit: bool) -> Path:
    """Create ``logdir/name`` exclusively: an existing run is never reused or overwritten.

    A default (generated) name that is taken, e.g. by a run started in the same second, gets
    a ``-2``, ``-3`` ... suffix; an explicit ``--run-name`` that is taken is an error.
    """
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise _not_a_directory(logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogdirError(f"cannot create --logdir {logdir}: {exc.strerror or exc}") from None
    for attempt in range(1, 1000):
        candidate = logdir / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            if explicit:
                raise _taken(logdir, name) from None
        except OSError as exc:
            raise LogdirError(f"cannot write in --logdir {logdir}: {exc.strerror or exc}") from None
    raise LogdirError(f"too many runs named {name!r} in {logdir}/; choose a --run-name")


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run directory this process created (a run stopped before its first step)."""
    shutil.rmtree(run_dir, ignore_errors=True)


def write_config(run_dir: Path, toml_text: str) -> None:
    (Path(run_dir) / CONFIG_FILE).write_text(toml_text, encoding="utf-8")


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """``summary.json``, replaced atomically so a reader never sees half of it.

    On a full disk a new file cannot be made, but the old one's blocks are there: the summary
    is then rewritten in place (it only grows by a few bytes when a run ends), so a run stopped
    by a full disk still says ``incomplete``. No temporary file is ever left behind.
    """
    run_dir = Path(run_dir)
    data = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8")
    tmp, path = run_dir / f".{SUMMARY_FILE}.tmp", run_dir / SUMMARY_FILE
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as first:
        tmp.unlink(missing_ok=True)
        if not path.is_file():
            raise
        try:
            with path.open("r+b") as f:
                f.write(data)
                f.truncate()
        except OSError:
            raise first from None


# A run's summary.json is a few kB (a sweep's lists its runs); past this it was not written by a run.
MAX_SUMMARY_BYTES = 1 << 20


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's summary, or None when it has none or it cannot be read: read as every file from a
    run directory is (:mod:`convlab.files`: a regular file, at most MAX_SUMMARY_BYTES), so a pipe
    or a huge file named summary.json in some run under --logdir never hangs or floods a command."""
    try:
        data = json.loads(read_bytes(Path(run_dir) / SUMMARY_FILE, limit=MAX_SUMMARY_BYTES, what=SUMMARY_FILE))
    except (ConvlabError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None

