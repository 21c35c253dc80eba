"""Datasets by name -> an ImageSet: a split's uint8 images (N, C, H, W), read batch by batch.

A split is one uint8 tensor (CIFAR10's test split is 30 MB), so batches are slices with no
per-image PIL -> ToTensor work, or, for the built-in shapes, drawn as they are asked for.
Adding a dataset is one ``DatasetSpec`` in ``DATASETS``: a function that says the image shape
without loading, and one that loads.

Where each dataset is read: ``downloaded`` (CIFAR10, CIFAR100, MNIST, Fashion-MNIST: from disk,
torchvision only to download), ``shapes`` (the built-in offline set), ``folder`` (your own images).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from convlab.config import DataConfig
from convlab.data.downloaded import (
    ACCEPTED_CHECKSUMS,
    CHECKSUMS,
    CIFAR10_CLASSES,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_mnist,
    register_checksums,
)
from convlab.data.folder import count_folder, folder_shape, load_folder, scan_folder
from convlab.data.imageset import DataError, ImageSet
from convlab.data.shapes import SHAPES_CLASSES, SHAPES_SIZE, load_shapes, make_shapes

__all__ = [
    "ACCEPTED_CHECKSUMS", "CHECKSUMS", "CIFAR10_CLASSES", "DATASETS", "SHAPES_CLASSES", "SHAPES_SPLITS", "DataError",
    "DatasetSpec", "ImageSet", "dataset_help", "folder_shape", "get_dataset", "load", "make_shapes",
    "register_checksums",
]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    summary: str  # one line for --help (see dataset_help)
    # (C, H, W) of every image, known without loading (used by --dry-run and validation).
    shape: Callable[[DataConfig], tuple[int, int, int]]
    load: Callable[[DataConfig, int], ImageSet]
    # Images in each split, for progress bars and plans; or, for a dataset whose size depends on
    # the config (a folder), a function that counts them without decoding any.
    split_sizes: Mapping[str, int] | Callable[[DataConfig], int]
    # How many classes the labels name (what a classifier's last stage must output), known
    # without loading; for a folder, counted from its class subfolders (0: none).
    num_classes: int | Callable[[DataConfig], int] = 10

    def num_images(self, cfg: DataConfig) -> int:
        if callable(self.split_sizes):
            return self.split_sizes(cfg)
        return self.split_sizes[cfg.split]

    def class_count(self, cfg: DataConfig) -> int:
        return self.num_classes(cfg) if callable(self.num_classes) else self.num_classes

    @property
    def has_splits(self) -> bool:
        """A train and a test split; a folder is one set of images."""
        return not callable(self.split_sizes)


def _folder_classes(cfg: DataConfig) -> int:
    return len(scan_folder(Path(cfg.data_dir)).classes)


def _fixed_shape(channels: int, height: int, width: int) -> Callable[[DataConfig], tuple[int, int, int]]:
    """The shape of a dataset whose images are all one known size; folder-only options are errors."""

    def shape(cfg: DataConfig) -> tuple[int, int, int]:
        if cfg.image_size is not None:
            raise DataError(
                f"--image-size applies to --dataset folder only; {cfg.dataset} images are "
                f"{height}x{width} (HxW) as they come"
            )
        if cfg.grayscale and channels != 1:
            raise DataError(
                f"--grayscale applies to --dataset folder (and already grey datasets such as mnist) only; "
                f"{cfg.dataset} images have {channels} channels"
            )
        return (channels, height, width)

    return shape


CIFAR_SPLITS = {"test": 10_000, "train": 50_000}
MNIST_SPLITS = {"test": 10_000, "train": 60_000}
# shapes has CIFAR's split sizes, so a run on it takes as many steps as the same run on CIFAR10.
SHAPES_SPLITS = CIFAR_SPLITS

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR10 (downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        load_cifar10,
        CIFAR_SPLITS,
    ),
    "shapes": DatasetSpec(
        "shapes",
        "built-in 32x32 shapes and textures in 10 classes (offline, deterministic)",
        _fixed_shape(3, SHAPES_SIZE, SHAPES_SIZE),
        functools.partial(load_shapes, split_sizes=SHAPES_SPLITS),
        SHAPES_SPLITS,
    ),
    "folder": DatasetSpec(
        "folder",
        "every image under --data-dir (PNG, JPEG, BMP, GIF, WebP); classes from ImageFolder subfolders",
        folder_shape,
        load_folder,
        count_folder,
        _folder_classes,
    ),
    "mnist": DatasetSpec(
        "mnist",
        "MNIST handwritten digits, 28x28 grey (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        load_mnist,
        MNIST_SPLITS,
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "Fashion-MNIST clothes, 28x28 grey (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        load_fashion_mnist,
        MNIST_SPLITS,
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        "CIFAR100 (100 fine classes; downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        load_cifar100,
        CIFAR_SPLITS,
        100,
    ),
}


def dataset_help() -> str:
    """Each dataset's name and summary, one per line (for the CLI's --dataset help)."""
    return "\n".join(f"{spec.name}: {spec.summary}" for spec in DATASETS.values())


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def load(cfg: DataConfig, seed: int) -> ImageSet:
    return get_dataset(cfg.dataset).load(cfg, seed)
