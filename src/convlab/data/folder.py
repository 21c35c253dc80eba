"""``--dataset folder``: every image under a folder (or one image file), resized to one size.

Found from file headers first (nothing decoded), so a plan or ``--dry-run`` knows the count and
the shape at once; first-level subfolders are classes when every image is in one (ImageFolder).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convlab.config import DataConfig
from convlab.data.imageset import DataError, ImageSet

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

FOLDER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # Pillow's names
FOLDER_FORMAT_NAMES = "PNG, JPEG, BMP, GIF (first frame) and WebP"
FOLDER_IMAGE_SIZE = 128
# A folder is held in memory as one uint8 tensor, like every dataset: refuse what would not fit
# comfortably with one clear line, rather than being killed by the OS half-way through.
FOLDER_MAX_BYTES = 4 << 30
_EXIF_ORIENTATION = 0x0112
_UNREADABLE = (OSError, SyntaxError, ValueError)  # what Pillow raises for bad files (OSError covers UnidentifiedImageError)


@dataclass(frozen=True)
class FolderScan:
    """Every image under a folder, found from file headers alone: nothing is decoded."""

    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...]  # -1 each when the folder is not in ImageFolder layout
    classes: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]  # (H, W) as shown, EXIF orientation applied
    skipped: tuple[Path, ...]  # files that are not readable images in FOLDER_FORMATS

    def name(self, path: Path) -> str:
        shown = path.name if path == self.root else path.relative_to(self.root).as_posix()
        return printable(shown)


def printable(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (kept by Python as surrogates)
    shown as ``\\xff`` escapes, so terminals and TensorBoard's text records can hold it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _walk(root: Path) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself), hidden names left out, in a fixed order."""
    if not root.is_dir():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .ipynb_checkpoints, ...
        found += [Path(folder, n) for n in names if not n.startswith(".")]
    # By path components, so each class folder's files stay together in sorted class order.
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) as shown, from the file's header alone; None for anything that is not an image
    convlab reads: not a regular file (a pipe would block, a device never end), not one of
    FOLDER_FORMATS, or over Pillow's decompression-bomb limit (refused here, never a warning)."""
    import warnings

    from PIL import Image

    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=FOLDER_FORMATS)
        with im:
            w, h = im.size
            if im.format == "PNG":  # Pillow's PNG getexif() decodes the image to look for a late eXIf
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            turned = exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
    except (*_UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    return (w, h) if turned else (h, w)


def scan_folder(root: Path) -> FolderScan:
    """Find the images under ``root``; first-level subfolders are classes when every image is in one."""
    if not root.exists():
        raise DataError(
            f"--data-dir {root} does not exist; for --dataset folder, point --data-dir at a folder "
            "of images (or at one image file)"
        )
    files, sizes, skipped = [], [], []
    for path in _walk(root):
        size = _header_size(path)
        if size is None:
            skipped.append(path)
        else:
            files.append(path)
            sizes.append(size)
    scan = FolderScan(root, tuple(files), (), (), tuple(sizes), tuple(skipped))
    if not files:
        found = f"only {_skipped_text(scan)}" if skipped else "nothing: it is empty"
        raise DataError(
            f"--dataset folder found no images under {root}, {found}; it reads {FOLDER_FORMAT_NAMES} "
            "files, in subfolders too"
        )
    parts = [p.relative_to(root).parts if p != root else () for p in files]
    if all(len(part) > 1 for part in parts):  # ImageFolder layout: root/<class>/.../image
        classes = tuple(sorted({part[0] for part in parts}))
        _check_classes(root, classes)
        index = {name: i for i, name in enumerate(classes)}
        labels = tuple(index[part[0]] for part in parts)
        classes = tuple(printable(c) for c in classes)
    else:
        classes, labels = (), (-1,) * len(files)
    return dataclasses.replace(scan, labels=labels, classes=classes)


# First-level folders that name a split, not a class: a dataset's train/test layout.
SPLIT_FOLDERS = frozenset({"train", "test", "val", "valid", "validation"})


def _check_classes(root: Path, classes: tuple[str, ...]) -> None:
    """The class folders are classes: not a train/test layout (which would be mixed into one set,
    its splits taken as classes), and none without images (ImageFolder refuses those: left out,
    every later class's label would shift)."""
    splits = sorted(SPLIT_FOLDERS & {c.lower() for c in classes})
    if "train" in splits and len(splits) > 1:
        raise DataError(
            f"--dataset folder: {printable(str(root))} holds {' and '.join(s + '/' for s in splits)}, a dataset's "
            "train/test layout, not classes; it is never mixed into one set: point --data-dir at one of them "
            f"(e.g. {printable(str(root / 'train'))}, whose subfolders are the classes)"
        )
    empty = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in classes)
    if empty:
        raise DataError(
            f"--dataset folder: the class folder {printable(str(root / empty[0]))} holds no image "
            f"({len(empty)} such folder(s)); as torchvision's ImageFolder, convlab refuses it (leaving it out would "
            "renumber every later class): add its images, or move it out of --data-dir"
        )


def _skipped_text(scan: FolderScan, limit: int = 5) -> str:
    names = ", ".join(scan.name(p) for p in scan.skipped[:limit])
    more = f" and {len(scan.skipped) - limit} more" if len(scan.skipped) > limit else ""
    return f"{len(scan.skipped)} file(s) that are not readable images ({names}{more})"


def folder_image_size(cfg: DataConfig) -> int:
    return FOLDER_IMAGE_SIZE if cfg.image_size is None else cfg.image_size


def folder_shape(cfg: DataConfig, scan: FolderScan | None = None) -> tuple[int, int, int]:
    if cfg.split == "train":
        raise DataError(
            "--dataset folder has no train/test split: it reads every image under --data-dir; drop "
            "--split train, or point --data-dir at the subfolder you mean (e.g. data/train)"
        )
    scan = scan or scan_folder(Path(cfg.data_dir))
    channels = 1 if cfg.grayscale else 3
    size = folder_image_size(cfg)
    if size:
        return (channels, size, size)
    common, _ = collections.Counter(scan.sizes).most_common(1)[0]
    odd = [(p, hw) for p, hw in zip(scan.files, scan.sizes) if hw != common]
    if odd:
        path, (h, w) = odd[0]
        raise DataError(
            f"--image-size 0 keeps each image's own size, so all must be one size, but {len(odd)} of "
            f"{len(scan.files)} images differ from the most common {common[0]}x{common[1]} (HxW), e.g. "
            f"{scan.name(path)} is {h}x{w}; use --image-size N to resize and centre-crop all to NxN"
        )
    return (channels, *common)


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    """RGB or L from any mode: transparency over white, 16-bit greys scaled (not clipped) to 8 bits."""
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I"):  # I;16 (16-bit PNG), I: Pillow's convert would clip all above 255 to white
        im = Image.fromarray((np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
    return im.convert(mode)


# An image whose shorter side is resized to --image-size must not become absurdly long: a
# 300000x1 PNG of 957 bytes would be 38,400,000x128 (14 GiB) before its centre is cut.
MAX_RESIZED_PIXELS = 1 << 26


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(H, W) after torchvision's ``Resize(size)``: the shorter side to ``size``."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (new_long, size) if width <= height else (size, new_long)


def resize_and_crop(im: Image.Image, size: int) -> Image.Image:
    """torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on a PIL image, pixel for pixel.

    The shorter side goes to ``size`` (the longer to ``int(size * long / short)``, bilinear,
    as torchvision asks PIL), then the centre square is cut (top/left rounded as torchvision
    rounds). Done with PIL directly because importing torchvision's transforms costs 1.2-1.9 s
    (they load ``torch._dynamo``), more than reading a folder of images; tests/test_folder.py
    holds it to torchvision's result.
    """
    from PIL import Image

    w, h = im.size
    new_h, new_w = resized_size(h, w, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), resample=Image.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def read_image(path: Path, size: int, grayscale: bool) -> np.ndarray:
    """One image as uint8 (H, W, C): upright, RGB or grey, resized and centre-cropped to size x size (0: as is)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path, formats=FOLDER_FORMATS) as im:
        w, h = im.size
        if size and im.format == "JPEG" and min(w, h) >= 2 * size:
            # Let libjpeg decode a photo at 1/2..1/8 scale, still at least size on its shorter
            # side (as PIL's thumbnail does): several times faster, and it is resized below anyway.
            im.draft(None, (math.ceil(w * size / min(w, h)), math.ceil(h * size / min(w, h))))
        im = _to_mode(ImageOps.exif_transpose(im), "L" if grayscale else "RGB")
    if size:
        im = resize_and_crop(im, size)
    pixels = np.asarray(im)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def load_folder(cfg: DataConfig, seed: int) -> ImageSet:
    import numpy as np
    import torch
    from PIL import Image

    root = Path(cfg.data_dir)
    scan = scan_folder(root)
    c, h, w = folder_shape(cfg, scan)
    size = folder_image_size(cfg)
    total = len(scan.files)
    # Only the images the run will use are decoded: --max-batches 1 over a photo library is quick.
    wanted = total if cfg.max_batches is None else min(total, cfg.max_batches * cfg.batch_size)
    if wanted * c * h * w > FOLDER_MAX_BYTES:
        raise DataError(
            f"{wanted} images of {c}x{h}x{w} need {wanted * c * h * w / 2**30:.1f} GiB in memory (at most "
            f"{FOLDER_MAX_BYTES / 2**30:.0f}); use a smaller --image-size or fewer --max-batches"
        )
    # Assembled in numpy: a per-image torch copy costs milliseconds in intra-op thread start-up
    # (measured 2.3 s vs 0.02 s for 300 images of 128x128 on a busy 2-core machine).
    images = np.empty((wanted, c, h, w), dtype=np.uint8)
    labels, unreadable, n = [], [], 0
    too_long = []
    for path, label, (ih, iw) in zip(scan.files, scan.labels, scan.sizes):
        if n == wanted:
            break
        if size and math.prod(resized_size(ih, iw, size)) > MAX_RESIZED_PIXELS:
            too_long.append((path, (ih, iw)))  # refused from its header, before any decoding
            continue
        try:
            pixels = read_image(path, size, cfg.grayscale)
        except (*_UNREADABLE, Image.DecompressionBombError):
            unreadable.append(path)  # a valid header over broken data, e.g. a truncated download
            continue
        if pixels.shape != (h, w, c):  # pragma: no cover - a header that lies about the size
            unreadable.append(path)
            continue
        images[n] = pixels.transpose(2, 0, 1)
        labels.append(label)
        n += 1
    scan = dataclasses.replace(scan, skipped=scan.skipped + tuple(unreadable))
    long_text = ""
    if too_long:
        path, (ih, iw) = too_long[0]
        rh, rw = resized_size(ih, iw, size)
        long_text = (
            f"{len(too_long)} image(s) too long to resize to --image-size {size} "
            f"(e.g. {scan.name(path)}: {ih}x{iw} would become {rh:,}x{rw:,})"
        )
    if n == 0:
        found = "; ".join(t for t in (_skipped_text(scan) if scan.skipped else "", long_text) if t)
        raise DataError(f"--dataset folder found {found} under {root}, and no image it could read")

    first = f", the first of {total} for --max-batches" if wanted < total else ""
    notes = [f"{n} image(s) from {root}{first}"]
    if scan.classes:
        notes.append(f"{len(scan.classes)} classes from the first-level subfolders: {', '.join(scan.classes)}")
    if size:
        notes.append(f"each resized (shorter side to {size}) and centre-cropped to {size}x{size}")
    if long_text:
        notes.append(f"skipped {long_text}")
    if scan.skipped:
        notes.append(f"skipped {_skipped_text(scan)}")
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    return ImageSet("folder", "all", torch.from_numpy(images[:n]), label_tensor, scan.classes, tuple(notes))


def count_folder(cfg: DataConfig) -> int:
    return len(scan_folder(Path(cfg.data_dir)).files)
