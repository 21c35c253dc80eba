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

from convlab.data.imageset import DataError, ImageSet
from convlab.experiment import DataConfig

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
UNREADABLE = (OSError, SyntaxError, ValueError)  # what Pillow raises for bad files (OSError covers UnidentifiedImageError)


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


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself), hidden names left out, in a fixed order."""
    if not root.is_dir():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .ipynb_checkpoints, ...
        found += [Path(folder, n) for n in names if not n.startswith(".")]
    # By path components, so each class folder's files stay together in sorted class order.
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def header_size(path: Path) -> tuple[int, int] | None:
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
    except (*UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning):
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
    for path in walk_files(root):
        size = header_size(path)
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


# What showing an image upright takes, by its EXIF orientation (what Pillow's exif_transpose does).
EXIF_ORIENTATIONS = {
    2: "mirrored left-right", 3: "turned 180°", 4: "mirrored top-bottom",
    5: "mirrored across its top-left to bottom-right diagonal", 6: "turned 90° clockwise",
    7: "mirrored across its top-right to bottom-left diagonal", 8: "turned 90° counter-clockwise",
}
MODE_NAMES = {
    "1": "1-bit black and white", "L": "grey", "LA": "grey with transparency", "La": "grey with transparency",
    "P": "palette", "PA": "palette with transparency", "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA", "CMYK": "CMYK",
    "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV", "I": "32-bit grey", "F": "floating-point grey",
}


def mode_name(mode: str) -> str:
    if mode.startswith("I;16"):
        return f"16-bit grey ({mode})"
    name = MODE_NAMES.get(mode, mode)
    return name if name == mode else f"{name} ({mode})"


def _to_mode(im: Image.Image, mode: str, steps: list[str]) -> Image.Image:
    """RGB or L from any mode: transparency over white, 16-bit greys scaled (not clipped) to 8 bits.
    What was done is appended to ``steps``, in words."""
    import numpy as np
    from PIL import Image

    start = im.mode
    if im.mode.startswith("I"):  # I;16 (16-bit PNG), I: Pillow's convert would clip all above 255 to white
        im = Image.fromarray((np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
        steps.append(f"{mode_name(start)}: scaled to 8 bits (each value // 256)")
    composited = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if composited:
        rgba = im.convert("RGBA")
        seen_through = rgba.getextrema()[3][0] < 255
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
        steps.append(f"{mode_name(start)}: transparent pixels put over white" if seen_through
                     else f"{mode_name(start)}: its transparency dropped (every pixel is opaque)")
    source = "RGB" if composited else im.mode
    if source != mode:
        if mode == "L":
            detail = "luma, 0.299 R + 0.587 G + 0.114 B"
        elif source in ("L", "1"):
            detail = "the grey copied to red, green and blue"
        else:
            detail = "each palette index looked up" if source == "P" else "colours converted"
        steps.append(f"{mode_name(source)} -> {mode_name(mode)}: {detail}")
    return im if im.mode == mode else im.convert(mode)  # convert copies even an image already in that mode


# An image whose shorter side is resized to --image-size must not become absurdly long: a
# 300000x1 PNG of 957 bytes would be 38,400,000x128 (14 GiB) before its centre is cut.
MAX_RESIZED_PIXELS = 1 << 26

def _target(size: int | tuple[int, int]) -> tuple[int, int]:
    """What an image is made to: N is NxN (torchvision's Resize(N) + CenterCrop(N)); (H, W) is HxW."""
    return (size, size) if isinstance(size, int) else size


def resized_size(height: int, width: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) after resizing to cover ``size``: for N, torchvision's ``Resize(N)`` (the shorter
    side to N, the longer to ``int(N * long / short)``); for (H, W), the same rule on the side
    that needs the larger scale."""
    th, tw = _target(size)
    if th * width >= tw * height:  # the height needs the larger scale (or both the same)
        return th, max(tw, int(th * width / height))
    return max(th, int(tw * height / width)), tw


def resize_and_crop(im: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on a PIL image, pixel for pixel.

    The shorter side goes to ``size`` (the longer to ``int(size * long / short)``, bilinear,
    as torchvision asks PIL), then the centre square is cut (top/left rounded as torchvision
    rounds). Done with PIL directly because importing torchvision's transforms costs 1.2-1.9 s
    (they load ``torch._dynamo``), more than reading a folder of images; tests/test_folder.py
    holds it to torchvision's result. ``(H, W)``: resized to cover HxW, then its centre.
    """
    from PIL import Image

    w, h = im.size
    th, tw = _target(size)
    new_h, new_w = resized_size(h, w, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), resample=Image.BILINEAR)
    if (new_h, new_w) == (th, tw):
        return im  # crop copies even the whole image
    top, left = int(round((new_h - th) / 2.0)), int(round((new_w - tw) / 2.0))
    return im.crop((left, top, left + tw, top + th))


@dataclass(frozen=True)
class Reading:
    """One image as read: its pixels and, in words, what was done to them."""

    pixels: np.ndarray  # uint8 (H, W, C)
    format: str  # Pillow's: PNG, JPEG, ...
    mode: str  # as stored: RGB, RGBA, P, L, I;16, ...
    size: tuple[int, int]  # (H, W) upright, at full resolution: the picture as its owner sees it
    scale: float  # how much it was resized (0.1: to a tenth; 1: not at all)
    kept: float  # the share of the resized picture the centre crop kept (1: all of it)
    steps: tuple[str, ...]  # what was done, in order


def read(path: Path, size: int | tuple[int, int], grayscale: bool) -> Reading:
    """One image upright, RGB or grey, resized and centre-cropped to ``size`` (0: as is), and
    what was done to it. Raises one of UNREADABLE, or Pillow's decompression-bomb error (its
    warning too, as an error), for what cannot be read; nothing absurdly long is resized."""
    import warnings

    import numpy as np
    from PIL import Image, ImageOps

    steps: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(path, formats=FOLDER_FORMATS)
    with im:
        fmt, mode = im.format, im.mode
        w, h = im.size
        if size and max(math.prod(resized_size(h, w, size)), math.prod(resized_size(w, h, size))) > MAX_RESIZED_PIXELS:
            rh, rw = resized_size(h, w, size)
            raise ValueError(f"it is too long to resize: {h}x{w} would become {rh:,}x{rw:,} before its centre is cut")
        side = max(_target(size)) if size else 0
        if size and im.format == "JPEG" and min(w, h) >= 2 * side:
            # Let libjpeg decode a photo at 1/2..1/8 scale, still at least size on its shorter
            # side (as PIL's thumbnail does): several times faster, and it is resized below anyway.
            im.draft(None, (math.ceil(w * side / min(w, h)), math.ceil(h * side / min(w, h))))
            if im.size != (w, h):
                steps.append(f"JPEG decoded at 1/{w // im.size[0]} of its size by libjpeg ({h}x{w} -> "
                             f"{im.size[1]}x{im.size[0]}), as it is made smaller below anyway")
        # getexif() of a PNG decodes it first (an eXIf chunk may follow the pixels): done once here.
        # Only an image that is not upright is transposed (exif_transpose copies every image).
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in EXIF_ORIENTATIONS:
            im = ImageOps.exif_transpose(im)
            if orientation in (5, 6, 7, 8):
                h, w = w, h
            steps.append(f"EXIF orientation {orientation}: {EXIF_ORIENTATIONS[orientation]} to stand upright "
                         f"({w}x{h} -> {h}x{w}, HxW)" if orientation in (5, 6, 7, 8)
                         else f"EXIF orientation {orientation}: {EXIF_ORIENTATIONS[orientation]} to stand upright")
        im = _to_mode(im, "L" if grayscale else "RGB", steps)
        im.load()  # the pixels, while the file is open (an image already in its mode is still the file's)
    scale, kept = 1.0, 1.0
    if size:
        th, tw = _target(size)
        dw, dh = im.size  # what was decoded: a JPEG draft is smaller than the photo
        new_h, new_w = resized_size(dh, dw, size)
        by_height = th * dw >= tw * dh
        scale = new_h / h if by_height else new_w / w  # against the photo, draft or not
        kept = th * tw / (new_h * new_w)
        if (new_h, new_w) != (dh, dw):
            factor = f"{1 / scale:.1f}x smaller" if scale < 1 else f"{scale:.1f}x larger"
            side = f"its shorter side to {th}" if th == tw else f"its height to {th}" if by_height else f"its width to {tw}"
            steps.append(f"resized (bilinear) {dh}x{dw} -> {new_h}x{new_w} (HxW), {side}: {factor} than the picture")
        if (new_h, new_w) != (th, tw):
            cut = " and ".join(c for c in (f"{new_h - th} row(s)" * (new_h > th), f"{new_w - tw} column(s)" * (new_w > tw)) if c)
            steps.append(f"centre-cropped to {th}x{tw}: {cut} cut off, {kept:.0%} of the picture kept")
        im = resize_and_crop(im, size)
    pixels = np.asarray(im)
    return Reading(pixels[:, :, None] if pixels.ndim == 2 else pixels, fmt, mode, (h, w), scale, kept, tuple(steps))


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
            pixels = read(path, size, cfg.grayscale).pixels
        except (*UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning):
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
