"""What a run will do, decided before any data is loaded or anything written: the shapes of
every stage, the real torch modules, the device, and every check against the data's shape and
this machine (:func:`plan`, the single pre-flight), and that plan described as text.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from convlab import data as datasets
from convlab.errors import ConfigError, OutOfMemory, allocation_failed
from convlab.experiment import Experiment
from convlab.layers import (
    Shape,
    build_layer,
    check_batch_memory,
    check_weights,
    describe_arithmetic,
    resolved_in_channels,
)
from convlab.modules import call_text, input_tag, stage_tag
from convlab.stack import explain_stack, output_shapes
from convlab.stages import ConvConfig, StageConfig
from convlab.values import names
from convlab.views import check_classes_view, check_stack_views, check_views, check_zoom, is_activation_lesson, output_tag
from convlab.weights import stack_weights


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
    # The first stage that normalises over the batch and needs 2+ images in it (batch_statistics_stage).
    batch_stats: str | None = None

    @property
    def min_batch(self) -> int:
        return 2 if self.batch_stats else 1

    @property
    def output_shape(self) -> Shape:
        return self.stages[-1].output_shape

    @property
    def input_tag(self) -> str:
        """The images' tag: the lesson's ``input``, or in a stack stage 0's (``00-input``)."""
        return "input" if self.stages[0].prefix is None else input_tag(len(self.stages))

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the first stage takes: the images, normalised where pretrained weights expect it."""
        if self.normalize is None:
            return x
        mean, std = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in self.normalize)
        return (x - mean) / std

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last for a conv stack on the CPU: oneDNN's own layout for Conv2d and the pools,
        the same arithmetic in another order (a CIFAR10 training step of the lesson's model took
        50 ms against 62-75 ms on one thread, measured; its MaxPool2d(2) alone, forward, 1.0 ms
        against 14.7 ms a batch); the losses agree to float rounding."""
        convs = any(isinstance(s.cfg, ConvConfig) for s in self.stages)
        return torch.channels_last if convs and self.device == "cpu" else torch.contiguous_format

    def batch_input(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 batch as the model takes it: on the device, floats in [0, 1], normalised if
        asked, in the model's memory format."""
        return self.model_input(x.to(self.device).float().div_(255)).contiguous(memory_format=self.memory_format)

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


def count_steps(num_images: int, batch_size: int, max_batches: int | None, min_batch: int = 1) -> int:
    """Steps over ``num_images`` in batches; a last batch smaller than ``min_batch`` is left out."""
    steps = math.ceil(num_images / batch_size)
    if 0 < num_images % batch_size < min_batch:
        steps -= 1
    return min(steps, max_batches) if max_batches is not None else steps


def batch_statistics_stage(stages: tuple[StagePlan, ...], training: bool) -> str | None:
    """The first stage that normalises each channel over the batch and gets one value per channel
    from each image (a 1x1 map), so a batch of one image gives it one value, which torch refuses
    ("Expected more than 1 value per channel"): every BatchNorm2d while training, one without
    running statistics always. None if there is none."""
    for i, s in enumerate(stages, 1):
        uses_batch = s.cfg.kind == "batchnorm2d" and (training or not s.cfg.track_running_stats)
        if uses_batch and math.prod(s.input_shape[1:]) == 1:
            return f"stage {i} {call_text(s.cfg)}"
    return None


def one_value_per_channel(stage: str, what: str, fix: str) -> ConfigError:
    return ConfigError(
        f"{stage} normalises each channel over the batch, but its input is 1x1 per image, so {what} gives it one value "
        f"per channel (torch needs more than one); {fix}"
    )


def last_batch_note(stage: str | None, num_images: int, batch_size: int, steps: int) -> str | None:
    """Said when a run leaves out a last batch of one image (see :func:`count_steps`)."""
    if stage is None or num_images % batch_size != 1 or steps * batch_size < num_images - 1:
        return None
    return (f"note: the last batch would hold 1 image, one value per channel for {stage}, which normalises over the "
            f"batch: it is left out ({num_images - 1:,} of {num_images:,} images); a --batch-size that leaves 0 or 2+ keeps it")


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
        # Asked by name in a stack (a folder's classes are counted by a scan); train and predict check
        # the last stage against the classes themselves, in their own words.
        if exp.command == "stack" and "classes" in names(exp.views.show):
            check_classes_view(exp, shapes[-1], spec.class_count(exp.data))
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
    batch_stats = batch_statistics_stage(stages, training=False)
    if batch_stats is not None and min(exp.data.batch_size, num_images) == 1:
        raise one_value_per_channel(batch_stats, "a batch of 1 image", "use --batch-size 2 or more")
    return Plan(
        exp=exp,
        device=device,
        input_shape=input_shape,
        stages=stages,
        num_images=num_images,
        num_steps=count_steps(num_images, exp.data.batch_size, exp.data.max_batches, 2 if batch_stats else 1),
        notes=tuple(notes),
        normalize=normalize,
        batch_stats=batch_stats,
    )


@contextlib.contextmanager
def batch_threads(device: str) -> Iterator[None]:
    """A run's batches on the CPU with one intra-op thread, restored after. A batch is too small to
    gain from more, and their spin-waiting competes with the writer's PNG encoders (and predict's
    reader thread): on 2 busy cores, 2 threads made runs several times slower (bench/bench.py)."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def memory_error(exc: BaseException, p: Any) -> OutOfMemory | None:
    """The one line for an allocation that failed mid-run (exc: the CPU allocator's error or
    torch.OutOfMemoryError), with what it needed and what to lower; None for any other error.
    ``p``: a stack's Plan, or a Python model's (modelrun.ModelPlan), whose calls are its stages."""
    asked = allocation_failed(exc)
    if asked is None:
        return None
    where = "the GPU" if p.device.startswith("cuda") else "this machine"
    batch = p.exp.data.batch_size
    stages = [(f"stage {i} {call_text(s.cfg)}", s.output_shape) for i, s in enumerate(getattr(p, "stages", ()), 1)]
    stages += [(f"call {c.tag} {type(c.module).__name__}", c.output_shape) for c in getattr(p, "calls", ()) if c.output_shape]
    widest, shape = max(stages, key=lambda s: math.prod(s[1]), default=("", ()))
    size = math.prod(shape) * batch * 4 / 2**30
    what = f"; its widest stage, {widest}, gives {tuple(shape)} per image, {size:,.2f} GiB a batch" if widest else ""
    return OutOfMemory(
        f"out of memory on {p.device}: a step needed {asked + ' ' if asked else ''}more than {where} could give "
        f"(a batch of {batch} image(s){what}); lower --batch-size, or that stage's channels"
    )


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
