"""``convlab train``: a stack trained as a classifier, its kernels and feature maps logged as
they learn.

The step is the training step throughout (the number of optimizer steps taken, as the lesson
counts ``total_train_step``), so TensorBoard's step slider is time: ``train/loss`` and
``train/accuracy`` every step; ``test/loss``, ``test/accuracy`` and a confusion matrix at each
evaluation; at each snapshot (step 0 included) the kernels of every conv stage, on one fixed
range per stage, and every stage's view of one fixed probe batch from the eval set. ``model.pt``
(a state_dict, replaced atomically) is saved at each evaluation and at the end.

Everything is checked by :func:`plan_training` before any data is loaded. torch is imported
inside the functions.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import ConfigError, ConvlabError, Experiment, dump_toml
from convlab.data import get_dataset
from convlab.modules import call_text
from convlab.trained import MODEL_FILE

if TYPE_CHECKING:
    import torch

    from convlab.hooks import Call
    from convlab.modelrun import ModelPlan
    from convlab.pipeline import Reporter
    from convlab.planning import Plan

# A folder is one set of images: this fraction of it is kept out of training and evaluated on.
FOLDER_HOLDOUT = 0.2
METRICS = ["test/accuracy", "test/loss", "train/loss"]


class TrainingError(ConvlabError):
    """Training cannot go on (the loss is no longer a finite number)."""


@dataclass(frozen=True)
class TrainPlan:
    """What a training run will do, decided before any data is loaded."""

    stack: Plan | ModelPlan  # the stages, their modules (seeded, --init-weights loaded), device; or a Python model's calls
    classes: int
    holdout: float | None  # the fraction of the training images evaluated on instead of eval_split
    train_images: int
    eval_images: int
    steps_per_epoch: int
    num_steps: int
    eval_every: int

    @property
    def exp(self) -> Experiment:
        return self.stack.exp


def _data_for_training(exp: Experiment) -> Experiment:
    """A folder has no splits: its one set of images is what --split names, whichever it says."""
    if get_dataset(exp.data.dataset).has_splits:
        return exp
    return dataclasses.replace(exp, data=dataclasses.replace(exp.data, split="test"))


def check_classifier(exp: Experiment, output_shape: tuple[int, ...], classes: int, call: Call | None = None) -> None:
    """The last stage (``call``: a Python model's last module call) must give one score per class of the dataset."""
    if call is None:
        last = exp.stages[-1]
        stage = f"stage {len(exp.stages)} {call_text(last)}"
        in_features = last.in_features if last.kind == "linear" else None
    else:
        stage = f"the model (its last call: {call.index} {call.name} {call.layer})"
        in_features = getattr(call.module, "in_features", None) if type(call.module).__name__ == "Linear" else None
    if len(output_shape) != 1:
        raise ConfigError(
            f"{stage} gives maps {tuple(output_shape)}, but a classifier's last stage gives one score per class: "
            f"end with Flatten() and Linear(..., {classes}) ({exp.data.dataset} has {classes} classes)"
        )
    if output_shape[0] != classes:
        fits = f"Linear({in_features}, {classes})" if in_features is not None else f"a last Linear(..., {classes})"
        raise ConfigError(
            f"{stage} gives {output_shape[0]} features per image, but {exp.data.dataset} has {classes} classes and "
            f"nn.CrossEntropyLoss needs one score per class; use {fits}"
        )


def plan_training(exp: Experiment, model: torch.nn.Module | None = None) -> TrainPlan:
    """Everything a training run will do, checked before any data is loaded; ``model``: a Python
    ``nn.Module`` to train (the notebook API), instead of the experiment's stages."""
    from convlab import planning

    exp = _data_for_training(exp)
    spec = get_dataset(exp.data.dataset)
    classes = spec.class_count(exp.data)
    if classes == 0:
        raise ConfigError(
            f"--dataset folder: {exp.data.data_dir} has no class subfolders, so its images have no labels to train on; "
            "put each class's images in its own subfolder (e.g. DIR/cat/1.jpg, DIR/dog/2.jpg)"
        )
    if model is None:
        p = planning.plan(exp)
        check_classifier(exp, p.output_shape, classes)
    else:
        from convlab.modelrun import plan_model

        if exp.train.top:
            raise ConfigError("top patches (--top) are worked out for a stack's stages; a Python model has none: "
                              "train it without top, or write it as a stack")
        p = plan_model(exp, model)
        check_classifier(exp, p.output_shape, classes, p.calls[-1])
    t = exp.train
    holdout = t.holdout if t.holdout is not None or spec.has_splits else FOLDER_HOLDOUT
    total = spec.num_images(exp.data)
    if holdout is not None:
        held = holdout_count(total, holdout)
        train_images, eval_images = total - held, held
    else:
        train_images = total
        eval_images = spec.num_images(dataclasses.replace(exp.data, split=t.eval_split))
    return _counted(TrainPlan(p, classes, holdout, train_images, eval_images, 0, 0, 0), train_images, eval_images)


def _counted(tp: TrainPlan, train_images: int, eval_images: int) -> TrainPlan:
    """The plan's steps for this many training and evaluation images."""
    t, batch_size = tp.exp.train, tp.exp.data.batch_size
    if t.eval_batches is not None:
        eval_images = min(eval_images, t.eval_batches * batch_size)
    steps_per_epoch = math.ceil(train_images / batch_size)
    num_steps = steps_per_epoch * t.epochs if t.max_steps is None else min(t.max_steps, steps_per_epoch * t.epochs)
    return dataclasses.replace(tp, train_images=train_images, eval_images=eval_images, steps_per_epoch=steps_per_epoch,
                               num_steps=num_steps, eval_every=t.eval_every or steps_per_epoch)


def holdout_count(total: int, holdout: float) -> int:
    if total < 2:
        raise ConfigError(f"--holdout needs at least 2 images to keep some for evaluation; the training set has {total}")
    return min(total - 1, max(1, round(total * holdout)))


def describe_training(tp: TrainPlan) -> str:
    t, data = tp.exp.train, tp.exp.data
    where = f"{data.dataset}/{t.eval_split}" if tp.holdout is None else f"{tp.holdout:g} of {data.dataset}/{data.split}, held out"
    return "\n".join([
        f"training: {tp.num_steps} step(s) ({t.epochs} epoch(s) of {tp.steps_per_epoch}) of {data.batch_size} image(s) "
        f"from {tp.train_images} of {data.dataset}/{data.split}, {_order(tp.exp)}; nn.CrossEntropyLoss, "
        f"{t.optimizer} lr={t.lr:g}{_decay(t)}",
        f"evaluation: every {tp.eval_every} step(s) and at the end, on {tp.eval_images} image(s) of {where}",
        f"snapshots: every {t.snapshot_every} step(s), at step 0 and at the end: each conv stage's kernels on one "
        "fixed range per stage (mid-grey = 0, black/white = -/+ the stage's largest |weight| at step 0, clipped "
        "beyond), what training has added to them (kernels-change: the kernels minus step 0's, on the same range), "
        "and every stage's view of the same probe images from the evaluation set",
    ])


def _decay(t: Any) -> str:
    from convlab.optimizers import DEFAULT_WEIGHT_DECAY

    decay = DEFAULT_WEIGHT_DECAY[t.optimizer] if t.weight_decay is None else t.weight_decay
    return f" weight_decay={decay:g}" if decay else ""


def _order(exp: Experiment) -> str:
    if exp.data.dataset == "shapes":  # drawn on demand, batch by batch, in a random order of classes
        return "in the random order they are drawn"
    return "shuffled each epoch" if exp.train.shuffle else "in order"


# ----------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """The images a run trains on (read batch by batch), and its evaluation set in memory."""

    images: Any  # convlab.data.ImageSet
    train_count: int  # how many of them it trains on
    indices: torch.Tensor | None  # their indices; None: the first train_count, read in order (a stream)
    eval_x: torch.Tensor  # uint8 (N, C, H, W)
    eval_y: torch.Tensor
    eval_name: str
    shuffle: bool = True

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor | None:
        import torch

        if self.indices is None or not self.shuffle:  # shapes, a stream, is drawn in a random order already
            return self.indices
        return self.indices[torch.randperm(len(self.indices), generator=generator)]

    def batch(self, order: torch.Tensor | None, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        if order is None:
            return self.images.batch(start, stop), self.images.batch_labels(start, stop)
        picked = order[start:stop]
        return self.images.images[picked].contiguous(), self.images.labels[picked]


def load_data(tp: TrainPlan) -> TrainingData:
    import torch

    from convlab import data as datasets

    exp = tp.exp
    images = datasets.load(exp.data, exp.run.seed)
    n, limit, shuffle = len(images), tp.eval_images, exp.train.shuffle
    in_memory = isinstance(images.images, torch.Tensor)
    if tp.holdout is not None:
        held, name = holdout_count(n, tp.holdout), f"{images.name}/{images.split} (held out)"
        if in_memory:  # a folder lists its images class by class: hold out a random sample
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(exp.run.seed))
            kept, out = perm[held:].sort().values, perm[:held].sort().values[:limit]
            return TrainingData(images, n - held, kept, images.images[out].contiguous(), images.labels[out], name, shuffle)
        end = n - held + limit
        return TrainingData(images, n - held, None, images.batch(n - held, end), images.batch_labels(n - held, end), name, shuffle)
    test = datasets.load(dataclasses.replace(exp.data, split=exp.train.eval_split), exp.run.seed)
    indices = torch.arange(n) if in_memory else None
    return TrainingData(images, n, indices, test.batch(0, limit), test.batch_labels(0, limit), f"{test.name}/{test.split}", shuffle)


# ----------------------------------------------------------------------------- steps


def save_model(model: torch.nn.Module, run_dir: Path) -> Path:
    """model.pt, a state_dict, replaced atomically: a reader never sees half of one."""
    import torch

    path, tmp = run_dir / MODEL_FILE, run_dir / f".{MODEL_FILE}.tmp"
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path


def memory_format(tp: TrainPlan) -> torch.memory_format:
    """A stack's Plan.memory_format (channels_last for a conv stack on the CPU); a Python model's own."""
    import torch

    if is_model(tp.stack):  # the user's own model keeps its layout
        return torch.contiguous_format
    return tp.stack.memory_format


def _images(x: torch.Tensor, tp: TrainPlan, device: str, layout: torch.memory_format) -> torch.Tensor:
    """A uint8 batch as the model takes it: on the device, floats in [0, 1], normalised if asked, in its layout."""
    return tp.stack.model_input(x.to(device).float().div_(255)).contiguous(memory_format=layout)


def evaluate(model: torch.nn.Module, data: TrainingData, tp: TrainPlan, device: str) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, confusion counts [true, predicted]) over the evaluation set."""
    import torch
    import torch.nn.functional as F

    k, bs, n = tp.classes, tp.exp.data.batch_size, len(data.eval_y)
    model.eval()
    loss = torch.zeros((), device=device)
    confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
    with torch.inference_mode():
        for start in range(0, n, bs):
            x = _images(data.eval_x[start : start + bs], tp, device, memory_format(tp))
            y = data.eval_y[start : start + bs].to(device)
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum")
            confusion += torch.bincount(y * k + out.argmax(1), minlength=k * k)
    confusion = confusion.view(k, k).cpu()
    return loss.item() / n, confusion.diag().sum().item() / n, confusion


def is_model(p: Any) -> bool:
    """Whether a plan is a Python model's (the notebook API's ``model=``) rather than a stack's."""
    from convlab.modelrun import ModelPlan

    return isinstance(p, ModelPlan)


def network(p: Plan | ModelPlan) -> torch.nn.Module:
    """What is trained: the stack's stages as one ``nn.Sequential``, or the Python model itself."""
    import torch

    return p.model if is_model(p) else torch.nn.Sequential(*(s.module for s in p.stages))


def train(exp: Experiment, reporter: Reporter | None = None, *, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train and log the run; returns its summary (also saved as summary.json). ``model``: a Python
    ``nn.Module``, trained in place, instead of the experiment's stages (see :func:`plan_training`)."""
    from convlab import pipeline
    from convlab.interrupts import stop_signals_between_steps
    from convlab.runs import check_logdir

    reporter = reporter or pipeline.SilentReporter()
    with stop_signals_between_steps() as guard:
        tp = plan_training(exp, model)
        exp = tp.exp
        check_logdir(exp.run.logdir, exp.run.run_name)
        loading = time.perf_counter()
        data = load_data(tp)
        loading = time.perf_counter() - loading
        # The images there are (a dataset's files may hold fewer than its official split).
        tp = _counted(tp, data.train_count, len(data.eval_y))
        for note in data.images.notes:
            reporter.info(note)
        if is_model(tp.stack):
            from convlab.modelrun import ModelLog

            log = ModelLog(tp.stack, data.images, tp.num_steps)
        else:
            log = pipeline.RunLog(tp.stack, data.images, tp.num_steps)
        try:
            return _train(tp, data, log, guard, reporter, loading)
        except BaseException as exc:
            model_note = ""
            if log.summary["steps"] and not isinstance(exc, TrainingError):
                try:
                    save_model(network(tp.stack), log.run_dir)
                    model_note = f"; {log.run_dir / MODEL_FILE} holds the weights after step {log.summary['steps']}"
                except OSError as error:  # already stopping: say so, and report what stopped the run
                    model_note = f"; model.pt could not be saved ({error.strerror or error})"
            log.stopped(exc)
            if hasattr(exc, "detail") and model_note:
                exc.detail += model_note
            raise


def _train(tp: TrainPlan, data: TrainingData, log: Any, guard: Any, reporter: Reporter, loading: float) -> dict[str, Any]:
    import torch

    from convlab import pipeline, planning
    from convlab.confusion import confusion_image
    from convlab.optimizers import create_optimizer
    from convlab.snapshots import Snapshots, graph_nodes

    exp, p, writer, t = tp.exp, tp.stack, log.writer, tp.exp.train
    device, classes, bs = p.device, data.images.classes, exp.data.batch_size
    torch.manual_seed(exp.run.seed)  # dropout's masks
    layout = memory_format(tp)
    model = network(p) if is_model(p) else network(p).to(device, memory_format=layout)
    optimizer = create_optimizer(t.optimizer, model.parameters(), t.lr, t.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    live = list(model.state_dict().values())
    backup = [v.clone() for v in live]  # the weights whose loss was finite, kept through a NaN
    order_rng = torch.Generator().manual_seed(exp.run.seed)
    if is_model(p):
        from convlab.modelrun import ModelSnapshots, config_text

        snapshots: Snapshots = ModelSnapshots(p, writer, data.eval_x, data.eval_y, device)
        config, layer_text = config_text(p), p.describe()
    else:
        snapshots = Snapshots(p, writer, data.eval_x, data.eval_y, device)
        config, layer_text = dump_toml(exp), planning.describe(p)
    summary = log.summary
    changes = [f"{s.prefix}/kernels-change" for s in snapshots.kernels]
    summary.update(command="train", tags=[*summary["tags"], *changes, "test/confusion"],
                   planned_steps=tp.num_steps, train_images=tp.train_images, eval_images=len(data.eval_y),
                   eval_set=data.eval_name)

    # Where the time goes, in seconds (bench/train_bench.py reports it).
    timing = summary["timing"] = {"loading": round(loading, 3), "header": 0.0, "steps": 0.0, "evaluations": 0.0, "snapshots": 0.0}
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timing[what] = round(timing[what] + now - clock, 3)
        clock = now

    # The header: config, the stage table, the plan, hparams (the HParams tab ranks runs by the
    # last test/accuracy), the graph (of a stack: a model's calls need not be a chain).
    from convlab.runs import write_config, write_summary

    write_config(log.run_dir, config)
    write_summary(log.run_dir, summary)
    writer.text("config", pipeline._markdown_block(config))
    writer.text("layer", pipeline._markdown_block(layer_text))
    writer.text("training", pipeline._markdown_block(describe_training(tp)))
    writer.text("data", pipeline._markdown_block(data.images.describe()))
    writer.hparams(pipeline.hparams(exp) | ({"model": p.table.model} if is_model(p) else {}), METRICS)
    if not is_model(p):
        writer.graph(graph_nodes(p, bs))
    lap("header")
    snapshots.log(0, classes)
    lap("snapshots")
    summary["kernel_scale"] = snapshots.limits
    reporter.info(layer_text)
    reporter.info(describe_training(tp))
    reporter.info(f"run: {log.run_dir}")

    def evaluation(step: int) -> None:
        loss, accuracy, confusion = evaluate(model, data, tp, device)
        writer.scalar("test/loss", loss, step)
        writer.scalar("test/accuracy", accuracy, step)
        title = f"step {step}: accuracy {accuracy:.1%} on {len(data.eval_y)} images of {data.eval_name}"
        writer.image("test/confusion", confusion_image(confusion.tolist(), classes or [str(i) for i in range(tp.classes)], title), step)
        summary.update(test_loss=round(loss, 6), test_accuracy=round(accuracy, 6), evaluated_at=step)
        summary["model"] = str(save_model(model, log.run_dir))

    started = time.perf_counter()
    window_images, window_start = 0, started
    step, epoch, order = 0, -1, None
    with reporter.progress(tp.num_steps, f"train {data.images.name}/{data.images.split}") as advance:
        while step < tp.num_steps:
            position = step % tp.steps_per_epoch
            if position == 0:
                epoch += 1
                order = data.epoch_order(order_rng)
            with guard.step():
                x, y = data.batch(order, position * bs, min((position + 1) * bs, tp.train_images))
                x, y = _images(x, tp, device, layout), y.to(device)
                model.train()
                out = model(x)
                loss = loss_fn(out, y)
                loss_value, correct = torch.stack([loss.detach(), (out.argmax(1) == y).sum()]).tolist()
                if not math.isfinite(loss_value):
                    _stop_on_nan(model, live, backup, log, step + 1, loss_value, t)
                torch._foreach_copy_(backup, live)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
            writer.scalar("train/loss", loss_value, step)
            writer.scalar("train/accuracy", correct / len(y), step)
            summary["steps"] = step
            lap("steps")
            if step % tp.eval_every == 0 or step == tp.num_steps:
                evaluation(step)
                lap("evaluations")
            if step % t.snapshot_every == 0 or step == tp.num_steps:
                snapshots.log(step, classes)
                lap("snapshots")
            window_images += len(y)
            now = time.perf_counter()
            advance(status=f"epoch {epoch + 1} loss {loss_value:.3f} {window_images / max(now - window_start, 1e-9):,.0f} img/s")
            if now - window_start > 2:  # throughput over the last few seconds
                window_images, window_start = 0, now
    if t.top:
        _log_top(tp, data, writer, step, summary)
        lap("snapshots")
    return log.complete(time.perf_counter() - started)


def _log_top(tp: TrainPlan, data: TrainingData, writer: Any, step: int, summary: dict[str, Any]) -> None:
    """--top: each map stage's top patches over the evaluation images, beside the last kernels (convlab top)."""
    from convlab.data import ImageSet
    from convlab.top.run import log_top, top_of_images

    name, _, split = data.eval_name.partition("/")
    images = ImageSet(name, split, data.eval_x, data.eval_y, data.images.classes)
    summary["tags"] = [*summary["tags"], *log_top(writer, top_of_images(tp.stack, images), step)]


def _stop_on_nan(model: Any, live: list, backup: list, log: Any, step: int, value: float, t: Any) -> None:
    """The loss is NaN or infinite: keep the weights whose loss was finite, and stop in one line."""
    import torch

    kept = f"the weights of step {step - 1}, the last with a finite loss, are in {log.run_dir / MODEL_FILE}"
    if step > 1:
        torch._foreach_copy_(live, backup)
        save_model(model, log.run_dir)
    else:
        kept = "the initial weights already gave it, so nothing was kept"
    raise TrainingError(
        f"the training loss is {value} at step {step} ({t.optimizer}, lr={t.lr:g}): the weights have diverged; "
        f"{kept}; try a smaller --lr (e.g. --lr {t.lr / 10:g})"
    )
