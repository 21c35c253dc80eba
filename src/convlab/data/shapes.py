"""The built-in ``shapes`` dataset: 32x32 shapes and textures in 10 classes, drawn from a seed.

Offline and deterministic: the same seed gives the same images, bit for bit, on any machine.
A split is drawn batch by batch as the run reads it (``ShapesStream``), so the first step needs
one chunk of images, not the whole split, and memory stays at one chunk whatever the split's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from convlab.data.imageset import ImageSet
from convlab.experiment import DataConfig

if TYPE_CHECKING:
    import torch

SHAPES_CLASSES = (
    "circle", "square", "triangle", "ring", "cross",
    "stripes-h", "stripes-v", "stripes-diag", "checkerboard", "dots",
)
SHAPES_SIZE = 32
# Images are drawn in chunks of this many, each chunk from its own random stream, so an image is
# the same whichever batch asks for it. A multiple of the 10 classes: every chunk, and so every
# split, holds as many images of each class (1,000 each in the test split, as CIFAR10).
SHAPES_CHUNK = 100


def _chunk_seed(seed: int, split: str, chunk: int) -> int:
    """The random stream of one chunk: its own for every (seed, split, chunk index)."""
    digest = hashlib.blake2b(f"shapes/{seed}/{split}/{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _chunk_labels(g: torch.Generator, n: int) -> torch.Tensor:
    """A chunk's labels: the first draw of its stream, so they are known without drawing pixels."""
    import torch

    return (torch.arange(n) % len(SHAPES_CLASSES))[torch.randperm(n, generator=g)]


@contextlib.contextmanager
def _one_thread():
    """A chunk's tensors are too small to gain from intra-op threads, and on a busy machine their
    spin-waiting made a chunk 20-30x slower (0.6-0.9 s against 0.03 s on 2 loaded cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ShapesStream:
    """The first ``n`` images of a split, drawn when sliced: ``stream[a:b]`` is uint8 (b - a, 3, size, size).

    Only the chunk drawn last is kept: a run reading its batches in order draws each chunk once,
    and holds one chunk (300 KB) whether the split has 10,000 images or 50,000.
    """

    def __init__(self, n: int, seed: int, split: str, size: int = SHAPES_SIZE):
        self.n, self.seed, self.split, self.size = n, seed, split, size
        self.chunks_drawn = 0  # how many times a chunk was drawn (each costs ~20 ms)
        self._held: tuple[int, torch.Tensor] | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n, 3, self.size, self.size)

    def __len__(self) -> int:
        return self.n

    def labels(self) -> torch.Tensor:
        """Every image's label, int64 (n,), without drawing any pixels."""
        import torch

        chunks = [_chunk_labels(self._generator(k), SHAPES_CHUNK) for k in range(-(-self.n // SHAPES_CHUNK))]
        return torch.cat(chunks)[: self.n] if chunks else torch.empty(0, dtype=torch.int64)

    def _generator(self, chunk: int) -> torch.Generator:
        import torch

        return torch.Generator().manual_seed(_chunk_seed(self.seed, self.split, chunk))

    def _chunk(self, k: int) -> torch.Tensor:
        if self._held is None or self._held[0] != k:
            # Every chunk is drawn whole (its random stream depends on its size), then cut.
            with _one_thread():
                self._held = (k, _draw_shapes(SHAPES_CHUNK, self._generator(k), self.size)[0])
            self.chunks_drawn += 1
        return self._held[1]

    def __getitem__(self, index: slice) -> torch.Tensor:
        import torch

        if not isinstance(index, slice):
            raise TypeError(f"ShapesStream takes a slice of images, not {index!r}")
        start, stop, step = index.indices(self.n)
        if step != 1:
            raise ValueError("ShapesStream slices must be contiguous (step 1)")
        stop = max(start, stop)
        out = torch.empty(stop - start, 3, self.size, self.size, dtype=torch.uint8)
        for k in range(start // SHAPES_CHUNK, -(-stop // SHAPES_CHUNK)):
            lo, hi = max(start, k * SHAPES_CHUNK), min(stop, (k + 1) * SHAPES_CHUNK)
            out[lo - start : hi - start] = self._chunk(k)[lo - k * SHAPES_CHUNK : hi - k * SHAPES_CHUNK]
        return out


def make_shapes(n: int, seed: int, split: str = "test", size: int = SHAPES_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a split at once, uint8 (n, 3, size, size), and their labels.

    The same pixels as ``--dataset shapes --seed SEED --split SPLIT`` serves batch by batch.
    """
    stream = ShapesStream(n, seed, split, size)
    return stream[0:n], stream.labels()


def _draw_shapes(n: int, g: torch.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk: ``n`` images and their labels, every class drawn for all its images at once."""
    import torch

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    labels = _chunk_labels(g, n)
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
    if cfg.max_batches is not None:  # only what the run will use (the same first images)
        n = min(n, cfg.max_batches * cfg.batch_size)
    stream = ShapesStream(n, seed, cfg.split)
    return ImageSet("shapes", cfg.split, stream, stream.labels(), SHAPES_CLASSES)
