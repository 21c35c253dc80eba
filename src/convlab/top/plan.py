"""What ``convlab top`` will show, decided before any data is loaded: the network (a training
run's with ``--run``, or as ``convlab stack`` takes it), which stages and channels, each stage's input
window (:func:`convlab.stack.input_window`) and the stage whose output says a channel is dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import resolve
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.layers import ShapeError
from convlab.modules import call_text, stage_tag
from convlab.stack import InputWindow, input_window
from convlab.trained import run_settings

if TYPE_CHECKING:
    from convlab.planning import Plan

# A channel is dead on an image when none of its values is above 0 once its activation has run:
# the first of these after the stage, past stages that keep each channel's sign where it was
# (in eval mode) or its own values when it is one, or when a window layer comes first.
ACTIVATION_KINDS = ("relu", "leakyrelu", "gelu", "elu", "sigmoid", "tanh")
PASS_THROUGH_KINDS = ("batchnorm2d", "dropout", "dropout2d", "identity")
# Where --run's settings cannot be mixed with another source of the network.
NETWORK_KEYS = {"layers": "LAYER arguments", "weights": "--weights", "pretrained": "--pretrained", "upto": "--upto"}


def resolve_top(overrides: dict[str, dict[str, Any]], config: Path | None, run: Path | None) -> Experiment:
    """The experiment of ``convlab top``: defaults < ``config`` (or the training run ``run``) < flags."""
    if run is None:
        try:
            return resolve("top", overrides, config)
        except ConfigError as exc:
            if config is None or "is a 'train' experiment" not in str(exc):
                raise
            raise ConfigError(f"{config} is a training run's experiment; for the network that run trained, give its "
                              f"directory: convlab top --run {config.parent}") from None
    if config is not None:
        raise ConfigError("--run and --config both give the network; use one of them")
    given = [flag for key, flag in NETWORK_KEYS.items() if overrides.get("stack", {}).get(key) is not None]
    if given:
        raise ConfigError(f"--run {run} gives the network (its layers and model.pt); leave out {', '.join(given)}")
    settings = run_settings(run)
    merged = {section: dict(values) for section, values in overrides.items()}
    for section, values in settings.items():
        mine = merged.setdefault(section, {})
        mine.update({k: v for k, v in values.items() if v is not None and mine.get(k) is None})
    return resolve("top", merged)


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TopStage:
    """One chosen stage: where it is, what its outputs read of the input, which channels are shown."""

    index: int  # counted from 1
    tag: str
    call: str
    shape: tuple[int, int, int]  # (C, H, W) per image
    window: InputWindow
    channels: tuple[int, ...]
    active: int  # the stage whose output says whether a channel is dead (its activation, or itself)
    active_tag: str


@dataclass(frozen=True)
class TopPlan:
    stack: Plan  # the stages' modules, weights loaded, device
    stages: tuple[TopStage, ...]
    k: int
    num_images: int  # in the pass, before any --class filter
    num_steps: int

    @property
    def exp(self) -> Experiment:
        return self.stack.exp

    @property
    def last(self) -> int:
        """The last stage the pass has to run."""
        return max(max(s.index, s.active) for s in self.stages)


def activation_stage(stages: Sequence[Any], index: int) -> int:
    """The stage (1-based) whose output tells whether stage ``index``'s channels are dead."""
    if stages[index - 1].kind in ACTIVATION_KINDS:
        return index
    for i in range(index + 1, len(stages) + 1):
        kind = stages[i - 1].kind
        if kind in ACTIVATION_KINDS:
            return i
        if kind not in PASS_THROUGH_KINDS:
            break
    return index


def _choose_stages(exp: Experiment, shapes: Sequence[tuple[int, ...]]) -> list[int]:
    stages, count = exp.stages, len(exp.stages)
    if exp.top.stages is None:
        chosen = []
        for i in range(1, count + 1):
            if len(shapes[i]) == 3:
                try:
                    input_window(stages, shapes[0], i)
                except ShapeError:
                    continue
                chosen.append(i)
        if not chosen:
            raise ConfigError("no stage of this stack gives a map (C, H, W) whose values read a window of the image; "
                              "top patches need one (e.g. a Conv2d)")
        return chosen
    maps = [str(i) for i in range(1, count + 1) if len(shapes[i]) == 3]
    for i in exp.top.stages:
        if i > count:
            raise ConfigError(f"--stages {i}: the stack has {count} stage(s) (1..{count})")
        if len(shapes[i]) != 3:
            raise ConfigError(
                f"--stages {i}: stage {i} {call_text(stages[i - 1])} gives {shapes[i][0]} features per image, not a map "
                f"(C, H, W): its values have no position to crop a patch at; map stages: {', '.join(maps) or 'none'}"
            )
        input_window(stages, shapes[0], i)  # a ShapeError when its outputs have no one input window
    return sorted(exp.top.stages)


def plan_top(exp: Experiment) -> TopPlan:
    """Every check that needs no data: the stack's own pre-flight, the stages, the channels."""
    from convlab import planning

    p = planning.plan(exp)
    return top_plan(p, min(p.num_images, p.num_steps * exp.data.batch_size))


def top_plan(p: Plan, num_images: int) -> TopPlan:
    """The top plan of a planned stack (``p.exp``'s [top] says which stages and channels) over ``num_images``."""
    exp = p.exp
    shapes = [p.input_shape, *(s.output_shape for s in p.stages)]
    count = len(exp.stages)
    chosen = []
    for i in _choose_stages(exp, shapes):
        c, h, w = shapes[i]
        cfg = exp.stages[i - 1]
        if exp.top.channels is None:
            channels = tuple(range(min(c, exp.stack.max_channels)))
        else:
            missing = [ch for ch in exp.top.channels if ch >= c]
            if missing:
                raise ConfigError(
                    f"--channels {missing[0]}: stage {i} {call_text(cfg)} has {c} channel(s) (0..{c - 1}); "
                    "give channels that every chosen stage has (or choose --stages)"
                )
            channels = tuple(exp.top.channels)
        active = activation_stage(exp.stages, i)
        chosen.append(TopStage(i, stage_tag(i, cfg, count), call_text(cfg), (c, h, w), input_window(exp.stages, p.input_shape, i),
                               channels, active, stage_tag(active, exp.stages[active - 1], count)))
    return TopPlan(p, tuple(chosen), exp.top.k, num_images, -(-num_images // exp.data.batch_size))


def check_k(tp: TopPlan, counted: int, what: str) -> None:
    if tp.k > counted:
        raise ConfigError(
            f"--k {tp.k}: the pass counts {counted} image(s) ({what}), and each image counts at most once per "
            f"channel; use --k {max(counted, 1)} or less" + ("" if counted else ", or other data")
        )


def describe_top(tp: TopPlan) -> str:
    exp = tp.exp
    where = f"{exp.data.dataset}/{exp.data.split}" + (f", class {exp.top.class_name}" if exp.top.class_name else "")
    lines = [f"top {tp.k} patches per channel over {tp.num_images} image(s) of {where}, each image counted at most once "
             "per channel (its largest value there); ties go to the image read first"]
    for s in tp.stages:
        dead = "itself" if s.active == s.index else s.active_tag
        lines.append(
            f"  {s.tag} {s.call}: {s.shape[0]} channel(s), shown {ranges(s.channels)}; receptive field "
            f"{s.window.field[0]}x{s.window.field[1]}, jump {s.window.jump[0]}x{s.window.jump[1]}; dead: never above 0 "
            f"after {dead}"
        )
    return "\n".join(lines)


def ranges(values: Sequence[int]) -> str:
    """``0..7`` for a run of three or more consecutive numbers, else the numbers listed."""
    if list(values) == list(range(values[0], values[0] + len(values))) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))
