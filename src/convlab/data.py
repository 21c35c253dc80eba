"""Datasets by name -> whole splits as one uint8 tensor (N, C, H, W).

Holding a split as one uint8 tensor (CIFAR10's test split is 30 MB) lets the pipeline slice
batches without per-image PIL -> ToTensor work. Adding a dataset is one ``DatasetSpec`` in
``DATASETS``: a function that says the image shape without loading, and one that loads.
"""

from __future__ import annotations

import contextlib
import io
import math
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from convlab.config import ConvlabError, DataConfig

if TYPE_CHECKING:
    import torch


class DataError(ConvlabError):
    """The data cannot be had: missing, corrupted, or no network to download it."""


@dataclass(frozen=True)
class ImageSet:
    name: str
    split: str
    images: "torch.Tensor"  # uint8, (N, C, H, W)
    labels: "torch.Tensor"  # int64, (N,)
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    summary: str
    # (C, H, W) of every image, known without loading (used by --dry-run and validation).
    shape: Callable[[DataConfig], tuple[int, int, int]]
    load: Callable[[DataConfig, int], ImageSet]
    # Number of images in each split, for progress bars and plans.
    split_sizes: dict[str, int]


# ----------------------------------------------------------------------------- cifar10

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Never hang on a dead network: torchvision's urlopen has no timeout of its own.
DOWNLOAD_TIMEOUT_S = 15


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def load_cifar10(cfg: DataConfig, seed: int) -> ImageSet:
    import torch
    from torchvision.datasets import CIFAR10

    root = Path(cfg.data_dir)
    archive = root / CIFAR10.filename
    folder = root / CIFAR10.base_folder
    train = cfg.split == "train"
    offline_hint = (
        f"put the official {CIFAR10.filename} (from {CIFAR10.url}) in {root}/ "
        "and run again, or use the built-in offline dataset: --dataset shapes"
    )
    # torchvision prints "Files already downloaded and verified" / "Downloading ..." on stdout;
    # keep stdout for convlab's own output.
    quiet = contextlib.redirect_stdout(io.StringIO())
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-dir {root} is a file, not a directory; choose another --data-dir")
    try:
        with quiet, _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # torchvision checks the official MD5 of every batch file before unpickling any.
            ds = CIFAR10(root=str(root), train=train, download=cfg.download)
    except (urllib.error.URLError, socket.timeout, ConnectionError, RuntimeError) as exc:
        if folder.exists():
            raise DataError(
                f"CIFAR10 files in {folder} are missing or fail torchvision's integrity (MD5) check; "
                f"delete that folder and {offline_hint}"
            ) from None
        if archive.exists():
            if not cfg.download:
                raise DataError(
                    f"{archive} is there but not extracted, and --no-download is set; run with "
                    "--download: torchvision checks its MD5 and extracts it without downloading"
                ) from None
            raise DataError(
                f"{archive} fails torchvision's integrity (MD5) check; delete it and {offline_hint}"
            ) from None
        if not isinstance(exc, RuntimeError):
            reason = getattr(exc, "reason", exc)
            raise DataError(f"cannot download CIFAR10 ({reason}); {offline_hint}") from None
        if not cfg.download:
            raise DataError(
                f"CIFAR10 not found in {root}/ and --no-download is set; use --download, or {offline_hint}"
            ) from None
        raise DataError(f"CIFAR10 could not be loaded ({exc}); {offline_hint}") from None
    except OSError as exc:
        # Not the network (caught above): the disk is full or read-only, or a file is in the way.
        raise DataError(
            f"cannot store CIFAR10 in {root}/: {exc.strerror or exc}; choose another --data-dir, "
            "or use the built-in offline dataset: --dataset shapes"
        ) from None

    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageSet("cifar10", cfg.split, images, labels, tuple(ds.classes))


# ----------------------------------------------------------------------------- shapes

SHAPES_CLASSES = (
    "circle", "square", "triangle", "ring", "cross",
    "stripes-h", "stripes-v", "stripes-diag", "checkerboard", "dots",
)
SHAPES_SIZE = 32
# Different splits must not share images, so each split gets its own stream of the seed.
_SPLIT_STREAM = {"test": 0, "train": 1}


def make_shapes(n: int, seed: int, size: int = SHAPES_SIZE) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``n`` RGB images of drawn shapes and textures, as uint8 (n, 3, size, size), and labels.

    Fully vectorised: every class is drawn for all its images at once. The same ``seed``
    gives the same images, bit for bit.
    """
    import torch

    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    labels = (torch.arange(n) % len(SHAPES_CLASSES))[torch.randperm(n, generator=g)]
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy = coords.view(1, size, 1).expand(1, size, size)
    xx = coords.view(1, 1, size).expand(1, size, size)

    # Per-image parameters, drawn for every image so the stream does not depend on labels.
    cx = (0.3 + 0.4 * rand(n, 1, 1)) * size
    cy = (0.3 + 0.4 * rand(n, 1, 1)) * size
    radius = (0.16 + 0.14 * rand(n, 1, 1)) * size
    theta = rand(n, 1, 1) * math.pi
    period = 4.0 + 6.0 * rand(n, 1, 1)
    phase = rand(n, 1, 1) * 2 * math.pi
    thick = 1.2 + 1.8 * rand(n, 1, 1)
    diag_sign = torch.where(rand(n, 1, 1) < 0.5, -1.0, 1.0)

    # Signed distance (negative inside) -> coverage with a one-pixel soft edge (anti-aliasing).
    def cover(sd: torch.Tensor) -> torch.Tensor:
        return (0.5 - sd).clamp(0.0, 1.0)

    mask = torch.empty(n, size, size)
    for k, name in enumerate(SHAPES_CLASSES):
        idx = (labels == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        dx, dy = xx - cx[idx], yy - cy[idx]
        c, s = torch.cos(theta[idx]), torch.sin(theta[idx])
        u, v = c * dx + s * dy, -s * dx + c * dy
        r, t, p = radius[idx], thick[idx], period[idx]
        dist = torch.sqrt(dx * dx + dy * dy)
        if name == "circle":
            m = cover(dist - r)
        elif name == "square":
            m = cover(torch.maximum(u.abs(), v.abs()) - r * 0.85)
        elif name == "triangle":
            sides = [
                torch.cos(theta[idx] + a) * dx + torch.sin(theta[idx] + a) * dy
                for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
            ]
            m = cover(torch.stack(sides).amax(0) - r * 0.55)
        elif name == "ring":
            m = cover((dist - r).abs() - t)
        elif name == "cross":
            bar1 = torch.maximum(u.abs() - t, v.abs() - r)
            bar2 = torch.maximum(u.abs() - r, v.abs() - t)
            m = cover(torch.minimum(bar1, bar2))
        elif name.startswith("stripes"):
            axis = {"stripes-h": yy, "stripes-v": xx}.get(name)
            if axis is None:
                axis = (xx + diag_sign[idx] * yy) / math.sqrt(2)
            wave = torch.sin(2 * math.pi * axis / p + phase[idx])
            m = (wave * p / 2).clamp(-0.5, 0.5) + 0.5
        elif name == "checkerboard":
            sx = torch.sin(math.pi * (xx - cx[idx]) / p)
            sy = torch.sin(math.pi * (yy - cy[idx]) / p)
            m = ((sx * sy) * p).clamp(-0.5, 0.5) + 0.5
        else:  # dots on a lattice
            lx = torch.remainder(xx - cx[idx], p) - p / 2
            ly = torch.remainder(yy - cy[idx], p) - p / 2
            m = cover(torch.sqrt(lx * lx + ly * ly) - p * 0.28)
        mask[idx] = m

    # Backgrounds: half linear gradients between two colours, half smooth random textures.
    col_a, col_b = rand(n, 3, 1, 1), rand(n, 3, 1, 1)
    ramp = (torch.cos(theta * 2).unsqueeze(1) * (xx - size / 2).unsqueeze(1)
            + torch.sin(theta * 2).unsqueeze(1) * (yy - size / 2).unsqueeze(1)) / size + 0.5
    gradient = col_a + (col_b - col_a) * ramp.clamp(0, 1)
    coarse = rand(n, 3, 5, 5)
    texture = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    texture = col_a * 0.5 + texture.clamp(0, 1) * 0.5
    background = torch.where(rand(n, 1, 1, 1) < 0.5, gradient, texture)

    # Foreground colour far enough in brightness from the background to be seen.
    fg = rand(n, 3, 1, 1)
    lum = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    bg_lum = (background.mean((2, 3), keepdim=True) * lum).sum(1, keepdim=True)
    fg = torch.where(bg_lum > 0.5, fg * 0.35, 0.65 + fg * 0.35)

    m = mask.unsqueeze(1)
    img = background * (1 - m) + fg * m
    img = img + (rand(n, 1, size, size) - 0.5) * 0.04
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.to(torch.int64)


def load_shapes(cfg: DataConfig, seed: int) -> ImageSet:
    n = SHAPES_SPLITS[cfg.split]
    images, labels = make_shapes(n, seed=seed * 2 + _SPLIT_STREAM[cfg.split])
    return ImageSet("shapes", cfg.split, images, labels, SHAPES_CLASSES)


SHAPES_SPLITS = {"test": 10_000, "train": 50_000}
CIFAR10_SPLITS = {"test": 10_000, "train": 50_000}

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR10 through torchvision (downloads on first use, MD5-checked)",
        lambda cfg: (3, 32, 32),
        load_cifar10,
        CIFAR10_SPLITS,
    ),
    "shapes": DatasetSpec(
        "shapes",
        "built-in 32x32 shapes and textures in 10 classes (offline, deterministic)",
        lambda cfg: (3, SHAPES_SIZE, SHAPES_SIZE),
        load_shapes,
        SHAPES_SPLITS,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def load(cfg: DataConfig, seed: int) -> ImageSet:
    return get_dataset(cfg.dataset).load(cfg, seed)
