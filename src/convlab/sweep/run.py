"""A sweep's one pass over the data: every batch through every combination, then the next.

Each combination is a :class:`pipeline.RunLog`, so it logs exactly what the single command
logs; the run ``compare`` (:class:`CompareLog`) logs the side-by-side picture and the table
of combinations. Stopped by a signal, every run keeps the steps it logged.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import torch

from convlab import data as datasets
from convlab.config import dump_toml
from convlab.errors import Interrupted
from convlab.interrupts import closes_on_signals
from convlab.pictures import display_scale
from convlab.pipeline import Reporter, RunLog, SilentReporter, forward
from convlab.planning import batch_threads, count_steps, last_batch_note, memory_error
from convlab.runs import check_logdir, create_run_dir, default_sweep_name, remove_run_dir, write_config, write_summary
from convlab.sweep.compare import OutputStats, compare_scale, compare_tiles, shared_scale
from convlab.sweep.grid import Sweep, compare_picture, config_text, describe, shown_as_pixels, shown_channels, table_rows
from convlab.writer import RunWriter, SharedBatch, WriteError


def markdown_table(sw: Sweep, stats: list[OutputStats], steps: int) -> str:
    rows = table_rows(sw, stats)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * len(rows[0]))
    counted = ("of Conv2d and Linear, as convlab explain stack counts them" if sw.command == "stack"
               else "0 for pooling, which compares or adds")
    lines += ["", f"Output mean and std over {steps} step(s) ({stats[0].count // max(math.prod(sw.runs[0].plan.output_shape), 1):,} images); "
              f"multiply-adds per image ({counted})."]
    lines += [f"- skipped {c.name}: {c.error}" for c in sw.skipped]
    return "\n".join(lines)


class CompareLog:
    """The sweep's run ``compare``: image tag ``compare`` every step, text tag ``combinations``
    (at step 0 and at the last step), and a summary.json like every run's."""

    def __init__(self, sw: Sweep, sweep_dir: Path, num_steps: int):
        exp = sw.exp
        self.sw, self.num_steps = sw, num_steps
        self.run_dir = create_run_dir(sweep_dir, "compare", explicit=True)
        self.writer = RunWriter(self.run_dir)
        self.stats = [OutputStats() for _ in sw.runs]
        self.scale = compare_scale([shown_as_pixels(c.plan) for c in sw.runs], exp.views.scale)
        self.picture = compare_picture(sw)
        self.summary: dict[str, Any] = {
            "status": "running", "command": f"sweep {sw.command}", "run_dir": str(self.run_dir), "steps": 0,
            "planned_steps": num_steps, "runs": [c.name for c in sw.runs], "tags": ["compare"],
        }

    def start(self) -> None:
        write_summary(self.run_dir, self.summary)

    def step(self, x: torch.Tensor, outputs: list[torch.Tensor], step: int) -> None:
        """``outputs``: each run's last stage output for batch ``x``."""
        k = self.sw.exp.views.images
        for s, y in zip(self.stats, outputs):
            s.add(y)
        tiles = [compare_tiles(c.plan.stages[-1].cfg, y[:k], shown_channels(c.plan)) for c, y in zip(self.sw.runs, outputs)]
        columns = shared_scale(tiles, self.scale)
        self.writer.image("compare", self.picture.draw([display_scale(x[:k], "raw"), *columns]), step)
        if step == 0 and self.num_steps > 1:
            self.writer.text("combinations", markdown_table(self.sw, self.stats, 1), 0)
        self.summary["steps"] = step + 1

    def complete(self, seconds: float) -> dict[str, Any]:
        self._table()
        self.summary.update(status="complete", seconds=round(seconds, 3))
        self.writer.close()
        write_summary(self.run_dir, self.summary)
        return self.summary

    def stopped(self, exc: BaseException) -> None:
        """Keep the steps logged (marked incomplete), or nothing before the first."""
        self.summary.update(status="incomplete", stopped_by=getattr(exc, "name", type(exc).__name__))
        with contextlib.suppress(Exception):  # already failing: the first error is the one to report
            if self.summary["steps"]:
                self._table()
            self.writer.close()
        if not self.summary["steps"]:
            with contextlib.suppress(Exception):  # discard removes the directory whatever it meets
                self.writer.discard()
            return
        with contextlib.suppress(OSError):
            write_summary(self.run_dir, self.summary)

    def _table(self) -> None:
        steps = self.summary["steps"]
        if steps:
            self.writer.text("combinations", markdown_table(self.sw, self.stats, steps), steps - 1)


@closes_on_signals
def run(sw: Sweep, reporter: Reporter | None = None) -> dict[str, Any]:
    """Load the data once; every batch through every run, then the next. Returns the sweep's
    summary (also its summary.json): its directory, steps, runs and what was skipped."""
    reporter = reporter or SilentReporter()
    exp = sw.exp
    check_logdir(exp.run.logdir, sw.name)
    images = datasets.load(exp.data, exp.run.seed)
    needs = next((c.plan for c in sw.runs if c.plan.batch_stats), sw.runs[0].plan)  # a run that needs batches of 2+
    num_steps = count_steps(len(images), exp.data.batch_size, exp.data.max_batches, needs.min_batch)
    for note in [*images.notes, last_batch_note(needs.batch_stats, len(images), exp.data.batch_size, num_steps)]:
        if note:
            reporter.info(note)

    sweep_dir = create_run_dir(exp.run.logdir, sw.name or default_sweep_name(exp), explicit=sw.name is not None)
    logs: list[RunLog] = []
    compare: CompareLog | None = None
    summary: dict[str, Any] = {
        "status": "running", "command": f"sweep {sw.command}", "sweep_dir": str(sweep_dir), "steps": 0,
        "planned_steps": num_steps, "runs": [c.name for c in sw.runs], "skipped": {c.name: str(c.error) for c in sw.skipped},
    }
    try:
        write_config(sweep_dir, config_text(sw, dump_toml(exp)))
        write_summary(sweep_dir, summary)
        for c in sw.runs:
            logs.append(RunLog(c.plan, images, num_steps, name=c.name, logdir=str(sweep_dir), hparams_first=sw.hparams_first,
                               say=lambda line, name=c.name: reporter.info(f"run {name}: {line}")))
        compare = CompareLog(sw, sweep_dir, num_steps)
        shared = SharedBatch()  # every run logs the same input: its grid is encoded once
        for log in logs:
            log.writer.shared = shared
        for log in logs:
            log.start()
        compare.start()
        reporter.info(describe(sw))
        reporter.info(f"sweep: {sweep_dir}")
        device = sw.runs[0].plan.device
        modules = [[s.module.to(device).eval() for s in c.plan.stages] for c in sw.runs]
        started = time.perf_counter()
        bs = exp.data.batch_size
        with batch_threads(device), reporter.progress(num_steps, f"sweep {sw.command} {images.name}/{images.split}, {len(logs)} runs") as advance:
            for step in range(num_steps):
                x = images.batch(step * bs, (step + 1) * bs).to(device).float().div_(255)
                labels = images.batch_labels(step * bs, (step + 1) * bs)
                shared.set(x)
                last = []
                for log, stages in zip(logs, modules):
                    outputs = forward(stages, log.plan.model_input(x))
                    log.step(x, outputs, step, labels=labels)
                    last.append(outputs[-1])
                compare.step(x, last, step)
                summary["steps"] = step + 1
                advance()
        seconds = time.perf_counter() - started
        for log in logs:
            log.complete(seconds)
        compare.complete(seconds)
        summary.update(status="complete", seconds=round(seconds, 3))
        write_summary(sweep_dir, summary)
        return summary
    except BaseException as exc:
        error = memory_error(exc, sw.runs[0].plan)
        _stopped(sweep_dir, logs, compare, summary, error or exc)
        if error is not None:
            raise error from None
        raise


def _stopped(sweep_dir: Path, logs: list[RunLog], compare: CompareLog | None, summary: dict[str, Any], exc: BaseException) -> None:
    """Every run keeps the steps it logged (marked incomplete); a sweep stopped before its first
    step leaves nothing. Raises the first write error, if stopping met one."""
    error: BaseException | None = None
    steps, planned = summary["steps"], summary["planned_steps"]
    for log in logs:
        # A run that logged the step being taken when the sweep stopped counts only the steps
        # every run and 'compare' completed, as the sweep's summary does (a single run stopped
        # mid-step may hold that step's events in part too).
        log.summary["steps"] = min(log.summary["steps"], steps)
        try:
            log.stopped(exc)
        except WriteError as write_error:
            error = error or write_error
        except Exception:  # already stopping: the first error is the one to report
            pass
    if compare is not None:
        compare.summary["steps"] = min(compare.summary["steps"], steps)
        with contextlib.suppress(Exception):
            compare.stopped(exc)
    if not any(log.summary["steps"] for log in logs):
        remove_run_dir(sweep_dir)
        kept = "nothing was logged yet, so nothing was kept"
    else:
        summary.update(status="incomplete", stopped_by=getattr(exc, "name", type(exc).__name__))
        with contextlib.suppress(OSError):
            write_summary(sweep_dir, summary)
        also = " and 'compare'" if compare is not None and compare.summary["steps"] else ""
        kept = (f"the steps logged by its {len(logs)} run(s){also} stay readable in {sweep_dir} "
                "(each summary.json marks its run incomplete)")
    if isinstance(exc, Interrupted):
        exc.detail = f"after {steps} of {planned} step(s) of the sweep; {kept}"
    if error is not None:
        raise error from exc
