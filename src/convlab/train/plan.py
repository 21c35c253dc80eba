"""What a training run will do, decided before any data is loaded: the network, the classes, the
images it trains and evaluates on, the steps; said in words by :func:`describe_training`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.data import get_dataset
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.modules import call_text

if TYPE_CHECKING:
    import torch

    from convlab.hooks import Call
    from convlab.modelrun import ModelPlan
    from convlab.planning import Plan


# A folder is one set of images: this fraction of it is kept out of training and evaluated on.
FOLDER_HOLDOUT = 0.2


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
    return counted(tp, train_images, eval_images)


def counted(tp: TrainPlan, train_images: int, eval_images: int) -> TrainPlan:
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


def is_model(p: Any) -> bool:
    """Whether a plan is a Python model's (the notebook API's ``model=``) rather than a stack's."""
    from convlab.modelrun import ModelPlan

    return isinstance(p, ModelPlan)


def network(p: Plan | ModelPlan) -> torch.nn.Module:
    """What is trained: the stack's stages as one ``nn.Sequential``, or the Python model itself."""
    import torch

    return p.model if is_model(p) else torch.nn.Sequential(*(s.module for s in p.stages))


def memory_format(tp: TrainPlan) -> torch.memory_format:
    """A stack's Plan.memory_format (channels_last for a conv stack on the CPU); a Python model's own."""
    import torch

    if is_model(tp.stack):  # the user's own model keeps its layout
        return torch.contiguous_format
    return tp.stack.memory_format
