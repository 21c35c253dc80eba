"""The built-in ``shapes`` dataset: 32x32 shapes and textures in 10 classes, drawn from a seed.

Offline and deterministic: the same seed gives the same images, bit for bit, on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from convlab.config import DataConfig
from convlab.data.imageset import ImageSet

if TYPE_CHECKING:
    import torch

SHAPES_CLASSES = (
    "circle", "square", "triangle", "ring", "cross",
    "stripes-h", "stripes-v", "stripes-diag", "checkerboard", "dots",
)
SHAPES_SIZE = 32
# Different splits must not share images, so each split gets its own stream of the seed.
_SPLIT_STREAM = {"test": 0, "train": 1}
SHAPES_CHUNK = 1000


def make_shapes(n: int, seed: int, size: int = SHAPES_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` RGB images of drawn shapes and textures, as uint8 (n, 3, size, size), and labels.

    Drawn in chunks of ``SHAPES_CHUNK`` images, each from its own stream of ``seed``: the
    float work space stays at a few chunks' worth (drawing 10,000 at once peaked near 1.4 GB),
    and the first ``m`` images are the same whether ``m`` or all ``n`` are made. The same
    ``seed`` gives the same images, bit for bit.
    """
    import torch

    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    for start in range(0, n, SHAPES_CHUNK):
        # Every chunk is drawn whole (its random stream depends on its size), then cut.
        chunk_images, chunk_labels = _draw_shapes(SHAPES_CHUNK, (seed * 1_000_003 + start // SHAPES_CHUNK) % 2**63, size)
        end = min(n, start + SHAPES_CHUNK)
        images[start:end] = chunk_images[: end - start]
        labels[start:end] = chunk_labels[: end - start]
    return images, labels


def _draw_shapes(n: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of ``make_shapes``: every class drawn for all its images at once."""
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


def load_shapes(cfg: DataConfig, seed: int, split_sizes: Mapping[str, int]) -> ImageSet:
    n = split_sizes[cfg.split]
    if cfg.max_batches is not None:  # draw only what the run will use (the same first images)
        n = min(n, cfg.max_batches * cfg.batch_size)
    images, labels = make_shapes(n, seed=seed * 2 + _SPLIT_STREAM[cfg.split])
    return ImageSet("shapes", cfg.split, images, labels, SHAPES_CLASSES)
