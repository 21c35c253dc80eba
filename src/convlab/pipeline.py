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
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch

from convlab import data as datasets
from convlab.config import ConfigError, ConvConfig, Experiment, Interrupted, PoolConfig, StageConfig, dump_toml, names
from convlab.explain import explain
from convlab.interrupts import closes_on_signals
from convlab.layers import (
    Shape,
    build_layer,
    check_batch_memory,
    check_weights,
    describe_arithmetic,
    max_unpool,
    resolved_in_channels,
)
from convlab.modules import stage_tag
from convlab.runs import check_logdir, create_run_dir, default_run_name, write_config, write_summary
from convlab.stack import explain_stack, output_shapes
from convlab.views import (
    StageOutput,
    check_stack_views,
    check_views,
    check_zoom,
    is_activation_lesson,
    output_images,
    output_tag,
    records,
    selected_views,
)
from convlab.views import stage_tag as view_tag
from convlab.weights import stack_weights
from convlab.writer import RunWriter, WriteError


class Reporter(Protocol):
    def info(self, text: str) -> None: ...

    def progress(self, total: int, description: str) -> AbstractContextManager[Callable[..., None]]:
        """Yields ``advance(status=None)``, called after each step."""


class SilentReporter:
    def info(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[..., None]]:
        yield lambda status=None: None


@dataclass(frozen=True)
class StagePlan:
    """One stage: its config, its real torch module and the shapes it maps between."""

    cfg: StageConfig
    module: torch.nn.Module
    input_shape: Shape
    output_shape: Shape
    # In a stack: the stage's tag ('01-conv2d'), every tag of its views goes under it;
    # None: a one-layer lesson, logged with the lesson's tags ('output', 'maxpool').
    prefix: str | None = None

    @property
    def output_tag(self) -> str | None:
        return output_tag(self.cfg) if self.prefix is None else None


@dataclass(frozen=True)
class Plan:
    """What a run will do, decided without loading data or writing anything."""

    exp: Experiment
    device: str
    input_shape: Shape
    stages: tuple[StagePlan, ...]
    num_images: int
    num_steps: int
    # What the user should know about the weights (where they came from, what was left out).
    notes: tuple[str, ...] = ()
    # Pretrained weights expect their images normalised: (mean, std) per channel.
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def output_shape(self) -> Shape:
        return self.stages[-1].output_shape

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the first stage takes: the images, normalised where pretrained weights expect it."""
        if self.normalize is None:
            return x
        mean, std = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in self.normalize)
        return (x - mean) / std

    @property
    def module(self) -> torch.nn.Module:
        """The layer of a one-stage experiment."""
        (stage,) = self.stages
        return stage.module

    @property
    def output_tag(self) -> str:
        (stage,) = self.stages
        return stage.output_tag

    @property
    def arithmetic(self) -> list[str]:
        return [line for s in self.stages for line in describe_arithmetic(s.cfg, s.input_shape)]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name} was asked for, but no CUDA GPU is available to PyTorch here; "
                "use --device cpu (or auto)"
            )
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"--device {name}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return name


def count_steps(num_images: int, batch_size: int, max_batches: int | None) -> int:
    steps = math.ceil(num_images / batch_size)
    return min(steps, max_batches) if max_batches is not None else steps


def plan(exp: Experiment) -> Plan:
    """The single pre-flight: every check against the data's shape and this machine.

    The modules are built here, with the experiment's seed on a forked RNG, so planning
    leaves torch's global random state as it was (a dry run changes nothing).
    """
    spec = datasets.get_dataset(exp.data.dataset)
    input_shape = spec.shape(exp.data)
    check_views(exp)
    in_stack = exp.is_stack
    shapes = output_shapes(exp.stages, input_shape, name_stages=in_stack)
    if in_stack:
        check_stack_views(exp, shapes)
    device = resolve_device(exp.run.device)
    for stage, shape, out in zip(exp.stages, shapes, shapes[1:]):
        check_weights(stage, shape[0])
        check_zoom(exp, stage, out, shape[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(exp.run.seed)
        modules = [build_layer(stage, resolved_in_channels(stage, shape[0])) for stage, shape in zip(exp.stages, shapes)]
    num_images = spec.num_images(exp.data)
    for shape in shapes[1:]:
        check_batch_memory(exp.data.batch_size, num_images, shape)
    notes, normalize = stack_weights(exp, modules) if in_stack else ([], None)
    count = len(exp.stages)
    prefixes = [
        None if not in_stack or is_activation_lesson(exp) else stage_tag(i, cfg, count) for i, cfg in enumerate(exp.stages, 1)
    ]
    stages = tuple(StagePlan(*row) for row in zip(exp.stages, modules, shapes, shapes[1:], prefixes))
    return Plan(
        exp=exp,
        device=device,
        input_shape=input_shape,
        stages=stages,
        num_images=num_images,
        num_steps=count_steps(num_images, exp.data.batch_size, exp.data.max_batches),
        notes=tuple(notes),
        normalize=normalize,
    )


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


def describe(p: Plan) -> str:
    """The module, its shapes and the arithmetic, as plain text (terminal and TensorBoard)."""
    if p.exp.is_stack:
        table = explain_stack(p.exp.stages, p.input_shape, max_channels=p.exp.stack.max_channels)
        return "\n".join([table.text(), *p.notes])
    lines = []
    for s in p.stages:
        lines += [f"module: {s.module}", f"input -> output: {s.input_shape} -> {s.output_shape} (C, H, W)"]
        lines += ["  " + line for line in describe_arithmetic(s.cfg, s.input_shape)[:2]]
        lines += init_lines(s.cfg)
    return "\n".join(lines)


def init_lines(stage: StageConfig) -> list[str]:
    """Where a conv's weights come from, when not from PyTorch's default init."""
    if not isinstance(stage, ConvConfig):
        return []
    if stage.weights is not None:
        return [f"weights: loaded from {stage.weights}"]
    if stage.init != "random":
        return [f"weights: {', '.join(names(stage.init))} (one kernel per output channel; see kernels.py)"]
    return []


def _markdown_block(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _log(writer: RunWriter, logged: list, step: int) -> None:
    for method, tag, value in logged:
        getattr(writer, method)(tag, value, step)


def log_step(
    writer: RunWriter, p: Plan, x: torch.Tensor, outputs: list[torch.Tensor], step: int,
    labels: torch.Tensor | None = None, classes: tuple[str, ...] = (),
) -> None:
    """Everything logged for one batch: input ``x`` (floats in [0, 1]) and each stage's output
    (``labels`` and ``classes`` name the images for the 'classes' view)."""
    writer.images("input", x, step)
    stage_input = x
    for i, (s, y) in enumerate(zip(p.stages, outputs)):
        if s.output_tag is not None:
            writer.images(s.output_tag, output_images(s.cfg, y), step)
        mean, std = torch.stack([y.mean(), y.std()]).tolist()
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
    tags = ["input"]
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
    with contextlib.suppress(OSError):  # already failing: the first error is the one to report
        writer.close()
    if steps == 0:
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


def _forward(modules: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Every stage's output for one batch, in order."""
    outputs = []
    with torch.inference_mode():
        for module in modules:
            x = module(x)
            outputs.append(x)
    return outputs


class RunLog:
    """One run being logged: its directory and event file, the header, a call per batch, and
    how it ended. :func:`run` drives one; a sweep drives several over the same batches."""

    def __init__(
        self, p: Plan, images: datasets.ImageSet, num_steps: int, *,
        name: str | None = None, logdir: str | None = None, hparams_first: tuple[str, ...] = (),
    ):
        exp = p.exp
        self.plan = p
        self.hparams_first = hparams_first
        logdir = exp.run.logdir if logdir is None else logdir
        explicit = name is not None or exp.run.run_name is not None
        self.run_dir = create_run_dir(logdir, name or exp.run.run_name or default_run_name(exp), explicit=explicit)
        self.writer = RunWriter(self.run_dir)
        self.summary: dict[str, Any] = {
            "status": "running",
            "command": exp.command,
            "run_dir": str(self.run_dir),
            "dataset": images.name,
            "split": images.split,
            "images": len(images),
            "steps": 0,
            "planned_steps": num_steps,
            "device": p.device,
            "input_shape": list(p.input_shape),
            "output_shape": list(p.output_shape),
            "tags": logged_tags(p),
        }
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
        writer.hparams(hparams(p.exp, self.hparams_first), [view_tag(last, "output/mean"), view_tag(last, "output/std")])
        log_once(writer, p)

    def step(self, x: torch.Tensor, outputs: list[torch.Tensor], step: int, labels: torch.Tensor | None = None) -> None:
        """One batch: ``x`` as loaded (floats in [0, 1]), every stage's output, and the batch's
        labels (a stack's 'classes' view names the images with them)."""
        if self.plan.exp.is_stack:
            log_step(self.writer, self.plan, x, outputs, step, labels=labels, classes=self._classes)
        else:
            log_step(self.writer, self.plan, x, outputs, step)
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
    num_steps = count_steps(len(images), exp.data.batch_size, exp.data.max_batches)
    for note in images.notes:
        reporter.info(note)

    log = RunLog(p, images, num_steps)
    torch_threads = torch.get_num_threads()
    try:
        log.start()
        reporter.info(describe(p))
        reporter.info(f"run: {log.run_dir}")
        modules = [s.module.to(p.device).eval() for s in p.stages]
        if p.device == "cpu":
            # A batch is too small to gain from intra-op threads, whose spin-waiting competes
            # with the writer's PNG encoders: on 2 busy cores, 2 threads made runs several
            # times slower (measured with bench/bench.py). Restored below.
            torch.set_num_threads(1)
        started = time.perf_counter()
        bs = exp.data.batch_size
        with reporter.progress(num_steps, f"{exp.command} {images.name}/{images.split}") as advance:
            for step in range(num_steps):
                x = images.batch(step * bs, (step + 1) * bs).to(p.device).float().div_(255)
                labels = images.batch_labels(step * bs, (step + 1) * bs)
                log.step(x, _forward(modules, p.model_input(x)), step, labels=labels)
                advance()
        return log.complete(time.perf_counter() - started)
    except BaseException as exc:
        log.stopped(exc)
        raise
    finally:
        torch.set_num_threads(torch_threads)
