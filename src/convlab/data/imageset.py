"""What every dataset loader returns: a split's images and labels, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from convlab.errors import ConvlabError

if TYPE_CHECKING:
    import torch


class DataError(ConvlabError):
    """The data cannot be had: missing, corrupted, or no network to download it."""


class Pixels(Protocol):
    """uint8 images (N, C, H, W) that slice like a tensor: ``pixels[a:b]`` is a uint8 tensor.

    A tensor is one; so is a source that draws its images only when a slice asks for them
    (the built-in shapes).
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, index: slice) -> torch.Tensor: ...


@dataclass(frozen=True)
class ImageSet:
    name: str
    split: str
    # uint8, (N, C, H, W): a tensor (may be a strided view, e.g. of NHWC data) or a source drawing
    # them on demand; read it with batch(), which works for both.
    images: Pixels
    labels: torch.Tensor  # int64, (N,); -1 where the images have no class
    classes: tuple[str, ...]
    # What the user should know about where the images came from (shown in the terminal).
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Images ``start:stop`` as uint8 (n, C, H, W), contiguous (ready for ``.to(device)``)."""
        return self.images[start:stop].contiguous()

    def batch_labels(self, start: int, stop: int) -> torch.Tensor:
        """Labels of images ``start:stop``, int64 (n,); -1 where the images have no class."""
        return self.labels[start:stop]

    def describe(self) -> str:
        """The images, their source and their classes (label: name, count) as plain text."""
        lines = [f"{self.name} ({self.split}): {len(self)} images of {self.image_shape} (C, H, W)", *self.notes]
        if self.classes:
            counts = self.labels[self.labels >= 0].bincount(minlength=len(self.classes)).tolist()
            listed = ", ".join(f"{i} {name} ({n})" for i, (name, n) in enumerate(zip(self.classes, counts)))
            lines.append(f"classes (label name (images)): {listed}")
        else:
            lines.append("unlabelled")
        return "\n".join(lines)
