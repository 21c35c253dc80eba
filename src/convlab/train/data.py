"""The images a training run reads: its training set batch by batch, in a new order each epoch,
and its evaluation set in memory (a split, or the training images held out)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.train.plan import TrainPlan, holdout_count

if TYPE_CHECKING:
    import torch


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


def model_batch(x: torch.Tensor, tp: TrainPlan, device: str, layout: torch.memory_format) -> torch.Tensor:
    """A uint8 batch as the model takes it: on the device, floats in [0, 1], normalised if asked, in its layout."""
    return tp.stack.model_input(x.to(device).float().div_(255)).contiguous(memory_format=layout)
