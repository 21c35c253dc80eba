"""The datasets torchvision downloads: CIFAR10, CIFAR100, MNIST and Fashion-MNIST.

torchvision downloads, MD5-checks and reads them; this module turns whatever goes wrong on the
way into one line that says which file is missing or damaged, where it goes, and how to fix it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convlab.config import DataConfig
from convlab.data.imageset import DataError, ImageSet

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


def torchvision_loader(name: str, cls_name: str, files_of: Callable[[type, Path], DownloadFiles]) -> Callable[[DataConfig, int], ImageSet]:
    """A ``DatasetSpec.load`` for one torchvision dataset class (the seed is not used: the data is fixed)."""
    return lambda cfg, seed: load_torchvision(cfg, name, cls_name, files_of)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
load_cifar10 = torchvision_loader("cifar10", "CIFAR10", cifar_files)
load_cifar100 = torchvision_loader("cifar100", "CIFAR100", cifar_files)
load_mnist = torchvision_loader("mnist", "MNIST", mnist_files)
load_fashion_mnist = torchvision_loader("fashion-mnist", "FashionMNIST", mnist_files)
