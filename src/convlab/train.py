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

import collections
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import dump_toml
from convlab.data import get_dataset
from convlab.errors import ConfigError, ConvlabError
from convlab.experiment import Experiment
from convlab.gallery import MAX_CLASS_ROWS
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
# The HParams metrics, in the order its table shows them.
METRICS = ["test/accuracy", "test/loss", "train/loss", "train/accuracy"]


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
    # The first stage that, training, normalises over the batch and needs 2+ images in it.
    batch_stats: str | None = None

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
    if classes == 1:
        raise ConfigError(
            f"--dataset folder: {exp.data.data_dir} has one class subfolder, so there is nothing to tell apart (the "
            "loss would be 0 from the start); a classifier needs two or more classes, each in its own subfolder"
        )
    t = exp.train
    if t.holdout is not None and t.eval_split != "test":
        raise ConfigError(
            f"--holdout {t.holdout:g} evaluates on training images kept out, and --eval-split {t.eval_split} on another "
            "split; use one of them"
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
    if not any(True for _ in network(p).parameters()):
        what = (f"model {p.table.model} has no parameters" if is_model(p) else
                f"the stack has no parameters ({', '.join(call_text(s.cfg) for s in p.stages)} have no weights)")
        raise ConfigError(f"nothing to train: {what}; add a layer with weights, e.g. Conv2d or Linear(..., {classes})")
    holdout = t.holdout if t.holdout is not None or spec.has_splits else FOLDER_HOLDOUT
    total = spec.num_images(exp.data)
    if holdout is not None:
        held = holdout_count(total, holdout)
        train_images, eval_images = total - held, held
    else:
        train_images = total
        eval_images = spec.num_images(dataclasses.replace(exp.data, split=t.eval_split))
    # A Python model's layers are its own: only a stack's stages are looked into.
    batch_stats = None if is_model(p) else planning.batch_statistics_stage(p.stages, training=True)
    if batch_stats is not None and min(exp.data.batch_size, train_images) == 1:
        raise planning.one_value_per_channel(batch_stats, "training on a batch of 1 image", "use --batch-size 2 or more")
    if p.batch_stats is not None and min(exp.views.images, eval_images) == 1:
        what = f"the probe batch of --view-images {exp.views.images}" if eval_images > 1 else "an evaluation set of 1 image"
        raise planning.one_value_per_channel(p.batch_stats, what, "use --view-images 2 or more, and 2+ images to evaluate on")
    tp = TrainPlan(p, classes, holdout, train_images, eval_images, 0, 0, 0, batch_stats)
    return _counted(tp, train_images, eval_images)


def _counted(tp: TrainPlan, train_images: int, eval_images: int) -> TrainPlan:
    """The plan's steps for this many training and evaluation images."""
    from convlab.planning import count_steps

    t, batch_size = tp.exp.train, tp.exp.data.batch_size
    if t.eval_batches is not None:
        eval_images = min(eval_images, t.eval_batches * batch_size)
    if tp.stack.batch_stats is not None and eval_images % batch_size == 1:
        eval_images -= 1  # a last evaluation batch of one image: see planning.batch_statistics_stage
    # A last batch of one image is left out of each epoch when a stage normalises over the batch.
    steps_per_epoch = count_steps(train_images, batch_size, None, 2 if tp.batch_stats else 1)
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
    notes = []
    if not get_dataset(data.dataset).has_splits:
        notes.append(f"note: --dataset folder is one set of images, so --split and --eval-split do not apply: it trains on "
                     f"{tp.train_images} of them and evaluates on the {tp.holdout:g} held out (--holdout)")
    elif tp.holdout is None and t.eval_split == data.split:
        notes.append(f"note: it evaluates on the images it trains on ({data.dataset}/{data.split}): the test accuracy "
                     "says how well it fits them, not how it does on images it never saw (--holdout 0.2 keeps some out)")
    if tp.batch_stats is not None and tp.steps_per_epoch * data.batch_size < tp.train_images:
        notes.append(f"note: the last batch of each epoch would hold 1 image, one value per channel for {tp.batch_stats}, "
                     "which normalises over the batch while training: it is left out, as DataLoader(drop_last=True) does")
    return "\n".join([*notes,
        f"training: {tp.num_steps} step(s) ({t.epochs} epoch(s) of {tp.steps_per_epoch}) of {data.batch_size} image(s) "
        f"from {tp.train_images} of {data.dataset}/{data.split}, {_order(tp.exp)}; nn.CrossEntropyLoss, "
        f"{t.optimizer} lr={t.lr:g}{_decay(t)}",
        f"evaluation: every {tp.eval_every} step(s) and at the end, on {tp.eval_images} image(s) of {where}: test/loss, "
        "test/accuracy, the confusion matrix, the mistakes (most confident first) and, per class, the right answers it "
        "was least sure of",
        f"snapshots: every {t.snapshot_every} step(s), at step 0 and at the end: the kernels at step 0 | now | what "
        "training has added (now - step 0), on one fixed range per stage (mid-grey = 0, black/white = -/+ the "
        "stage's largest |weight| at step 0, clipped beyond); every stage's view of the same probe images from the "
        "evaluation set beside step 0's; histograms of each stage's weights and gradients",
        "every step: train/loss, train/accuracy (of the batch), and per weighted stage its weight's gradient norm "
        "(gradient-norm/) and the update against the weight (update-ratio/)",
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


@dataclass(frozen=True)
class Evaluation:
    """One pass over the evaluation set: the numbers, and what was predicted for each image."""

    loss: float  # mean cross-entropy
    accuracy: float
    confusion: torch.Tensor  # counts [true, predicted]
    predicted: torch.Tensor  # (N,) the class each image was given
    confidence: torch.Tensor  # (N,) its probability (softmax of the scores)
    p_true: torch.Tensor  # (N,) the probability given to the image's true class


def evaluate(model: torch.nn.Module, data: TrainingData, tp: TrainPlan, device: str) -> Evaluation:
    """The model (in eval mode) over the evaluation set, batch by batch."""
    import torch
    import torch.nn.functional as F

    k, bs, n = tp.classes, tp.exp.data.batch_size, len(data.eval_y)
    model.eval()
    loss = torch.zeros((), device=device)
    confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
    predicted, confidence, p_true = [], [], []
    with torch.inference_mode():
        for start in range(0, n, bs):
            x = _images(data.eval_x[start : start + bs], tp, device, memory_format(tp))
            y = data.eval_y[start : start + bs].to(device)
            out = model(x).float()
            loss += F.cross_entropy(out, y, reduction="sum")
            probabilities = out.softmax(dim=1)
            best, guess = probabilities.max(dim=1)
            confusion += torch.bincount(y * k + guess, minlength=k * k)
            predicted.append(guess)
            confidence.append(best)
            p_true.append(probabilities.gather(1, y[:, None])[:, 0])
    confusion = confusion.view(k, k).cpu()
    loss_value = loss.item() / n
    return Evaluation(loss_value, confusion.diag().sum().item() / n, confusion,
                      *(torch.cat(t).cpu() for t in (predicted, confidence, p_true)))


# ----------------------------------------------------------------------------- what the run says


# Within this many points of chance (1 / classes), an accuracy is "about chance"; a training loss
# whose last steps average more than LOSS_FALLEN of its first steps' has "not fallen".
NEAR_CHANCE = 0.05
LOSS_FALLEN = 0.9
# The first and last this fraction of the steps (at least 1, at most LOSS_WINDOW_MAX) are compared.
LOSS_WINDOW, LOSS_WINDOW_MAX = 0.1, 50


def loss_windows(losses: list[float]) -> tuple[float, float] | None:
    """The mean training loss of the first and of the last steps, or None for fewer than 4 steps."""
    if len(losses) < 4:
        return None
    w = max(1, min(LOSS_WINDOW_MAX, int(len(losses) * LOSS_WINDOW)))
    return sum(losses[:w]) / w, sum(losses[-w:]) / w


def advice(summary: dict[str, Any], t: Any) -> list[str]:
    """What the end of a run should say when it has not learned: an accuracy about chance, a
    loss that has not fallen; with what to try."""
    notes = []
    chance = 1 / summary["classes"]
    accuracy = summary.get("test_accuracy")
    if accuracy is not None and accuracy < chance + NEAR_CHANCE:
        notes.append(f"{accuracy:.1%} is about chance for {summary['classes']} classes ({chance:.1%}): the model has not learned "
                     "to tell them apart yet")
    windows = summary.get("train_loss_first"), summary.get("train_loss_last")
    if None not in windows and windows[1] > LOSS_FALLEN * windows[0]:
        notes.append(f"train/loss has not fallen ({windows[0]:.3g} over the first steps, {windows[1]:.3g} over the last)")
    if not notes:
        return []
    tries = [f"more steps (--epochs {2 * t.epochs})"]
    if t.optimizer == "sgd":
        tries += ["--optimizer adam --lr 0.001", f"a larger --lr (e.g. --lr {t.lr * 5:g})"]
    elif t.lr > 0.003:
        tries.append("a smaller --lr (e.g. --lr 0.001)")
    else:
        tries.append(f"a larger --lr (e.g. --lr {t.lr * 3:g})")
    return [*notes, "try " + ", ".join(tries[:-1]) + f" or {tries[-1]}"]


def epoch_line(epoch: int, tp: TrainPlan, steps: int, loss: float, correct: int, seen: int, seconds: float,
               last: Evaluation | None, evaluated_at: int | None, step: int) -> str:
    """One line per epoch: its training loss and accuracy (over its batches, as they were trained
    on), the last test accuracy, and how long it took."""
    t = tp.exp.train
    head = f"epoch {epoch}/{t.epochs}"
    if steps < tp.steps_per_epoch:
        head += f" ({steps:,} of {tp.steps_per_epoch:,} steps)"
    line = f"{head}: train loss {loss / max(steps, 1):.3f}, accuracy {correct / max(seen, 1):.1%}"
    if last is not None:
        when = "" if evaluated_at == step else f" at step {evaluated_at}"
        line += f"; test accuracy {last.accuracy:.1%} (loss {last.loss:.3f}){when}"
    return line + f"; {seconds:.1f} s"


def seconds_left(tp: TrainPlan, step: int, step_seconds: float, eval_seconds: float | None, snapshot_seconds: float) -> float:
    """What is left of the run at the measured speeds: the steps, and the evaluations and snapshots
    still to come. Before the first evaluation, one is counted as a third of a training step per
    batch (a forward pass without the backward)."""
    t, n = tp.exp.train, tp.num_steps
    evals, snapshots = _still_to_come(step, n, tp.eval_every), _still_to_come(step, n, t.snapshot_every)
    if eval_seconds is None:
        eval_seconds = math.ceil(tp.eval_images / tp.exp.data.batch_size) * step_seconds / 3
    return (n - step) * step_seconds + evals * eval_seconds + snapshots * snapshot_seconds


def _still_to_come(step: int, last: int, every: int) -> int:
    """How many of the steps after ``step`` up to ``last`` are multiples of ``every`` or ``last`` itself."""
    return last // every - step // every + (1 if last % every and step < last else 0)


# Training scalars charted together (TensorBoard's Custom Scalars tab): train against test, and
# every stage's gradient norm and update ratio in one chart each.
LAYOUT = {
    "training": {
        "loss: train (each batch) and test (each evaluation)": [r"train/loss$", r"test/loss$"],
        "accuracy: train (each batch) and test (each evaluation)": [r"train/accuracy$", r"test/accuracy$"],
    },
    "gradients": {
        "gradient norm of each stage's weight": [r"gradient-norm/"],
        "update / weight: each step's change of each stage's weight": [r"update-ratio/"],
    },
}
# The HParams columns shown first: what the user chose.
CHOSEN = ("train.optimizer", "train.lr", "train.epochs", "data.batch_size", "stack.layers")


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
    from convlab import pipeline, planning
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
            log = pipeline.RunLog(tp.stack, data.images, tp.num_steps, say=reporter.info)
        try:
            return _train(tp, data, log, guard, reporter, loading)
        except BaseException as escaped:
            exc = planning.memory_error(escaped, tp.stack) or escaped
            model_note = ""
            if log.summary["steps"] and not isinstance(exc, TrainingError):
                try:
                    save_model(network(tp.stack), log.run_dir)
                    model_note = f"; {log.run_dir / MODEL_FILE} holds the weights after step {log.summary['steps']}"
                except Exception as error:  # already stopping: say so, and report what stopped the run
                    model_note = f"; model.pt could not be saved ({getattr(error, 'strerror', None) or error})"
            log.stopped(exc)
            if hasattr(exc, "detail") and model_note:
                exc.detail += model_note
            if exc is not escaped:
                raise exc from None
            raise


def _train(tp: TrainPlan, data: TrainingData, log: Any, guard: Any, reporter: Reporter, loading: float) -> dict[str, Any]:
    import torch

    from convlab import pipeline, planning
    from convlab.gradients import Gradients
    from convlab.optimizers import create_optimizer
    from convlab.snapshots import Snapshots, graph_nodes

    exp, p, writer, t = tp.exp, tp.stack, log.writer, tp.exp.train
    device, classes, bs = p.device, data.images.classes, exp.data.batch_size
    torch.manual_seed(exp.run.seed)  # dropout's masks
    layout = memory_format(tp)
    model = network(p) if is_model(p) else network(p).to(device, memory_format=layout)
    optimizer = create_optimizer(t.optimizer, model.parameters(), t.lr, t.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    live = model.state_dict()
    # The weights before the step's update: kept through a NaN (the weights whose loss was
    # finite), and what each update is measured against.
    backup = {k: v.clone() for k, v in live.items()}
    gradients = Gradients.of(p, model, backup)
    order_rng = torch.Generator().manual_seed(exp.run.seed)
    if is_model(p):
        from convlab.modelrun import ModelSnapshots, config_text

        snapshots: Snapshots = ModelSnapshots(p, writer, data.eval_x, data.eval_y, device)
        config, layer_text = config_text(p), p.describe()
    else:
        snapshots = Snapshots(p, writer, data.eval_x, data.eval_y, device, watch=log.nonfinite)
        config, layer_text = dump_toml(exp), planning.describe(p)
    summary = log.summary
    kernels = [f"{s.prefix}/kernels" for s in snapshots.kernels]
    pictures = ["test/confusion", "test/mistakes"] + (["test/unsure"] if tp.classes <= MAX_CLASS_ROWS else [])
    tags = [tag for tag in summary["tags"] if tag not in kernels] + kernels + pictures
    summary.update(command="train", tags=tags, planned_steps=tp.num_steps, train_images=tp.train_images,
                   eval_images=len(data.eval_y), eval_set=data.eval_name, classes=tp.classes)

    # Where the time goes, in seconds (bench/train_bench.py reports it).
    timing = summary["timing"] = {"loading": round(loading, 3), "header": 0.0, "steps": 0.0, "evaluations": 0.0, "snapshots": 0.0}
    clock = time.perf_counter()

    def lap(what: str) -> float:
        nonlocal clock
        now = time.perf_counter()
        timing[what] = round(timing[what] + now - clock, 3)
        took, clock = now - clock, now
        return took

    # The header: config, the stage table, the plan, hparams (the HParams tab ranks runs by the
    # last test/accuracy), the custom scalars layout, the graph (of a stack: a model's calls need not be a chain).
    from convlab.runs import write_config, write_summary

    write_config(log.run_dir, config)
    write_summary(log.run_dir, summary)
    writer.text("config", pipeline._markdown_block(config))
    writer.text("layer", pipeline._markdown_block(layer_text))
    writer.text("training", pipeline._markdown_block(describe_training(tp)))
    writer.text("data", pipeline._markdown_block(data.images.describe()))
    writer.hparams(pipeline.hparams(exp, CHOSEN) | ({"model": p.table.model} if is_model(p) else {}), METRICS, first=CHOSEN)
    writer.custom_scalars(LAYOUT)
    if not is_model(p):
        writer.graph(graph_nodes(p, bs))
    lap("header")
    snapshots.log(0, classes)
    gradients.histograms(writer, 0)
    snapshot_seconds = lap("snapshots")
    summary["kernel_scale"] = snapshots.limits
    reporter.info(layer_text)
    reporter.info(describe_training(tp))
    reporter.info(f"run: {log.run_dir}")

    last: Evaluation | None = None

    def evaluation(step: int) -> None:
        nonlocal last
        last = evaluate(model, data, tp, device)
        log_evaluation(writer, last, data, classes or tuple(str(i) for i in range(tp.classes)), step)
        summary.update(test_loss=round(last.loss, 6), test_accuracy=round(last.accuracy, 6), evaluated_at=step)
        summary["model"] = str(save_model(model, log.run_dir))

    started = time.perf_counter()
    losses: list[float] = []
    step_times: collections.deque[float] = collections.deque(maxlen=50)
    eval_seconds: float | None = None
    pending: list[Any] = []  # the last step's gradient measures, read back with this step's loss
    epoch_loss = epoch_correct = epoch_seen = epoch_steps = 0
    epoch_started = started
    step, epoch, order = 0, -1, None
    with reporter.progress(tp.num_steps, f"train {data.images.name}/{data.images.split}") as advance:
        while step < tp.num_steps:
            position = step % tp.steps_per_epoch
            if position == 0:
                epoch += 1
                order = data.epoch_order(order_rng)
            # A signal is raised when a whole step is done: trained, logged and counted (a signal
            # raised amid the writer's queue could lose an event that summary.json counts).
            with guard.step():
                x, y = data.batch(order, position * bs, min((position + 1) * bs, tp.train_images))
                x, y = _images(x, tp, device, layout), y.to(device)
                model.train()
                out = model(x)
                loss = loss_fn(out, y)
                # One read from the device a step: this loss, and the previous step's gradient measures.
                loss_value, correct, *measured = torch.stack([loss.detach(), (out.argmax(1) == y).sum(), *pending]).tolist()
                if measured:
                    gradients.log(writer, measured, step)
                if not math.isfinite(loss_value):
                    _stop_on_nan(model, list(live.values()), list(backup.values()), log, step + 1, loss_value, t)
                torch._foreach_copy_(list(backup.values()), list(live.values()))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                pending = gradients.measure()
                step += 1
                writer.scalar("train/loss", loss_value, step)
                writer.scalar("train/accuracy", correct / len(y), step)
                summary["steps"] = step
            losses.append(loss_value)
            epoch_loss, epoch_correct, epoch_seen, epoch_steps = epoch_loss + loss_value, epoch_correct + correct, epoch_seen + len(y), epoch_steps + 1
            step_times.append(lap("steps"))
            final = step == tp.num_steps
            if final and pending:  # the last step's measures: nothing comes after to read them with
                gradients.log(writer, torch.stack(pending).tolist(), step)
                pending = []
            if step % tp.eval_every == 0 or final:
                advance(steps=0, status=f"evaluating {len(data.eval_y):,} images")
                with guard.step():
                    evaluation(step)
                eval_seconds = lap("evaluations")
            if step % t.snapshot_every == 0 or final:
                with guard.step():
                    snapshots.log(step, classes)
                    gradients.histograms(writer, step)
                snapshot_seconds = lap("snapshots")
            if step % tp.steps_per_epoch == 0 or final:
                now = time.perf_counter()
                reporter.info(epoch_line(epoch + 1, tp, epoch_steps, epoch_loss, epoch_correct, epoch_seen, now - epoch_started,
                                         last, summary.get("evaluated_at"), step))
                epoch_loss = epoch_correct = epoch_seen = epoch_steps = 0
                epoch_started = now
            step_seconds = sum(step_times) / len(step_times)
            advance(status=f"epoch {epoch + 1} loss {loss_value:.3f} {bs / max(step_seconds, 1e-9):,.0f} img/s",
                    eta=seconds_left(tp, step, step_seconds, eval_seconds, snapshot_seconds))
    if t.top:
        _log_top(tp, data, writer, step, summary)
        lap("snapshots")
    windows = loss_windows(losses)
    if windows is not None:
        summary.update(train_loss_first=round(windows[0], 6), train_loss_last=round(windows[1], 6))
    summary["advice"] = advice(summary, t)
    if summary["advice"]:
        writer.text("advice", "\n\n".join(summary["advice"]), step)
    return log.complete(time.perf_counter() - started)


def _log_top(tp: TrainPlan, data: TrainingData, writer: Any, step: int, summary: dict[str, Any]) -> None:
    """--top: each map stage's top patches over the evaluation images, beside the last kernels (convlab top)."""
    from convlab.data import ImageSet
    from convlab.top.run import log_top, top_of_images

    name, _, split = data.eval_name.partition("/")
    images = ImageSet(name, split, data.eval_x, data.eval_y, data.images.classes)
    summary["tags"] = [*summary["tags"], *log_top(writer, top_of_images(tp.stack, images), step)]


def log_evaluation(writer: Any, ev: Evaluation, data: TrainingData, classes: tuple[str, ...], step: int) -> None:
    """test/loss and test/accuracy, the confusion matrix, the mistakes (most confident first) and,
    per class, the right answers it was least sure of."""
    from convlab import gallery
    from convlab.confusion import confusion_image

    writer.scalar("test/loss", ev.loss, step)
    writer.scalar("test/accuracy", ev.accuracy, step)
    where = f"{len(data.eval_y)} images of {data.eval_name}"
    writer.image("test/confusion", confusion_image(ev.confusion.tolist(), classes, f"step {step}: accuracy {ev.accuracy:.1%} on {where}"), step)
    images = data.eval_x.numpy()
    labels, predicted, confidence, p_true = (t.tolist() for t in (data.eval_y, ev.predicted, ev.confidence, ev.p_true))
    wrong = gallery.mistakes(ev.predicted, ev.confidence, data.eval_y)
    title = f"step {step}, {where}"
    writer.image("test/mistakes", gallery.mistakes_picture(images, wrong, len(wrong), labels, predicted, confidence, classes, title), step)
    listed = [f"{n}. #{i}: {classes[labels[i]]}, predicted {classes[predicted[i]]} ({confidence[i]:.3f})"
              for n, i in enumerate(wrong[: gallery.MAX_MISTAKES], 1)]
    writer.text("test/mistakes", f"{len(wrong)} mistake(s) at step {step}, the most confident first (#index in the evaluation "
                f"set: true class, predicted class (its probability)):\n\n" + "\n".join(listed), step)
    if len(classes) <= MAX_CLASS_ROWS:
        rows = gallery.least_confident(ev.predicted, ev.p_true, data.eval_y, len(classes))
        writer.image("test/unsure", gallery.unsure_picture(images, rows, p_true, classes, title), step)


def _stop_on_nan(model: Any, live: list, backup: list, log: Any, step: int, value: float, t: Any) -> None:
    """The loss is NaN or infinite: keep the weights whose loss was finite, and stop in one line."""
    import torch

    kept = f"the weights of step {step - 1}, the last with a finite loss, are in {log.run_dir / MODEL_FILE}"
    if step == 1:  # no optimizer step ran: --lr is not the cause
        stack = log.plan.exp.stack
        source = ("the model's own" if is_model(log.plan) else f"from --init-weights {stack.weights}" if stack.weights is not None
                  else f"from --pretrained {stack.pretrained}" if stack.pretrained is not None else "PyTorch's init")
        raise TrainingError(
            f"the training loss is {value} at step 1, before any weight was updated: the initial weights ({source}) "
            "and these layers already give it, so nothing was kept and --lr is not the cause; check the weights and "
            "the layers' arguments"
        )
    torch._foreach_copy_(live, backup)
    save_model(model, log.run_dir)
    raise TrainingError(
        f"the training loss is {value} at step {step} ({t.optimizer}, lr={t.lr:g}): the weights have diverged; "
        f"{kept}; try a smaller --lr (e.g. --lr {t.lr / 10:g})"
    )
