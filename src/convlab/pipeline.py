"""run(experiment): data -> stages -> views -> writer; returns a summary.

Everything that can be wrong with what the user asked for is found by :func:`plan` before
any data is loaded or any file is written; a run directory exists only once the data is in
hand, and a run that fails before its first step leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

import torch

from convlab import data as datasets
from convlab.config import dump_toml
from convlab.errors import Interrupted
from convlab.experiment import Experiment
from convlab.explain.windows import explain
from convlab.interrupts import closes_on_signals
from convlab.layers import max_unpool
from convlab.modules import call_text
from convlab.planning import Plan, StagePlan, batch_threads, count_steps, describe, last_batch_note, memory_error, plan
from convlab.runs import check_logdir, create_run_dir, default_run_name, write_config, write_summary
from convlab.stages import PoolConfig
from convlab.views import (
    StageOutput,
    output_images,
    records,
    selected_views,
)
from convlab.views import stage_tag as view_tag
from convlab.writer import RunWriter, WriteError


class Reporter(Protocol):
    def info(self, text: str) -> None: ...

    def progress(self, total: int, description: str) -> AbstractContextManager[Callable[..., None]]:
        """Yields ``advance(status=None, *, steps=1, eta=None)``, called after each step (``steps=0``:
        a status alone; ``eta``: the run's own estimate of the seconds left)."""


class SilentReporter:
    def info(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[..., None]]:
        yield lambda status=None, **_: None


def hparams(exp: Experiment, first: tuple[str, ...] = ()) -> dict[str, Any]:
    """Flat ``section.key -> int | float | str | bool`` for TensorBoard's HParams dashboard.

    ``first``: keys to put first (the dashboard's columns follow this order), e.g. what a
    sweep varies; the keys and values are the same whatever the order.
    """
    out: dict[str, Any] = {"command": exp.command}
    for name, section in exp.sections().items():
        for f in fields(section):
            value = getattr(section, f.name)
            if value is None:
                value = "default"
            elif isinstance(value, tuple):
                value = "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else "; ".join(value)
            out[f"{name}.{f.name}"] = value
    return {**{key: out[key] for key in first if key in out}, **out}


def _markdown_block(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _log(writer: RunWriter, logged: list, step: int) -> None:
    for method, tag, value in logged:
        getattr(writer, method)(tag, value, step)


class NonFinite:
    """Inf and NaN in the stages' outputs, which every view takes (histograms leave them out):
    counted per step as a scalar ('01-conv2d/nonfinite', or 'output/nonfinite') from the first step
    that has any, and said once per stage through ``say`` (the terminal)."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say or (lambda line: None)
        self.first: dict[str, int] = {}  # tag -> the step it was first seen at

    def check(self, writer: RunWriter, p: Plan, outputs: list[torch.Tensor], step: int) -> None:
        for index, (s, y) in enumerate(zip(p.stages, outputs), 1):
            tag = view_tag(s.prefix, "output/nonfinite")
            # A finite sum means every value is (0.07 ms for a CIFAR10 conv batch, against 2.9 ms for
            # isfinite().all()); a sum that overflowed is told apart by the count below.
            if tag not in self.first and math.isfinite(y.sum().item()):
                continue
            inf, nan = torch.stack([torch.isinf(y).sum(), torch.isnan(y).sum()]).tolist()
            if not inf + nan and tag not in self.first:
                continue
            writer.scalar(tag, inf + nan, step)
            if tag not in self.first:
                self.first[tag] = step
                held = " and ".join(f"{n:,} {what}" for n, what in ((inf, "inf"), (nan, "NaN")) if n)
                where = "the output" if s.prefix is None else f"stage {index} {call_text(s.cfg)}: its output"
                self.say(f"{where} holds {held} values (of {y.numel():,}) from step {step}; counted per step in {tag}, "
                         "left out of the histograms")


def log_step(
    writer: RunWriter, p: Plan, x: torch.Tensor, outputs: list[torch.Tensor], step: int,
    labels: torch.Tensor | None = None, classes: tuple[str, ...] = (),
) -> None:
    """Everything logged for one batch: input ``x`` (floats in [0, 1]) and each stage's output
    (``labels`` and ``classes`` name the images for the 'classes' view)."""
    writer.images(p.input_tag, x, step)
    stage_input = x
    for i, (s, y) in enumerate(zip(p.stages, outputs)):
        if s.output_tag is not None:
            writer.images(s.output_tag, output_images(s.cfg, y), step)
        # The sample std, as torch.std; of one value it is undefined (torch warns and gives nan).
        std = y.std() if y.numel() > 1 else y.new_full((), math.nan)
        mean, std = torch.stack([y.mean(), std]).tolist()
        writer.scalar(view_tag(s.prefix, "output/mean"), mean, step)
        writer.scalar(view_tag(s.prefix, "output/std"), std, step)
        if isinstance(s.cfg, PoolConfig) and s.cfg.unpool:
            writer.images("unpool", max_unpool(stage_input, s.cfg), step)
        seen = _seen(p, s, stage_input, y, labels=labels, classes=classes, last=i == len(p.stages) - 1)
        for view in selected_views(p.exp, s.cfg, s.output_shape):
            if view.when == "step":
                _log(writer, records(view, seen), step)
        stage_input = y


def _seen(p: Plan, s: StagePlan, x: Any, y: Any, **more: Any) -> StageOutput:
    cap = p.exp.stack.max_channels if s.prefix is not None else None
    return StageOutput(s.cfg, s.module, x, y, p.exp.views, prefix=s.prefix, max_channels=cap, **more)


def log_once(writer: RunWriter, p: Plan) -> None:
    """The views that do not change during a run (a conv's weights), at step 0."""
    for s in p.stages:
        seen = _seen(p, s, None, None)
        for view in selected_views(p.exp, s.cfg, s.output_shape):
            if view.when == "once":
                _log(writer, records(view, seen), 0)


def logged_tags(p: Plan) -> list[str]:
    """The image tags a run logs, the tutorial's first, then each stage's in stage order."""
    tags = [p.input_tag]
    for s in p.stages:
        if s.output_tag is not None:
            tags.append(s.output_tag)
        if isinstance(s.cfg, PoolConfig) and s.cfg.unpool:
            tags.append("unpool")
    for s in p.stages:
        tags += [view_tag(s.prefix, tag) for view in selected_views(p.exp, s.cfg, s.output_shape) for tag in view.image_tags]
    return tags


def _stopped(writer: RunWriter, summary: dict[str, Any], exc: BaseException) -> None:
    """A run stopped early: keep every step logged so far and say so, or leave nothing.

    Raises the error the user should see when it differs from ``exc`` (a write error).
    """
    steps, run_dir = summary["steps"], writer.run_dir
    if isinstance(exc, Interrupted):
        summary["stopped_by"] = exc.name
    elif isinstance(exc, OSError):
        summary["stopped_by"] = f"write error: {exc.strerror or exc}"
    else:
        summary["stopped_by"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    summary_saved = False
    # Whatever escaped, the run ends consistently: closing may meet the same error again (or
    # another), but the first error is the one to report; then nothing, or the steps, kept.
    with contextlib.suppress(Exception):
        writer.close()
    if steps == 0:
        with contextlib.suppress(Exception):  # discard removes the directory whatever it meets
            writer.discard()
    else:
        with contextlib.suppress(OSError):
            write_summary(run_dir, summary)
            summary_saved = True
    marked = "summary.json marks the run incomplete" if summary_saved else "summary.json could not be updated"
    if isinstance(exc, Interrupted):
        kept = f"the {steps} step(s) logged stay readable in {run_dir} ({marked})"
        exc.detail = f"after {steps} of {summary['planned_steps']} step(s); " + (
            kept if steps else "nothing was logged yet, so nothing was kept"
        )
    elif isinstance(exc, OSError):
        # Events still queued for TensorBoard's writer thread are lost with the write, so
        # say "what was written", not a step count.
        kept = f"what was written before it stays readable there ({marked})" if steps else "nothing was kept"
        raise WriteError(
            f"cannot write to {run_dir}: {exc.strerror or exc}; {kept}; "
            "make room (or choose another --logdir) and run again"
        ) from exc


def forward(modules: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Every stage's output for one batch, in order."""
    outputs = []
    with torch.inference_mode():
        for module in modules:
            x = module(x)
            outputs.append(x)
    return outputs


def first_summary(
    exp: Experiment, run_dir: Path, images: datasets.ImageSet, num_steps: int, device: str,
    input_shape: tuple[int, ...], output_shape: tuple[int, ...], tags: list[str],
) -> dict[str, Any]:
    """What summary.json says of a run as it starts; its steps and status follow."""
    return {
        "status": "running",
        "command": exp.command,
        "run_dir": str(run_dir),
        "dataset": images.name,
        "split": images.split,
        "images": len(images),
        "steps": 0,
        "planned_steps": num_steps,
        "device": device,
        "input_shape": list(input_shape),
        "output_shape": list(output_shape),
        "tags": tags,
    }


class RunLog:
    """One run being logged: its directory and event file, the header, a call per batch, and
    how it ended. :func:`run` drives one; a sweep drives several over the same batches."""

    def __init__(
        self, p: Plan, images: datasets.ImageSet, num_steps: int, *,
        name: str | None = None, logdir: str | None = None, hparams_first: tuple[str, ...] = (),
        say: Callable[[str], None] | None = None,
    ):
        exp = p.exp
        self.plan = p
        self.hparams_first = hparams_first
        self.nonfinite = NonFinite(say)
        logdir = exp.run.logdir if logdir is None else logdir
        explicit = name is not None or exp.run.run_name is not None
        self.run_dir = create_run_dir(logdir, name or exp.run.run_name or default_run_name(exp), explicit=explicit)
        self.writer = RunWriter(self.run_dir)
        self.summary = first_summary(exp, self.run_dir, images, num_steps, p.device, p.input_shape, p.output_shape, logged_tags(p))
        self._data_text = images.describe()
        self._classes = images.classes

    def start(self) -> None:
        """config.toml, summary.json, the texts, hparams and the views logged once."""
        p, writer = self.plan, self.writer
        write_config(self.run_dir, dump_toml(p.exp))
        write_summary(self.run_dir, self.summary)
        writer.text("config", _markdown_block(dump_toml(p.exp)))
        if p.exp.is_stack:
            layer_text = describe(p)
        else:
            layer_text = "\n\n".join(explain(s.cfg, s.input_shape).text() for s in p.stages)
        writer.text("layer", _markdown_block(layer_text))
        writer.text("data", _markdown_block(self._data_text))
        last = p.stages[-1].prefix
        metrics = [view_tag(last, "output/mean"), view_tag(last, "output/std")]
        writer.hparams(hparams(p.exp, self.hparams_first), metrics, first=self.hparams_first)
        log_once(writer, p)

    def step(self, x: torch.Tensor, outputs: list[torch.Tensor], step: int, labels: torch.Tensor | None = None) -> None:
        """One batch: ``x`` as loaded (floats in [0, 1]), every stage's output, and the batch's
        labels (a stack's 'classes' view names the images with them)."""
        if self.plan.exp.is_stack:
            log_step(self.writer, self.plan, x, outputs, step, labels=labels, classes=self._classes)
        else:
            log_step(self.writer, self.plan, x, outputs, step)
        self.nonfinite.check(self.writer, self.plan, outputs, step)
        if step == 0:
            # When the learner can first look (bench/bench.py measures it from the imports).
            self.summary["first_step_time"] = round(time.time(), 3)
        self.summary["steps"] = step + 1

    def complete(self, seconds: float) -> dict[str, Any]:
        self.summary.update(status="complete", seconds=round(seconds, 3))
        self.writer.close()  # every event is on disk before summary.json says "complete"
        write_summary(self.run_dir, self.summary)
        return self.summary

    def stopped(self, exc: BaseException) -> None:
        """Keep what was logged (marked incomplete) or, before the first step, nothing."""
        self.summary["status"] = "incomplete"
        _stopped(self.writer, self.summary, exc)


@closes_on_signals
def run(exp: Experiment, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the experiment and log it; returns the run's summary (also saved as summary.json)."""
    reporter = reporter or SilentReporter()
    p = plan(exp)
    check_logdir(exp.run.logdir, exp.run.run_name)
    images = datasets.load(exp.data, exp.run.seed)
    if images.image_shape != p.input_shape:  # pragma: no cover - a dataset bug, not a user error
        raise RuntimeError(f"dataset {images.name} gave images of {images.image_shape}, expected {p.input_shape}")
    num_steps = count_steps(len(images), exp.data.batch_size, exp.data.max_batches, p.min_batch)
    for note in [*images.notes, last_batch_note(p.batch_stats, len(images), exp.data.batch_size, num_steps)]:
        if note:
            reporter.info(note)

    log = RunLog(p, images, num_steps, say=reporter.info)
    try:
        log.start()
        reporter.info(describe(p))
        reporter.info(f"run: {log.run_dir}")
        modules = [s.module.to(p.device).eval() for s in p.stages]
        started = time.perf_counter()
        bs = exp.data.batch_size
        with batch_threads(p.device), reporter.progress(num_steps, f"{exp.command} {images.name}/{images.split}") as advance:
            for step in range(num_steps):
                x = images.batch(step * bs, (step + 1) * bs).to(p.device).float().div_(255)
                labels = images.batch_labels(step * bs, (step + 1) * bs)
                log.step(x, forward(modules, p.model_input(x)), step, labels=labels)
                advance()
        return log.complete(time.perf_counter() - started)
    except BaseException as exc:
        error = memory_error(exc, p)
        log.stopped(error or exc)
        if error is not None:
            raise error from None
        raise
