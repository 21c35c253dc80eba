"""Datasets by name -> whole splits as one uint8 tensor (N, C, H, W).

Holding a split as one uint8 tensor (CIFAR10's test split is 30 MB) lets the pipeline slice
batches without per-image PIL -> ToTensor work. Adding a dataset is one ``DatasetSpec`` in
``DATASETS``: a function that says the image shape without loading, and one that loads.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import math
import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from convlab.config import ConvlabError, DataConfig

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image


class DataError(ConvlabError):
    """The data cannot be had: missing, corrupted, or no network to download it."""


@dataclass(frozen=True)
class ImageSet:
    name: str
    split: str
    images: "torch.Tensor"  # uint8, (N, C, H, W); may be a strided view (e.g. of NHWC data)
    labels: "torch.Tensor"  # int64, (N,); -1 where the images have no class
    classes: tuple[str, ...]
    # What the user should know about where the images came from (shown in the terminal).
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

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


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    summary: str
    # (C, H, W) of every image, known without loading (used by --dry-run and validation).
    shape: Callable[[DataConfig], tuple[int, int, int]]
    load: Callable[[DataConfig, int], ImageSet]
    # Images in each split, for progress bars and plans; or, for a dataset whose size depends on
    # the config (a folder), a function that counts them without decoding any.
    split_sizes: Mapping[str, int] | Callable[[DataConfig], int]

    def num_images(self, cfg: DataConfig) -> int:
        if callable(self.split_sizes):
            return self.split_sizes(cfg)
        return self.split_sizes[cfg.split]


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


# ----------------------------------------------------------------------------- torchvision

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


@dataclass(frozen=True)
class DownloadFiles:
    """Where torchvision looks for one dataset's files, so an error can say exactly what to put where."""

    archives: tuple[tuple[Path, str], ...]  # (path, md5) of what torchvision downloads and verifies
    extracted: tuple[Path, ...]  # what it reads once the archives are extracted
    url: str  # where the archives come from


def cifar_files(cls: type, root: Path) -> DownloadFiles:
    folder = root / cls.base_folder
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return DownloadFiles(((root / cls.filename, cls.tgz_md5),), tuple(folder / n for n in names), cls.url)


def mnist_files(cls: type, root: Path) -> DownloadFiles:
    raw = root / cls.__name__ / "raw"  # torchvision's MNIST.raw_folder
    archives = tuple((raw / name, md5) for name, md5 in cls.resources)
    extracted = tuple(raw / name.removesuffix(".gz") for name, _ in cls.resources)
    return DownloadFiles(archives, extracted, cls.mirrors[0])


def _download_error(title: str, cfg: DataConfig, files: DownloadFiles, exc: BaseException) -> DataError:
    """Turn whatever torchvision raised into one line that says what is missing and how to fix it."""
    from torchvision.datasets.utils import check_integrity

    where = files.archives[0][0].parent
    names = ", ".join(path.name for path, _ in files.archives)
    hint = (
        f"put the official {names} (from {files.url}) in {where}/ "
        "and run again, or use the built-in offline dataset: --dataset shapes"
    )
    detail = " ".join(str(exc).split())
    extracted = [p for p in files.extracted if p.exists()]
    folder = files.extracted[0].parent
    if folder == where:
        # MNIST-style: archives and extracted files share one folder, and torchvision reads the
        # extracted files once they all exist, without checking them.
        if len(extracted) == len(files.extracted):
            stale = ", ".join(p.name for p in extracted)
            return DataError(
                f"{title} files in {folder} cannot be read ({type(exc).__name__}{': ' * bool(detail)}{detail}); delete {stale} "
                f"there and run again (torchvision extracts them again from the MD5-checked archives), or {hint}"
            )
    elif extracted:
        return DataError(
            f"{title} files in {folder} are missing or fail torchvision's integrity (MD5) check; "
            f"delete that folder and {hint}"
        )
    present = [(path, md5) for path, md5 in files.archives if path.exists()]
    for path, md5 in present:
        if not check_integrity(str(path), md5):
            return DataError(f"{path} fails torchvision's integrity (MD5) check; delete it and {hint}")
    if present and len(present) == len(files.archives) and not cfg.download:
        what = f"{names} are" if len(present) > 1 else f"{present[0][0]} is"
        return DataError(
            f"{what} there but not extracted, and --no-download is set; run with --download: "
            "torchvision checks their MD5 and extracts them without downloading"
        )
    if not cfg.download:
        return DataError(f"{title} not found in {where}/ and --no-download is set; use --download, or {hint}")
    if isinstance(exc, (urllib.error.URLError, socket.timeout, ConnectionError)):
        reason = getattr(exc, "reason", exc)
        return DataError(f"cannot download {title} ({reason}); {hint}")
    # torchvision's MNIST wraps each mirror's network error in a RuntimeError of its own.
    if "Error downloading" in detail or "urlopen error" in detail:
        return DataError(f"cannot download {title} ({detail.rpartition('got: ')[2]}); {hint}")
    return DataError(f"{title} could not be loaded ({detail or type(exc).__name__}); {hint}")


def load_torchvision(cfg: DataConfig, name: str, cls_name: str, files_of: Callable[[type, Path], DownloadFiles]) -> ImageSet:
    """A torchvision dataset class by name, downloaded and MD5-checked by torchvision itself."""
    import torch
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    root = Path(cfg.data_dir)
    # torchvision prints "Files already downloaded and verified" / "Downloading ..." on stdout;
    # keep stdout for convlab's own output.
    quiet = contextlib.redirect_stdout(io.StringIO())
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-dir {root} is a file, not a directory; choose another --data-dir")
    try:
        with quiet, _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # CIFAR checks the MD5 of every extracted file before unpickling any; MNIST checks
            # the MD5 of each archive before extracting it, then parses the extracted idx files.
            ds = cls(root=str(root), train=cfg.split == "train", download=cfg.download)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError, AssertionError, EOFError) as exc:
        raise _download_error(cls.__name__, cfg, files_of(cls, root), exc) from None

    images = torch.as_tensor(ds.data)
    if images.ndim == 3:  # MNIST-style (N, H, W): one grey channel
        images = images.unsqueeze(1)
    else:  # CIFAR-style (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    # A view of torchvision's array, not a copy: the pipeline makes each batch contiguous, so
    # the whole split is held once (30 MB for CIFAR10's test split, 150 MB for train).
    return ImageSet(name, cfg.split, images, labels, tuple(ds.classes))


def _torchvision(name: str, cls_name: str, files_of: Callable[[type, Path], DownloadFiles]):
    return lambda cfg, seed: load_torchvision(cfg, name, cls_name, files_of)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def load_cifar10(cfg: DataConfig, seed: int) -> ImageSet:
    return load_torchvision(cfg, "cifar10", "CIFAR10", cifar_files)


# ----------------------------------------------------------------------------- shapes

SHAPES_CLASSES = (
    "circle", "square", "triangle", "ring", "cross",
    "stripes-h", "stripes-v", "stripes-diag", "checkerboard", "dots",
)
SHAPES_SIZE = 32
# Different splits must not share images, so each split gets its own stream of the seed.
_SPLIT_STREAM = {"test": 0, "train": 1}


SHAPES_CHUNK = 1000


def make_shapes(n: int, seed: int, size: int = SHAPES_SIZE) -> tuple["torch.Tensor", "torch.Tensor"]:
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


def _draw_shapes(n: int, seed: int, size: int) -> tuple["torch.Tensor", "torch.Tensor"]:
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


def load_shapes(cfg: DataConfig, seed: int) -> ImageSet:
    n = SHAPES_SPLITS[cfg.split]
    if cfg.max_batches is not None:  # draw only what the run will use (the same first images)
        n = min(n, cfg.max_batches * cfg.batch_size)
    images, labels = make_shapes(n, seed=seed * 2 + _SPLIT_STREAM[cfg.split])
    return ImageSet("shapes", cfg.split, images, labels, SHAPES_CLASSES)



# ----------------------------------------------------------------------------- folder

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
        return path.name if path == self.root else path.relative_to(self.root).as_posix()


def _walk(root: Path) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself), hidden names left out, in a fixed order."""
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .ipynb_checkpoints, ...
        found += [Path(folder, n) for n in names if not n.startswith(".")]
    # By path components, so each class folder's files stay together in sorted class order.
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _header_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path, formats=FOLDER_FORMATS) as im:
            w, h = im.size
            if im.format == "PNG":  # Pillow's PNG getexif() decodes the image to look for a late eXIf
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            turned = exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
    except (*_UNREADABLE, Image.DecompressionBombError):
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
        index = {name: i for i, name in enumerate(classes)}
        labels = tuple(index[part[0]] for part in parts)
    else:
        classes, labels = (), (-1,) * len(files)
    return dataclasses.replace(scan, labels=labels, classes=classes)


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


def _to_mode(im: "Image.Image", mode: str) -> "Image.Image":
    """RGB or L from any mode: transparency over white, 16-bit greys scaled (not clipped) to 8 bits."""
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I"):  # I;16 (16-bit PNG), I: Pillow's convert would clip all above 255 to white
        im = Image.fromarray((np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
    return im.convert(mode)


def read_image(path: Path, size: int, grayscale: bool) -> "np.ndarray":
    """One image as uint8 (H, W, C): upright, RGB or grey, resized and centre-cropped to size x size (0: as is)."""
    import numpy as np
    from PIL import Image, ImageOps
    from torchvision.transforms.v2 import functional as F

    with Image.open(path, formats=FOLDER_FORMATS) as im:
        w, h = im.size
        if size and im.format == "JPEG" and min(w, h) >= 2 * size:
            # Let libjpeg decode a photo at 1/2..1/8 scale, still at least size on its shorter
            # side (as PIL's thumbnail does): several times faster, and it is resized below anyway.
            im.draft(None, (math.ceil(w * size / min(w, h)), math.ceil(h * size / min(w, h))))
        im = _to_mode(ImageOps.exif_transpose(im), "L" if grayscale else "RGB")
    if size:
        # Exactly torchvision's Resize(size) + CenterCrop(size): shorter side to size, centre square.
        im = F.center_crop(F.resize(im, [size]), [size, size])
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
    for path, label in zip(scan.files, scan.labels):
        if n == wanted:
            break
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
    if n == 0:
        raise DataError(f"--dataset folder found {_skipped_text(scan)} under {root}, and no image it could read")

    first = f", the first of {total} for --max-batches" if wanted < total else ""
    notes = [f"{n} image(s) from {root}{first}"]
    if scan.classes:
        notes.append(f"{len(scan.classes)} classes from the first-level subfolders: {', '.join(scan.classes)}")
    if size:
        notes.append(f"each resized (shorter side to {size}) and centre-cropped to {size}x{size}")
    if scan.skipped:
        notes.append(f"skipped {_skipped_text(scan)}")
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    return ImageSet("folder", "all", torch.from_numpy(images[:n]), label_tensor, scan.classes, tuple(notes))


def count_folder(cfg: DataConfig) -> int:
    return len(scan_folder(Path(cfg.data_dir)).files)


SHAPES_SPLITS = {"test": 10_000, "train": 50_000}
CIFAR10_SPLITS = {"test": 10_000, "train": 50_000}
MNIST_SPLITS = {"test": 10_000, "train": 60_000}
CIFAR100_SPLITS = {"test": 10_000, "train": 50_000}

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR10 through torchvision (downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        load_cifar10,
        CIFAR10_SPLITS,
    ),
    "shapes": DatasetSpec(
        "shapes",
        "built-in 32x32 shapes and textures in 10 classes (offline, deterministic)",
        _fixed_shape(3, SHAPES_SIZE, SHAPES_SIZE),
        load_shapes,
        SHAPES_SPLITS,
    ),
    "folder": DatasetSpec(
        "folder",
        "every image under --data-dir (PNG, JPEG, BMP, GIF, WebP); classes from ImageFolder subfolders",
        folder_shape,
        load_folder,
        count_folder,
    ),
    "mnist": DatasetSpec(
        "mnist",
        "MNIST handwritten digits, 28x28 grey, through torchvision (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        _torchvision("mnist", "MNIST", mnist_files),
        MNIST_SPLITS,
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "Fashion-MNIST clothes, 28x28 grey, through torchvision (downloads on first use, MD5-checked)",
        _fixed_shape(1, 28, 28),
        _torchvision("fashion-mnist", "FashionMNIST", mnist_files),
        MNIST_SPLITS,
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        "CIFAR100 (100 fine classes) through torchvision (downloads on first use, MD5-checked)",
        _fixed_shape(3, 32, 32),
        _torchvision("cifar100", "CIFAR100", cifar_files),
        CIFAR100_SPLITS,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def load(cfg: DataConfig, seed: int) -> ImageSet:
    return get_dataset(cfg.dataset).load(cfg, seed)
