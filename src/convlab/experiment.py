"""An experiment, as frozen dataclasses: data + an ordered tuple of stages + run + views, and
the section of each command's own settings ([stack], [train], [top], [predict]).

Each class is one section of a config file, its fields the section's keys with their defaults
(:mod:`convlab.config` reads the files and resolves them; :mod:`convlab.validation` checks them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from convlab.modules import call_text
from convlab.stages import ConvConfig, PoolConfig, StageConfig


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar10"
    split: str = "test"
    data_dir: str = "data"
    download: bool = True
    batch_size: int = 64
    max_batches: int | None = None
    # dataset 'folder' only. None: 128 (shorter side resized to it, centre square crop); 0: keep sizes.
    image_size: int | None = None
    # dataset 'folder' only: read images as 1-channel (luma) instead of RGB.
    grayscale: bool = False


@dataclass(frozen=True)
class RunConfig:
    # "auto" = cuda when available, else cpu.
    device: str = "auto"
    seed: int = 0
    logdir: str = "logs"
    run_name: str | None = None


@dataclass(frozen=True)
class ViewConfig:
    # Extra views beside the tutorial's tags, comma-separated; None: every view that applies.
    show: str | None = None
    # How the extra image views map values to grey levels: raw, minmax or symmetric.
    scale: str = "symmetric"
    # How many images of each batch the per-channel view shows.
    images: int = 4
    # Nearest-neighbour upscaling factor of the extra image views; None: so small maps are
    # at least 64 pixels wide.
    zoom: int | None = None


@dataclass(frozen=True)
class StackConfig:
    """``convlab stack``: the layers, as PyTorch code, and where their weights come from."""

    # Each layer as written in PyTorch, e.g. "Conv2d(3, 32, 5, padding=2)"; parsed, never evaluated.
    layers: tuple[str, ...] = ()
    # A .pt/.pth file: a state_dict (or a whole model of torch.nn layers) matching the stack's parameters in order.
    weights: str | None = None
    # A torchvision model whose first `upto` stages, with ImageNet weights, are the stack.
    pretrained: str | None = None
    upto: int | None = None
    # Channels shown per map stage in its picture (the first ones).
    max_channels: int = 16


@dataclass(frozen=True)
class TrainConfig:
    """``convlab train``: the stack trained as a classifier (nn.CrossEntropyLoss)."""

    optimizer: str = "sgd"
    lr: float = 0.01  # the lesson's SGD learning rate
    epochs: int = 1
    # A new random order of the training images each epoch (seeded); off: in order, as the
    # lesson's DataLoader(batch_size=64) reads them.
    shuffle: bool = True
    # Stop after this many steps (batches) in all, even mid-epoch; None: when the epochs are done.
    max_steps: int | None = None
    # Evaluate on the eval set every this many steps; None: at the end of each epoch. Always at the end.
    eval_every: int | None = None
    # Log kernels and the probe batch's views every this many steps (and at the first and last).
    snapshot_every: int = 100
    eval_split: str = "test"
    # Evaluate on the eval set's first this many batches; None: all of it.
    eval_batches: int | None = None
    # Keep this fraction of the training images out of training and evaluate on them instead of
    # eval_split; None: no holdout (a folder, which has one set, holds out 0.2).
    holdout: float | None = None
    # As torch.optim computes it (sgd, adam: + wd * weight in the gradient; adamw: decoupled);
    # None: the optimizer's own default (0; adamw 0.01).
    weight_decay: float | None = None
    # At the end, log each map stage's top patches over the evaluation images (as convlab top does).
    top: bool = False


@dataclass(frozen=True)
class TopConfig:
    """``convlab top``: each channel's top-k dataset patches, for the network of a stack."""

    # Patches per channel: the images whose largest activation in that channel is largest.
    k: int = 9
    # The stages shown (counted from 1); None: every map stage.
    stages: tuple[int, ...] | None = None
    # The channels shown in every chosen stage; None: the first [stack] max_channels of each.
    channels: tuple[int, ...] | None = None
    # Count only the images of this class (a name of the dataset's classes).
    class_name: str | None = None


@dataclass(frozen=True)
class PredictConfig:
    """``convlab predict``: your own images through a trained classifier: what it says, and why."""

    # The images: files, or folders of them (a folder's class subfolders are its images' labels).
    paths: tuple[str, ...] = ()
    # Classes listed per image, the most probable first.
    top_k: int = 3
    # The class the attributions explain, by name; None: each image's predicted class.
    target: str | None = None
    # The conv stage Grad-CAM reads, by stage number; None: the last conv stage.
    layer: int | None = None
    # Attribution methods, comma-separated (gradcam, saliency, occlusion), or none.
    attributions: str = "gradcam,saliency,occlusion"
    # STAGE:CHANNEL:Y:X: how that value of a stage's output was computed, for each image shown.
    trace: str | None = None
    # The first this many images are shown (pictures, attributions, the terminal's bar charts);
    # every image is predicted and counted.
    pictures: int = 16


# What each experiment command's own config section is.
COMMANDS: dict[str, type] = {
    "conv": ConvConfig, "pool": PoolConfig, "stack": StackConfig, "train": TrainConfig, "predict": PredictConfig, "top": TopConfig,
}
# Commands that run a stack of layers ([stack] layers), and the sections each command's file holds
# beside [data], [run] and [views] (by default, its own).
STACK_COMMANDS = ("stack", "train", "predict", "top")
OWN_SECTIONS = {"train": ("stack", "train"), "predict": ("stack", "predict"), "top": ("stack", "top")}


def command_sections(command: str) -> dict[str, type]:
    own = OWN_SECTIONS.get(command, (command,))
    return {name: COMMANDS[name] for name in own} | {"data": DataConfig, "run": RunConfig, "views": ViewConfig}


@dataclass(frozen=True)
class Experiment:
    """Data, an ordered tuple of stages the images go through, how to run, what to show.

    ``convlab conv`` and ``convlab pool`` are one-stage experiments whose config section is
    named after the stage's kind (``[conv]`` / ``[pool]``).
    """

    command: str
    stages: tuple[StageConfig, ...]
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    # convlab stack and train: where the stages came from (their text is derived from ``stages``).
    stack: StackConfig = field(default_factory=StackConfig)
    # convlab train only.
    train: TrainConfig = field(default_factory=TrainConfig)
    # convlab top only.
    top: TopConfig = field(default_factory=TopConfig)
    # convlab predict only.
    predict: PredictConfig = field(default_factory=PredictConfig)

    @property
    def is_stack(self) -> bool:
        """Stages written as PyTorch layers (``convlab stack``, ``train``, ``predict``)."""
        return self.command in STACK_COMMANDS

    @property
    def layer(self) -> StageConfig:
        """The stage of a one-stage experiment."""
        if len(self.stages) != 1:
            raise ValueError(f"a {len(self.stages)}-stage experiment has no single layer")
        return self.stages[0]

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass, in the order a config file lists them."""
        if not self.is_stack:
            return {self.command: self.layer, "data": self.data, "run": self.run, "views": self.views}
        layers = () if self.stack.pretrained else tuple(call_text(s) for s in self.stages)
        heads: dict[str, Any] = {"stack": dataclasses.replace(self.stack, layers=layers)}
        for name in OWN_SECTIONS.get(self.command, ())[1:]:
            heads[name] = getattr(self, name)
        return heads | {"data": self.data, "run": self.run, "views": self.views}
