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

from convlab.data.downloaded import (
    ACCEPTED_CHECKSUMS,
    CHECKSUMS,
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_mnist,
    register_checksums,
)
from convlab.data.folder import count_folder, folder_image_size, folder_shape, load_folder, read, scan_folder
from convlab.data.imageset import DataError, ImageSet
from convlab.data.shapes import SHAPES_CHUNK, SHAPES_CLASSES, SHAPES_SIZE, load_shapes, make_shapes
from convlab.experiment import DataConfig

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
    # The classes the labels name, in label order (a classifier's last stage gives one score
    # each), known without loading; for a folder, its class subfolders (none: unlabelled).
    classes: tuple[str, ...] | Callable[[DataConfig], tuple[str, ...]] = ()
    # The training images' mean per channel, in [0, 1] (what a learner's own image is compared
    # with); None where it cannot be known without the images and they are not there.
    mean: tuple[float, ...] | Callable[[DataConfig], tuple[float, ...] | None] | None = None

    def num_images(self, cfg: DataConfig) -> int:
        if callable(self.split_sizes):
            return self.split_sizes(cfg)
        return self.split_sizes[cfg.split]

    def class_names(self, cfg: DataConfig) -> tuple[str, ...]:
        return self.classes(cfg) if callable(self.classes) else self.classes

    def class_count(self, cfg: DataConfig) -> int:
        return len(self.class_names(cfg))

    def channel_mean(self, cfg: DataConfig) -> tuple[float, ...] | None:
        return self.mean(cfg) if callable(self.mean) else self.mean

    @property
    def has_splits(self) -> bool:
        """A train and a test split; a folder is one set of images."""
        return not callable(self.split_sizes)


def _folder_classes(cfg: DataConfig) -> tuple[str, ...]:
    return scan_folder(Path(cfg.data_dir)).classes


# Images a folder's mean is taken over (evenly spaced through it): a mean, not a census.
MEAN_SAMPLE = 64


def _folder_mean(cfg: DataConfig) -> tuple[float, ...] | None:
    """A folder's mean per channel, over up to MEAN_SAMPLE of its images read as training read
    them; None when the folder is not there (e.g. a training run's folder since moved)."""
    import numpy as np

    root = Path(cfg.data_dir)
    if not root.exists():
        return None
    files = scan_folder(root).files
    picked = files[:: max(1, len(files) // MEAN_SAMPLE)][:MEAN_SAMPLE]
    size = folder_image_size(cfg)
    sums = [read(path, size, cfg.grayscale).pixels.reshape(-1, 1 if cfg.grayscale else 3).mean(0) for path in picked]
    return tuple(float(v) / 255 for v in np.mean(sums, axis=0))


@functools.cache
def _shapes_mean() -> tuple[float, ...]:
    images, _ = make_shapes(SHAPES_CHUNK * 2, seed=0)
    return tuple((images.float().mean((0, 2, 3)) / 255).tolist())


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
# The training splits' mean per channel, as PyTorch's examples and tutorials normalise with them.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
# shapes has CIFAR's split sizes, so a run on it takes as many steps as the same run on CIFAR10.
SHAPES_SPLITS = CIFAR_SPLITS

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR10 (downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        load_cifar10,
        CIFAR_SPLITS,
        CIFAR10_CLASSES,
        CIFAR10_MEAN,
    ),
    "shapes": DatasetSpec(
        "shapes",
        "built-in 32x32 shapes and textures in 10 classes (offline, deterministic)",
        _fixed_shape(3, SHAPES_SIZE, SHAPES_SIZE),
        functools.partial(load_shapes, split_sizes=SHAPES_SPLITS),
        SHAPES_SPLITS,
        SHAPES_CLASSES,
        lambda cfg: _shapes_mean(),
    ),
    "folder": DatasetSpec(
        "folder",
        "every image under --data-dir (PNG, JPEG, BMP, GIF, WebP); classes from ImageFolder subfolders",
        folder_shape,
        load_folder,
        count_folder,
        _folder_classes,
        _folder_mean,
    ),
    "mnist": DatasetSpec(
        "mnist",
        "MNIST handwritten digits, 28x28 grey (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        load_mnist,
        MNIST_SPLITS,
        MNIST_CLASSES,
        (0.1307,),
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "Fashion-MNIST clothes, 28x28 grey (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        load_fashion_mnist,
        MNIST_SPLITS,
        FASHION_MNIST_CLASSES,
        (0.2860,),
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        "CIFAR100 (100 fine classes; downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        load_cifar100,
        CIFAR_SPLITS,
        CIFAR100_CLASSES,
        CIFAR100_MEAN,
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
