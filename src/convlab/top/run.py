"""``convlab top``: for each channel of the chosen map stages, the k dataset patches that excite
it most, in one streaming pass over the data.

Planned before any data is loaded (:mod:`convlab.top.plan`); checked once the labels are in hand
(the class, k against the images counted); written only after the pass, so a run that fails or is
stopped leaves nothing behind. :func:`log_top` is what ``convlab train --top`` logs at the end of
training, into the training run. torch is imported inside the functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.errors import ConfigError, Interrupted
from convlab.experiment import Experiment
from convlab.top.patches import ImageStore
from convlab.top.plan import TopPlan, check_k, plan_top, top_plan
from convlab.top.result import StageTops, TopResult
from convlab.top.running import ChannelTops

if TYPE_CHECKING:
    import torch

    from convlab.data import ImageSet
    from convlab.pipeline import Reporter
    from convlab.planning import Plan
    from convlab.writer import RunWriter


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
        new = torch.cat(entered).unique().tolist()
        if not new:  # no list changed: the images kept are still the ones they point at
            return
        numbers = index.tolist() if isinstance(index, torch.Tensor) else list(range(index, index + len(images)))
        for j in new:
            self.store.add(numbers[j], images[j].numpy())
        self.store.keep_only(i for tops in self.tops for i in tops.images.flatten().tolist())

    def result(self, source: str) -> TopResult:
        stages = [StageTops(s, t.hits(), t.means(), t.dead_fractions()) for s, t in zip(self.plan.stages, self.tops)]
        return TopResult(self.plan, stages, self.counted, source, self.store)


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
    from convlab.pipeline import forward

    p, exp = tp.stack, tp.exp
    device, bs = p.device, exp.data.batch_size
    count = tp.num_images if count is None else count
    wanted = class_index(images, exp.top.class_name)
    labels = images.labels[:count]
    counted = count if wanted is None else int((labels == wanted).sum())
    what = f"{exp.top.class_name} images of {count}" if wanted is not None else f"of {images.name}/{images.split}"
    check_k(tp, counted, what)
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
        x = p.batch_input(batch)
        top.update(batch, forward(modules, x), index)
        if advance is not None:
            advance()
    source = f"{images.name}/{images.split}" + (f", class {images.classes[wanted]}" if wanted is not None else "")
    return top.result(source)


def top_of_images(p: Plan, images: ImageSet) -> TopResult:
    """The top patches of ``p``'s network (every map stage, the first max_channels channels, k 9, or as
    many as there are images) over every image of ``images``: what ``convlab train --top`` logs."""
    import dataclasses

    from convlab.experiment import TopConfig

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

    from convlab.validation import check_path

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

    from convlab import data as datasets
    from convlab.config import dump_toml
    from convlab.interrupts import stop_signals_raise
    from convlab.planning import batch_threads, describe
    from convlab.runs import check_logdir, create_run_dir, default_run_name, write_config, write_summary
    from convlab.writer import RunWriter

    tp = plan_top(exp)
    check_logdir(exp.run.logdir, exp.run.run_name)
    paths = check_out_dir(out, tp)
    images = datasets.load(exp.data, exp.run.seed)
    for note in images.notes:
        reporter.info(note)
    count = min(len(images), tp.num_images)
    started = time.perf_counter()
    steps, done = -(-count // exp.data.batch_size), 0
    try:
        with batch_threads(tp.stack.device), stop_signals_raise(), reporter.progress(steps, f"top {images.name}/{images.split}") as advance:

            def step(status: str | None = None) -> None:
                nonlocal done
                done += 1
                advance(status)

            result = top_pass(tp, images, step, count=count)
    except Interrupted as exc:
        exc.detail = f"during the pass, after {done} of {steps} batch(es); nothing was written"
        raise
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
