"""``convlab top``: for each channel of the chosen map stages, the k dataset patches that excite
it most, in one streaming pass over the data.

Planned before any data is loaded (:func:`plan_top`: the stack's own pre-flight, then which
stages and channels, each stage's input window); checked once the labels are in hand (the
class, k against the images counted); written only after the pass, so a run that fails or is
stopped leaves nothing behind. :func:`log_top` is what ``convlab train --top`` logs at the end of
training, into the training run. torch is imported inside the functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import ConfigError, Experiment, Interrupted, resolve
from convlab.layers import ShapeError
from convlab.modules import call_text, stage_tag
from convlab.stack import InputWindow, input_window
from convlab.top.patches import ImageStore, crop, patch_picture, patch_zoom
from convlab.top.running import ChannelTops, Hit
from convlab.top.sheet import SheetRow, draw_sheet
from convlab.trained import run_settings

if TYPE_CHECKING:
    import numpy as np
    import torch

    from convlab.data import ImageSet
    from convlab.pipeline import Reporter
    from convlab.planning import Plan
    from convlab.writer import RunWriter

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
                    input_window(stages, i)
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
        input_window(stages, i)  # a ShapeError when its outputs read the whole input
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
        chosen.append(TopStage(i, stage_tag(i, cfg, count), call_text(cfg), (c, h, w), input_window(exp.stages, i),
                               channels, active, stage_tag(active, exp.stages[active - 1], count)))
    return TopPlan(p, tuple(chosen), exp.top.k, num_images, -(-num_images // exp.data.batch_size))


def _check_k(tp: TopPlan, counted: int, what: str) -> None:
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
            f"  {s.tag} {s.call}: {s.shape[0]} channel(s), shown {_ranges(s.channels)}; receptive field "
            f"{s.window.field[0]}x{s.window.field[1]}, jump {s.window.jump[0]}x{s.window.jump[1]}; dead: never above 0 "
            f"after {dead}"
        )
    return "\n".join(lines)


def _ranges(values: Sequence[int]) -> str:
    if list(values) == list(range(values[0], values[0] + len(values))) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


# ----------------------------------------------------------------------------- the pass


@dataclass
class StageTops:
    """One stage's outcome: per shown channel its top-k; every channel's mean and dead fraction."""

    stage: TopStage
    hits: list[list[Hit]]
    means: list[float]
    dead_fractions: list[float]

    @property
    def dead_channels(self) -> list[int]:
        """Channels never above 0 (after their activation) on any image counted."""
        return [c for c, f in enumerate(self.dead_fractions) if f >= 1.0]


@dataclass
class TopResult:
    plan: TopPlan
    stages: list[StageTops]
    images: int  # counted
    source: str  # "cifar10/test" (", class cat")
    store: ImageStore

    def ranked(self) -> list[StageTops]:
        """Stages by their number of dead channels, then by their mean dead fraction, most first."""
        return sorted(self.stages, key=lambda s: (-len(s.dead_channels), -sum(s.dead_fractions) / len(s.dead_fractions),
                                                   s.stage.index))

    def sheet(self, st: StageTops) -> np.ndarray:
        """The stage's picture: a row per shown channel, its top-k patches, each captioned."""
        s = st.stage
        zoom = patch_zoom(s.window.field)
        rows = []
        for channel, hits in zip(s.channels, st.hits):
            tiles = [patch_picture(crop(self.store[h.image], s.window, h.y, h.x), zoom) for h in hits]
            dead = channel in st.dead_channels
            header = [f"channel {channel}", f"mean {_num(st.means[channel])}",
                      f"dead {st.dead_fractions[channel]:.0%}" + (" DEAD" if dead else "")]
            rows.append(SheetRow(header, tiles, [f"#{h.image} {_num(h.value)}" for h in hits], dead=dead))
        field = s.window.field
        title = [
            f"{s.tag} {s.call}: each channel's top {self.plan.k} of {self.images} images ({self.source})",
            f"patch = receptive field {field[0]}x{field[1]} px (jump {s.window.jump[0]}), upscaled x{zoom}; "
            "checkerboard = padding; caption: #image index, value",
            f"dead = never above 0 after {'itself' if s.active == s.index else s.active_tag} on that image; "
            f"{len(st.dead_channels)} of {s.shape[0]} channels dead on every image",
        ]
        return draw_sheet(title, rows, (field[0] * zoom, field[1] * zoom))

    def table(self, st: StageTops) -> list[tuple[str, str]]:
        """The stage's channels as ``(style, text)`` lines: 'dead' rows are marked."""
        s = st.stage
        dead = st.dead_channels
        listed = f" ({_ranges(dead) if len(dead) <= 12 else ', '.join(map(str, dead[:12])) + ', ...'})" if dead else ""
        lines = [("bold", f"{s.tag} {s.call}: receptive field {s.window.field[0]}x{s.window.field[1]}, jump "
                          f"{s.window.jump[0]}; dead channels {len(dead)} of {s.shape[0]}{listed}")]
        head = f"{'channel':>7s}  {'mean':>9s}  {'dead':>5s}  {'top value':>9s}  top images"
        lines.append(("", head))
        for channel, hits in zip(s.channels, st.hits):
            mark = "dead" if channel in dead else ""
            top = _num(hits[0].value) if hits else "-"
            images = " ".join(str(h.image) for h in hits)
            text = f"{channel:7d}  {_num(st.means[channel]):>9s}  {st.dead_fractions[channel]:5.0%}  {top:>9s}  {images}"
            lines.append(("red" if mark else "", f"{text}  {mark}".rstrip()))
        return lines

    def ranking(self) -> list[tuple[str, str]]:
        lines = [("bold", f"stages ranked by dead channels (never above 0 after their activation on any of the "
                          f"{self.images} images)")]
        ranked = self.ranked()
        width = max(len(s.stage.tag) for s in self.stages)
        counts = [f"{len(st.dead_channels)} of {st.stage.shape[0]} dead" for st in ranked]
        wide = max(map(len, counts))
        for rank, (st, count) in enumerate(zip(ranked, counts), 1):
            mean = sum(st.dead_fractions) / len(st.dead_fractions)
            lines.append(("red" if st.dead_channels else "",
                          f"{rank:4d}  {st.stage.tag:<{width}s}  {count:<{wide}s}  mean dead fraction {mean:5.1%}  {st.stage.call}"))
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "source": self.source,
            "k": self.plan.k,
            "stages": [
                {
                    "stage": st.stage.index, "tag": st.stage.tag, "layer": st.stage.call, "shape": list(st.stage.shape),
                    "receptive_field": list(st.stage.window.field), "jump": list(st.stage.window.jump),
                    "window_start": list(st.stage.window.start), "dead_after": st.stage.active_tag,
                    "dead_channels": st.dead_channels,
                    "channels": [
                        {"channel": c, "mean": _finite(st.means[c]), "dead_fraction": st.dead_fractions[c],
                         "top": [{"image": h.image, "y": h.y, "x": h.x, "value": _finite(h.value)} for h in hits]}
                        for c, hits in zip(st.stage.channels, st.hits)
                    ],
                    "mean": [_finite(m) for m in st.means],
                    "dead_fraction": st.dead_fractions,
                }
                for st in self.stages
            ],
        }


def _num(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: those are null."""
    return value if value == value and abs(value) != float("inf") else None


class TopPass:
    """The running top-k of every chosen stage, fed one batch at a time, in dataset order."""

    def __init__(self, tp: TopPlan, device: str):
        self.plan = tp
        self.tops = [ChannelTops(s.channels, tp.k, s.shape[0], s.shape[2], device) for s in tp.stages]
        self.store = ImageStore()
        self.counted = 0

    def update(self, images: torch.Tensor, outputs: Sequence[torch.Tensor], index: torch.Tensor | int) -> None:
        """``images``: the batch as loaded (uint8, on the CPU); ``outputs[i]``: stage i+1's output (up to
        the plan's last); ``index``: the first image's dataset index, or each image's."""
        import torch

        entered = []
        for s, tops in zip(self.plan.stages, self.tops):
            active = None if s.active == s.index else outputs[s.active - 1]
            entered.append(tops.update(outputs[s.index - 1], index, active))
        self.counted += len(images)
        new = torch.cat(entered).unique().tolist() if entered else []
        numbers = index.tolist() if isinstance(index, torch.Tensor) else list(range(index, index + len(images)))
        for j in new:
            self.store.add(numbers[j], images[j].numpy())
        self.store.keep_only(i for tops in self.tops for i in tops.images.flatten().tolist())

    def result(self, source: str) -> TopResult:
        stages = [StageTops(s, t.hits(), t.means(), t.dead_fractions()) for s, t in zip(self.plan.stages, self.tops)]
        return TopResult(self.plan, stages, self.counted, source, self.store)


def forward(modules: Sequence[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Every stage's output for one batch, in order, up to the last module given."""
    import torch

    outputs = []
    with torch.inference_mode():
        for module in modules:
            x = module(x)
            outputs.append(x)
    return outputs


def class_index(images: ImageSet, name: str | None) -> int | None:
    if name is None:
        return None
    if not images.classes:
        raise ConfigError(f"--class {name}: the images of {images.name} have no classes")
    names = [c.lower() for c in images.classes]
    if name.lower() not in names:
        raise ConfigError(f"--class {name}: {images.name} has no class of that name; its classes: {', '.join(images.classes)}")
    return names.index(name.lower())


def top_pass(
    tp: TopPlan, images: ImageSet, advance: Callable[..., None] | None = None, *, count: int | None = None,
) -> TopResult:
    """One streaming pass over the first ``count`` images (the plan's by default) of ``images``."""

    p, exp = tp.stack, tp.exp
    device, bs = p.device, exp.data.batch_size
    count = tp.num_images if count is None else count
    wanted = class_index(images, exp.top.class_name)
    labels = images.labels[:count]
    counted = count if wanted is None else int((labels == wanted).sum())
    what = f"{exp.top.class_name} images of {count}" if wanted is not None else f"of {images.name}/{images.split}"
    _check_k(tp, counted, what)
    layout = p.memory_format
    modules = [s.module.to(device, memory_format=layout).eval() for s in p.stages[: tp.last]]
    top = TopPass(tp, device)
    for start in range(0, count, bs):
        stop = min(start + bs, count)
        batch = images.batch(start, stop)
        index: torch.Tensor | int = start
        if wanted is not None:
            keep = (labels[start:stop] == wanted).nonzero().flatten()
            if len(keep) == 0:
                if advance is not None:
                    advance()
                continue
            batch, index = batch[keep], keep + start
        x = p.model_input(batch.to(device).float().div_(255)).contiguous(memory_format=layout)
        top.update(batch, forward(modules, x), index)
        if advance is not None:
            advance()
    source = f"{images.name}/{images.split}" + (f", class {images.classes[wanted]}" if wanted is not None else "")
    return top.result(source)


def top_of_images(p: Plan, images: ImageSet) -> TopResult:
    """The top patches of ``p``'s network (every map stage, the first max_channels channels, k 9, or as
    many as there are images) over every image of ``images``: what ``convlab train --top`` logs."""
    import dataclasses

    from convlab.config import TopConfig

    exp = dataclasses.replace(p.exp, command="top", top=TopConfig(k=min(TopConfig.k, len(images))))
    tp = top_plan(dataclasses.replace(p, exp=exp), len(images))
    return top_pass(tp, images)


# ----------------------------------------------------------------------------- outputs


def _block(text: str) -> str:
    """Text as TensorBoard's markdown shows it verbatim: indented four spaces."""
    return "\n".join("    " + line for line in text.splitlines())


def plain(lines: Sequence[tuple[str, str]]) -> str:
    return "\n".join(text for _, text in lines)


def log_top(writer: RunWriter, result: TopResult, step: int) -> list[str]:
    """Each stage's sheet (``NN-kind/top``) and channel table (text, same tag), and the stages
    ranked by dead channels (text ``top``), at ``step``; returns the image tags."""
    tags = []
    for st in result.stages:
        tag = f"{st.stage.tag}/top"
        writer.image(tag, result.sheet(st), step)
        writer.text(tag, _block(plain(result.table(st))), step)
        tags.append(tag)
    writer.text("top", _block(plain(result.ranking())), step)
    return tags


def check_out_dir(out: Path | None, tp: TopPlan) -> list[Path]:
    """The PNG sheets ``--out DIR`` will hold; an error, before any data is read, where they cannot be written."""
    if out is None:
        return []
    import os

    from convlab.config import check_path

    check_path(str(out), "--out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory for the PNG sheets")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {existing}; choose another directory")
    paths = [out / f"{s.tag}-top.png" for s in tp.stages]
    taken = [p for p in paths if p.exists()]
    if taken:
        raise ConfigError(f"--out {out} already holds {taken[0].name}, which is never overwritten; choose another directory")
    return paths


def write_sheets(result: TopResult, paths: Sequence[Path]) -> None:
    """Each stage's sheet as a PNG, created exclusively (an existing file is never replaced)."""
    from PIL import Image

    if not paths:
        return
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for st, path in zip(result.stages, paths):
        with path.open("xb") as f:
            Image.fromarray(result.sheet(st)).save(f, format="PNG")


def run_top(exp: Experiment, reporter: Reporter, *, out: Path | None = None) -> tuple[dict[str, Any], TopResult]:
    """The pass, then the run (TensorBoard, config.toml, summary.json) and the PNG sheets; returns the
    summary (also saved as summary.json) and the result."""
    import torch

    from convlab import data as datasets
    from convlab.config import dump_toml
    from convlab.interrupts import stop_signals_raise
    from convlab.planning import describe
    from convlab.runs import check_logdir, create_run_dir, default_run_name, write_config, write_summary
    from convlab.writer import RunWriter

    tp = plan_top(exp)
    check_logdir(exp.run.logdir, exp.run.run_name)
    paths = check_out_dir(out, tp)
    images = datasets.load(exp.data, exp.run.seed)
    for note in images.notes:
        reporter.info(note)
    count = min(len(images), tp.num_images)
    threads = torch.get_num_threads()
    started = time.perf_counter()
    steps, done = -(-count // exp.data.batch_size), 0
    try:
        if tp.stack.device == "cpu":
            torch.set_num_threads(1)  # as pipeline.run: a batch gains nothing from intra-op threads here
        with stop_signals_raise(), reporter.progress(steps, f"top {images.name}/{images.split}") as advance:

            def step(status: str | None = None) -> None:
                nonlocal done
                done += 1
                advance(status)

            result = top_pass(tp, images, step, count=count)
    except Interrupted as exc:
        exc.detail = f"during the pass, after {done} of {steps} batch(es); nothing was written"
        raise
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started

    run_dir = create_run_dir(exp.run.logdir, exp.run.run_name or default_run_name(exp), explicit=exp.run.run_name is not None)
    writer = RunWriter(run_dir)
    summary: dict[str, Any] = {
        "status": "complete", "command": "top", "run_dir": str(run_dir), "dataset": images.name, "split": images.split,
        "images": result.images, "k": tp.k, "seconds": round(seconds, 3), "device": tp.stack.device,
        "stages": {st.stage.tag: {"dead_channels": len(st.dead_channels), "channels": st.stage.shape[0]} for st in result.stages},
        "sheets": [str(p) for p in paths],
    }
    try:
        write_config(run_dir, dump_toml(exp))
        writer.text("config", _block(dump_toml(exp)))
        writer.text("layer", _block(describe(tp.stack)))
        writer.text("data", _block(images.describe()))
        summary["tags"] = log_top(writer, result, 0)
        writer.close()
        write_summary(run_dir, summary)
    except BaseException:
        writer.discard()  # nothing half-written is left
        raise
    write_sheets(result, paths)
    return summary, result


def result_json(summary: dict[str, Any], result: TopResult) -> str:
    return json.dumps({"run_dir": summary["run_dir"], "sheets": summary["sheets"], **result.to_json()}, indent=2)
