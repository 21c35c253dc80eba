"""A Python ``nn.Module`` run over the data and logged call by call, as a stack run logs its
stages: the notebook API's ``convlab.stack(model=...)`` (and what ``convlab.train(model=...)``
shows of the model it trains).

The model's leaf calls (:mod:`convlab.hooks`) are its stages: tag ``input``, then each call's
picture in call order (``01-conv2d``, ``02-relu``, ...; a module called twice has two), its
statistics, the first Conv2d's kernels once (every one's when --views names kernels), and the ``classes`` text when the last call gives one
score per class. Which views apply to a call is decided by the stage kind it stands in for
(:func:`view_stage`), so the views' registry, checks and pictures are the stack's own. Everything
is checked on blank images (:func:`plan_model`) before any data is loaded. The model runs where
its parameters are, in eval mode, and is left in the mode it was in.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from convlab import data as datasets
from convlab.config import dump_toml
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.hooks import Call, ModelTable, Recorded, evaluating, run_model, trace
from convlab.interrupts import closes_on_signals
from convlab.layers import Shape, check_batch_memory
from convlab.modules import stage_of
from convlab.pipeline import Reporter, RunLog, SilentReporter, _markdown_block, first_summary, hparams
from convlab.planning import batch_threads, count_steps, memory_error, resolve_device
from convlab.runs import check_logdir, create_run_dir, default_run_name, write_config, write_summary
from convlab.snapshots import BesideStepZero, Snapshots
from convlab.stages import ConvConfig, IdentityConfig, PoolConfig, StageConfig
from convlab.values import names
from convlab.views import VIEWS, StageOutput, View, check_views, check_zoom, records, selected_views, stage_tag
from convlab.writer import RunWriter

if TYPE_CHECKING:
    from torch import nn


def view_stage(module: nn.Module) -> StageConfig:
    """The stage kind whose views a call's output gets: a Conv2d's or a ConvTranspose2d's (its kernels
    too), a pool's, and for any other module Identity's (channels for a map, features and classes for a vector)."""
    from torch import nn

    if type(module) is nn.ConvTranspose2d and stage_of(module) is not None:
        return stage_of(module)
    if isinstance(module, nn.Conv2d):
        return ConvConfig(in_channels=module.in_channels, out_channels=module.out_channels, kernel_size=module.kernel_size,
                          groups=module.groups)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return PoolConfig(mode="max" if isinstance(module, nn.MaxPool2d) else "avg")
    return IdentityConfig()


@dataclass(frozen=True)
class ModelPlan:
    """What a model's run will do, decided on blank images before any data is loaded."""

    exp: Experiment
    model: nn.Module
    device: str
    input_shape: Shape
    table: ModelTable
    # Per call: the stage it stands in for (None: its output is no map or feature vector, so it
    # has no pictures) and the views it logs.
    stand_ins: tuple[StageConfig | None, ...]
    views: tuple[tuple[View, ...], ...]
    num_images: int
    num_steps: int
    normalize: None = None  # a model takes the images as they are, floats in [0, 1]
    batch_stats: None = None  # its BatchNorm layers are its own: not looked into (planning.batch_statistics_stage)

    @property
    def calls(self) -> list[Call]:
        return self.table.calls

    @property
    def output_shape(self) -> Shape:
        return self.table.output_shape or ()

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def describe(self) -> str:
        return self.table.text()


def model_device(name: str, model: nn.Module) -> str:
    """Where the model runs: where its parameters are. A device it is not on is an error, not a move."""
    where = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    if name != "auto":
        asked = torch.device(resolve_device(name))
        if asked.type != where.type or asked.index not in (None, where.index):
            raise ConfigError(
                f"device={name!r}, but model {type(model).__name__}'s parameters are on {where}; convlab runs your model "
                f"where it is: move it first (model.to({name!r})) or leave device out"
            )
    return str(where)


def plan_model(exp: Experiment, model: nn.Module) -> ModelPlan:
    """The pre-flight: the model's calls on blank images of the dataset's shape, every view
    asked for applying to some call, picture sizes, memory."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model= takes a torch.nn.Module (your network's object), got {type(model).__name__}")
    spec = datasets.get_dataset(exp.data.dataset)
    input_shape = spec.shape(exp.data)
    device = model_device(exp.run.device, model)
    with torch.random.fork_rng(devices=[]):  # a dropout in train mode would draw; the trace runs in eval mode anyway
        table = trace(model, input_shape, device)
    stand_ins = tuple(view_stage(c.module) if c.output_shape is not None and len(c.output_shape) in (1, 3) else None
                      for c in table.calls)
    shown = [(s, c) for s, c in zip(stand_ins, table.calls) if s is not None]
    standing = dataclasses.replace(exp, stages=tuple(s for s, _ in shown))
    for name in names(exp.views.show):
        if name in VIEWS and not any(VIEWS[name] in selected_views(standing, s, c.output_shape) for s, c in shown):
            raise ConfigError(f"view {name!r} applies to no call of model {table.model} ({VIEWS[name].help})")
    check_views(standing)  # the names, and 'none' alone
    for s, c in shown:
        check_zoom(standing, s, c.output_shape, c.input_shape[0] if c.input_shape else 1)
    num_images = spec.num_images(exp.data)
    for _, c in shown:
        check_batch_memory(exp.data.batch_size, num_images, c.output_shape)
    views = tuple(
        () if s is None else tuple(v for v in selected_views(standing, s, c.output_shape) if v.when == "step" or c.shared_with is None)
        for s, c in zip(stand_ins, table.calls)
    )
    return ModelPlan(exp, model, device, input_shape, table, stand_ins, views, num_images,
                     count_steps(num_images, exp.data.batch_size, exp.data.max_batches))


def logged_tags(mp: ModelPlan) -> list[str]:
    """The image tags a model's run logs: ``input``, each call's picture in call order, then the views'."""
    return ["input", *(stage_tag(c.tag, tag) for c, views in zip(mp.calls, mp.views) for v in views for tag in v.image_tags)]


def log_step(
    writer: RunWriter, mp: ModelPlan, x: torch.Tensor, recorded: list[Recorded], step: int,
    labels: torch.Tensor | None = None, classes: tuple[str, ...] = (),
) -> None:
    """One batch: the input ``x`` (floats in [0, 1]) and what each call gave, with its views."""
    if len(recorded) != len(mp.calls) or any(r.module is not c.module for r, c in zip(recorded, mp.calls)):
        raise ConfigError(
            f"model {mp.table.model} called {len(recorded)} module(s) on this batch, but {len(mp.calls)} on the blank images "
            "it was planned with (or others, in another order); convlab shows a forward pass that calls the same modules "
            "in the same order for every batch"
        )
    writer.images("input", x, step)
    last = len(mp.calls) - 1
    for i, (c, r, stage, views) in enumerate(zip(mp.calls, recorded, mp.stand_ins, mp.views)):
        if stage is None:
            continue
        y = r.output if r.output.is_floating_point() else r.output.float()
        mean, std = torch.stack([y.mean(), y.std()]).tolist()
        writer.scalar(f"{c.tag}/mean", mean, step)
        writer.scalar(f"{c.tag}/std", std, step)
        seen = StageOutput(stage, c.module, r.input, y, mp.exp.views, prefix=c.tag, max_channels=mp.exp.stack.max_channels,
                           labels=labels, classes=classes, last=i == last)
        for view in views:
            if view.when == "step":
                for method, tag, value in records(view, seen):
                    getattr(writer, method)(tag, value, step)


def log_once(writer: RunWriter, mp: ModelPlan) -> None:
    """The views that do not change during a run (a Conv2d's kernels), at step 0, at each module's first call."""
    for c, stage, views in zip(mp.calls, mp.stand_ins, mp.views):
        seen = StageOutput(stage, c.module, None, None, mp.exp.views, prefix=c.tag)
        for view in views:
            if view.when == "once":
                for method, tag, value in records(view, seen):
                    getattr(writer, method)(tag, value, 0)


class ModelLog(RunLog):
    """One model's run being logged: as :class:`pipeline.RunLog`, with the model's calls for stages."""

    def __init__(self, mp: ModelPlan, images: datasets.ImageSet, num_steps: int):
        exp = mp.exp
        self.plan = mp  # type: ignore[assignment]
        self.hparams_first = ()
        name = exp.run.run_name or default_run_name(exp, model=mp.table.model)
        self.run_dir = create_run_dir(exp.run.logdir, name, explicit=exp.run.run_name is not None)
        self.writer = RunWriter(self.run_dir)
        self.summary = first_summary(exp, self.run_dir, images, num_steps, mp.device, mp.input_shape, mp.output_shape,
                                     logged_tags(mp))
        self.summary["model"] = mp.table.model
        self._data_text = images.describe()
        self._classes = images.classes

    def start(self) -> None:
        """config.toml, summary.json, the texts, hparams and the views logged once."""
        mp, writer = self.plan, self.writer
        config = config_text(mp)
        write_config(self.run_dir, config)
        write_summary(self.run_dir, self.summary)
        writer.text("config", _markdown_block(config))
        writer.text("layer", _markdown_block(mp.describe()))
        writer.text("data", _markdown_block(self._data_text))
        last = mp.calls[-1].tag
        writer.hparams({**hparams(mp.exp), "model": mp.table.model}, [f"{last}/mean", f"{last}/std"])
        log_once(writer, mp)

    def step(self, x: torch.Tensor, recorded: list[Recorded], step: int, labels: torch.Tensor | None = None) -> None:  # type: ignore[override]
        log_step(self.writer, self.plan, x, recorded, step, labels=labels, classes=self._classes)
        if step == 0:
            self.summary["first_step_time"] = round(time.time(), 3)
        self.summary["steps"] = step + 1


class ModelSnapshots(Snapshots):
    """What a training run shows of a Python model at each snapshot: as a stack's (:class:`Snapshots`),
    with its calls for stages: every call's view of the probe images, each Conv2d's kernels."""

    def __init__(self, mp: ModelPlan, writer: RunWriter, eval_x: torch.Tensor, eval_y: torch.Tensor, device: str):
        self.plan, self.writer = mp, writer  # type: ignore[assignment]
        self.probe = eval_x[: mp.exp.views.images].to(device).float().div_(255)
        self.probe_labels = eval_y[: mp.exp.views.images]
        self.kernels = [c for c, views in zip(mp.calls, mp.views) if any(v.name == "kernels" for v in views)]  # type: ignore[misc]
        self.limits: dict[str, float] = {}
        self.initial: dict[str, torch.Tensor] = {}
        self.beside = BesideStepZero(writer, keep={"input"})

    def log_views(self, step: int, classes: tuple[str, ...]) -> None:
        """Every call's view of the probe images, beside its view at step 0."""
        mp = self.plan
        with evaluating(mp.model):
            _, recorded = run_model(mp.model, self.probe)
        log_step(self.beside, mp, self.probe, recorded, step, labels=self.probe_labels, classes=classes)


def config_text(mp: ModelPlan) -> str:
    """config.toml of a model's run: its settings, and what the model was (no file can rebuild it)."""
    return (f"# model: {mp.table.model}, a Python torch.nn.Module (model=); its calls are in the run's 'layer' text.\n"
            "# This file holds the run's other settings.\n" + dump_toml(mp.exp))


@closes_on_signals
def run(exp: Experiment, model: nn.Module, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run ``model`` over the experiment's data and log every call; returns the run's summary."""
    reporter = reporter or SilentReporter()
    mp = plan_model(exp, model)
    check_logdir(exp.run.logdir, exp.run.run_name)
    images = datasets.load(exp.data, exp.run.seed)
    num_steps = count_steps(len(images), exp.data.batch_size, exp.data.max_batches)
    for note in images.notes:
        reporter.info(note)
    log = ModelLog(mp, images, num_steps)
    try:
        log.start()
        reporter.info(mp.describe())
        reporter.info(f"run: {log.run_dir}")
        started = time.perf_counter()
        bs = exp.data.batch_size
        with batch_threads(mp.device), evaluating(model), reporter.progress(num_steps, f"{exp.command} {images.name}/{images.split}") as advance:
            for step in range(num_steps):
                x = images.batch(step * bs, (step + 1) * bs).to(mp.device).float().div_(255)
                _, recorded = run_model(model, x)
                log.step(x, recorded, step, labels=images.batch_labels(step * bs, (step + 1) * bs))
                advance()
        return log.complete(time.perf_counter() - started)
    except BaseException as exc:
        error = memory_error(exc, mp)
        log.stopped(error or exc)
        if error is not None:
            raise error from None
        raise
