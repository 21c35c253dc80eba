"""Each top activation's input patch: the window of the input that value reads (its receptive
field, from :func:`convlab.stack.input_window`), cropped from the image as it was loaded.

Where the window reaches past the image, what the layers read there is padding, not image: the
crop keeps a mask of which pixels are image, and the picture shows the rest as padding. The
images a top-k list points at are kept in an :class:`ImageStore` during the pass, and only those.
torch-free: numpy arrays and plain integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from convlab.stack import InputWindow

# Padding drawn as a checkerboard of two dark greys (as image editors draw "nothing here"),
# in cells of this many pixels of the upscaled patch.
PADDING_COLOURS = ((70, 70, 70), (110, 110, 110))
CHECKER = 4
# Each stage's patches are upscaled (nearest neighbour, one factor per stage) to about this many pixels.
PATCH_PIXELS = 56


@dataclass(frozen=True)
class Patch:
    """A crop of one image: ``pixels`` uint8 (h, w, C), ``inside`` (h, w): True where it is image."""

    pixels: np.ndarray
    inside: np.ndarray


def crop(image: np.ndarray, window: InputWindow, y: int, x: int) -> Patch:
    """The window of output (y, x) in ``image`` (C, H, W) uint8, as a (fh, fw) patch; pixels past the
    image are 0 in ``pixels`` and False in ``inside``."""
    c, height, width = image.shape
    fh, fw = window.field
    top, left = window.at(y, x)
    pixels = np.zeros((fh, fw, c), dtype=np.uint8)
    inside = np.zeros((fh, fw), dtype=bool)
    r0, r1 = max(top, 0), min(top + fh, height)
    c0, c1 = max(left, 0), min(left + fw, width)
    if r0 < r1 and c0 < c1:
        pixels[r0 - top : r1 - top, c0 - left : c1 - left] = image[:, r0:r1, c0:c1].transpose(1, 2, 0)
        inside[r0 - top : r1 - top, c0 - left : c1 - left] = True
    return Patch(pixels, inside)


def patch_zoom(field: tuple[int, int]) -> int:
    """The one upscaling factor of a stage's patches: about PATCH_PIXELS, never below 1."""
    return max(1, round(PATCH_PIXELS / max(field)))


def patch_picture(patch: Patch, zoom: int) -> np.ndarray:
    """The patch upscaled by ``zoom`` (nearest neighbour) as RGB (h*zoom, w*zoom, 3) uint8, the padding as
    a checkerboard."""
    pixels = patch.pixels if patch.pixels.shape[2] == 3 else np.repeat(patch.pixels[:, :, :1], 3, axis=2)
    big = pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)
    inside = patch.inside.repeat(zoom, axis=0).repeat(zoom, axis=1)
    if inside.all():
        return big
    rows, cols = np.indices(inside.shape)
    checker = np.asarray(PADDING_COLOURS, dtype=np.uint8)[((rows // CHECKER + cols // CHECKER) % 2)]
    return np.where(inside[:, :, None], big, checker)


class ImageStore:
    """The images (by dataset index) that some top-k list points at, as loaded: uint8 (C, H, W)."""

    def __init__(self) -> None:
        self.images: dict[int, np.ndarray] = {}

    def add(self, index: int, image: np.ndarray) -> None:
        if index not in self.images:
            self.images[index] = np.array(image, dtype=np.uint8, copy=True)

    def keep_only(self, indices: Iterable[int]) -> None:
        """Forget every image no list points at any more."""
        wanted = set(indices)
        for index in [i for i in self.images if i not in wanted]:
            del self.images[index]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]

    def __len__(self) -> int:
        return len(self.images)
