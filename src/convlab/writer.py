"""The only module that talks to TensorBoard: one run directory, one event file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from convlab.config import ConvlabError

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"


class LogdirError(ConvlabError):
    """The run directory cannot be created where asked."""


class WriteError(ConvlabError):
    """Writing the run failed (disk full, file-size limit, I/O error)."""


def check_logdir(logdir: str | Path, run_name: str | None) -> None:
    """Fail before any data is loaded if ``logdir/run_name`` surely cannot be created.

    Nothing is created here; :func:`create_run_dir` still creates exclusively and reports
    what only trying can find out (a full or read-only disk, a race with another run).
    """
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise LogdirError(f"--logdir {logdir} is a file, not a directory; choose another --logdir")
    existing = next(p for p in (logdir, *logdir.parents) if p.exists())
    if not existing.is_dir():
        raise LogdirError(f"cannot create --logdir {logdir}: {existing} is a file; choose another --logdir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LogdirError(f"cannot create --logdir {logdir}: {existing} is not writable; choose another --logdir")
    if run_name is not None and (logdir / run_name).exists():
        raise LogdirError(
            f"run '{run_name}' already exists in {logdir}/ and is never overwritten; "
            "choose another --run-name or leave it out for a fresh one"
        )


def create_run_dir(logdir: str | Path, name: str, *, explicit: bool) -> Path:
    """Create ``logdir/name`` exclusively: an existing run is never reused or overwritten.

    A default (generated) name that is taken, e.g. by a run started in the same second, gets
    a ``-2``, ``-3`` ... suffix; an explicit ``--run-name`` that is taken is an error.
    """
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise LogdirError(f"--logdir {logdir} is a file, not a directory; choose another --logdir")
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
                raise LogdirError(
                    f"run '{name}' already exists in {logdir}/ and is never overwritten; "
                    "choose another --run-name or leave it out for a fresh one"
                ) from None
        except OSError as exc:
            raise LogdirError(f"cannot write in --logdir {logdir}: {exc.strerror or exc}") from None
    raise LogdirError(f"too many runs named {name!r} in {logdir}/; choose a --run-name")


class RunWriter:
    """A SummaryWriter on a fresh run directory, plus the run's config and summary files."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        try:
            self._tb = SummaryWriter(log_dir=str(self.run_dir))
        except BaseException as exc:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                raise WriteError(
                    f"cannot write an event file in {self.run_dir.parent}/: {exc.strerror or exc}; "
                    "nothing was kept; make room there or choose another --logdir"
                ) from exc
            raise

    def images(self, tag: str, batch: torch.Tensor, step: int) -> None:
        """A batch (N, C, H, W) as one grid image, exactly as ``SummaryWriter.add_images`` logs it."""
        self._tb.add_images(tag, batch.detach().cpu(), step, dataformats="NCHW")

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._tb.add_scalar(tag, value, step)

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        self._tb.add_text(tag, markdown, step)

    def hparams(self, hparams: Mapping[str, Any], metrics: list[str]) -> None:
        """Write the HParams plugin's session records into this run (not a sub-run)."""
        exp, start, end = hparams_summary(dict(hparams), {m: 0.0 for m in metrics})
        writer = self._tb._get_file_writer()
        for summary in (exp, start, end):
            writer.add_summary(summary)

    def save_text(self, name: str, content: str) -> None:
        (self.run_dir / name).write_text(content, encoding="utf-8")

    def save_json(self, name: str, data: Mapping[str, Any]) -> None:
        tmp = self.run_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.run_dir / name)

    def flush(self) -> None:
        self._tb.flush()

    def close(self) -> None:
        """Flush and close the event file; once only, even if the final flush fails."""
        tb, self._tb = self._tb, None
        if tb is not None:
            tb.close()

    def discard(self) -> None:
        """Close and remove this run's directory (only ever one that this writer created)."""
        try:
            self.close()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)
