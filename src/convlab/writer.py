"""The only module that talks to TensorBoard: one run directory, one event file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from convlab.config import ConvlabError

if TYPE_CHECKING:
    import numpy as np

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"


class LogdirError(ConvlabError):
    """The run directory cannot be created where asked."""


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
        self._tb = SummaryWriter(log_dir=str(self.run_dir))

    def images(self, tag: str, batch: torch.Tensor, step: int) -> None:
        """A batch (N, C, H, W) as one grid image, exactly as ``SummaryWriter.add_images`` logs it."""
        self._tb.add_images(tag, batch.detach().cpu(), step, dataformats="NCHW")

    def image(self, tag: str, pixels: "np.ndarray", step: int) -> None:
        """One (H, W, 3) uint8 picture, logged losslessly (e.g. a frame of an animation)."""
        self._tb.add_image(tag, pixels, step, dataformats="HWC")

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
        self._tb.close()

    def discard(self) -> None:
        """Close and remove this run's directory (only ever one that this writer created)."""
        self.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """The distribution of ``values`` in 64 equal bins between their min and max.

        Not SummaryWriter's default exponential buckets (hundreds per step for a conv
        output): 64 equal bins make a ~9x smaller event, and TensorBoard re-bins to ~30
        for display anyway.
        """
        self._tb.add_histogram(tag, values.detach().flatten().cpu(), step, bins=64)
