"""Your images as the model sees them.

Found from the paths given (files, and folders of them: a folder whose images all sit in
first-level subfolders names each image's class by its subfolder, as torchvision's ImageFolder
does), then read exactly as the training images were read (:func:`convlab.data.folder.read`:
upright by EXIF, transparency over white, 16-bit and palette images resolved, grey <-> RGB,
torchvision's Resize + CenterCrop), each with what was done to it in words and warnings where
it is far from what the model was trained on. Read in batches, the next one on a thread while
the model runs on this one, so memory stays at two batches however many images there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convlab.data.folder import FOLDER_FORMAT_NAMES, UNREADABLE, Reading, header_size, printable, read, walk_files
from convlab.data.imageset import DataError

if TYPE_CHECKING:
    import torch

# Shrunk more than this many times, a photo's details are gone (the model sees a thumbnail).
MAX_SHRINK = 8
# A centre crop that keeps less than this share of the picture leaves much of it unseen.
MIN_KEPT = 0.5
# A mean brightness (0 black .. 1 white) this far from the training images' is far from what
# the model saw: MNIST's digits are light on black (0.13), a digit drawn on paper is ~0.9. Real
# photos vary: 5% of CIFAR-10's test images are 0.25 from its mean, 0.25% are 0.4 (measured).
BRIGHTNESS_GAP = 0.4


@dataclass(frozen=True)
class ImageFile:
    path: Path
    name: str  # as shown: the path given, or the folder given joined with the path inside it
    label: str | None = None  # its class subfolder, in a folder of class subfolders
    given: bool = True  # named on the command line (unreadable: an error), not found in a folder (skipped)


@dataclass(frozen=True)
class Found:
    """The images to predict, in order, and what was found beside them."""

    files: tuple[ImageFile, ...]
    skipped: tuple[tuple[str, str], ...]  # (name, why): files in the folders that are not images
    notes: tuple[str, ...]  # per folder given: how many files, and their classes


def find_images(paths: Sequence[str]) -> Found:
    """The image files that ``paths`` name, a folder's in sorted path order (nothing decoded;
    a file given by name is checked from its header)."""
    files: list[ImageFile] = []
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    for given in paths:
        path = Path(given)
        shown = printable(given)
        if not path.exists():
            raise DataError(f"image not found: {shown} (no such file or folder)")
        if not path.is_dir():
            if header_size(path) is None:
                raise DataError(f"{shown} is not an image convlab reads: it reads {FOLDER_FORMAT_NAMES} files")
            files.append(ImageFile(path, shown))
            continue
        inside = walk_files(path)
        # A file beside the subfolders is read only to see whether it is an image (a README is not).
        loose = {p for p in inside if p.parent == path}  # a set: a flat folder of n files was n^2 list lookups
        loose_images = {p for p in loose if header_size(p) is not None}
        by_class = not loose_images and len(loose) < len(inside)
        before = len(files)
        for p in inside:
            if p in loose and p not in loose_images:
                skipped.append((printable(str(path / p.name)), "not an image convlab reads"))
                continue
            rel = p.relative_to(path)
            files.append(ImageFile(p, printable(str(path / rel)), printable(rel.parts[0]) if by_class else None, given=False))
        count = len(files) - before
        if not count:
            raise DataError(f"{shown} holds no images: convlab reads {FOLDER_FORMAT_NAMES} files, in subfolders too")
        classes = sorted({f.label for f in files[before:]})
        labels = f", labelled by their {len(classes)} class subfolders: {', '.join(classes)}" if by_class else ""
        notes.append(f"{shown}: {count} image file(s){labels}")
    return Found(tuple(files), tuple(skipped), tuple(notes))


# ----------------------------------------------------------------------------- as the model sees them


@dataclass(frozen=True)
class Seen:
    """One image as the model sees it: the reading (pixels and what was done) and warnings."""

    file: ImageFile
    reading: Reading
    warnings: tuple[str, ...]

    @property
    def brightness(self) -> float:
        return float(self.reading.pixels.mean()) / 255


@dataclass(frozen=True)
class ModelInput:
    """What the model takes, (C, H, W), and the images it was trained on: their dataset and
    mean per channel (None: unknown, and no brightness is compared)."""

    shape: tuple[int, int, int]
    dataset: str
    mean: tuple[float, ...] | None = None

    @property
    def size(self) -> int | tuple[int, int]:
        """What :func:`convlab.data.folder.read` makes an image: N for NxN (Resize + CenterCrop)."""
        _, h, w = self.shape
        return h if h == w else (h, w)

    def see(self, file: ImageFile) -> Seen:
        reading = read(file.path, self.size, self.shape[0] == 1)
        return Seen(file, reading, tuple(self.warnings(reading)))

    def warnings(self, r: Reading) -> list[str]:
        """Where an image is far from what the model was trained on, and what to do about it."""
        _, h, w = self.shape
        out = []
        if r.scale < 1 / MAX_SHRINK:
            out.append(
                f"shrunk {1 / r.scale:.0f}x to {h}x{w}, the size the model was trained on: a detail smaller than "
                f"{1 / r.scale:.0f} pixels of the picture is gone; crop the picture to its subject first"
            )
        if r.kept < MIN_KEPT:
            out.append(f"the centre crop keeps {r.kept:.0%} of the picture: what is off-centre is not seen; crop it to its subject first")
        if self.mean is not None:
            seen, trained = float(r.pixels.mean()) / 255, sum(self.mean) / len(self.mean)
            if abs(seen - trained) > BRIGHTNESS_GAP:
                text = f"its mean brightness {seen:.2f} (0 black, 1 white) is far from the {self.dataset} training images' {trained:.2f}"
                if abs((1 - seen) - trained) < abs(seen - trained) / 2:
                    light, dark = ("light", "dark") if seen > trained else ("dark", "light")
                    text += (f": it is mostly {light} where they are mostly {dark} (e.g. a digit drawn dark on white paper, "
                             "where MNIST's are light on black); try it inverted")
                out.append(text)
        return out


# ----------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Images ``start .. start + len(seen) - 1`` (counting only the images read), as uint8."""

    start: int
    pixels: torch.Tensor  # uint8 (n, C, H, W)
    seen: list[Seen]
    skipped: list[tuple[str, str]]  # (name, why): files in a folder that could not be read


def _read_batch(files: Sequence[ImageFile], model_input: ModelInput, start: int) -> Batch:
    import numpy as np
    import torch
    from PIL import Image

    seen, skipped = [], []
    for file in files:
        try:
            seen.append(model_input.see(file))
        except (*UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            skipped.append((file.name, unreadable_reason(exc)))
    c, h, w = model_input.shape
    # Assembled in numpy: a per-image torch copy costs milliseconds of intra-op thread start-up.
    pixels = np.empty((len(seen), c, h, w), dtype=np.uint8)
    for i, s in enumerate(seen):
        pixels[i] = s.reading.pixels.transpose(2, 0, 1)
    return Batch(start, torch.from_numpy(pixels), seen, skipped)


def unreadable_reason(exc: BaseException) -> str:
    """Why Pillow could not read an image, in one short line."""
    text = " ".join(str(exc).split())[:120]
    if "too long to resize" in text:
        return text
    if "decompression bomb" in text.lower():
        return "too many pixels (Pillow's decompression-bomb limit)"
    return f"cannot be decoded ({text or type(exc).__name__})"


def batches(files: Sequence[ImageFile], model_input: ModelInput, batch_size: int) -> Iterator[Batch]:
    """The images in batches of up to ``batch_size`` (fewer where files are skipped), the next
    batch read on a thread while the caller works on this one: reading is mostly Pillow's
    Python, the model mostly torch's kernels, which let go of the GIL."""
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="convlab-read") as pool:
        pending = pool.submit(_read_batch, chunks[0], model_input, 0)
        try:
            for k in range(len(chunks)):
                batch = pending.result()
                if k + 1 < len(chunks):
                    pending = pool.submit(_read_batch, chunks[k + 1], model_input, batch.start + len(batch.seen))
                yield batch
        finally:
            pending.cancel()
