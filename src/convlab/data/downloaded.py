"""The downloaded datasets: CIFAR10, CIFAR100, MNIST and Fashion-MNIST.

Files already on disk are read here, without torchvision (importing it costs 1-2 s, mostly
``torch._dynamo`` pulled in by ``torchvision.ops``): CIFAR's pickled batches once their MD5 matches
the official table, MNIST's extracted idx files as torchvision reads them. Anything missing,
damaged or not yet extracted goes to torchvision, which downloads, MD5-checks and extracts the
official archives; whatever goes wrong there becomes one line that says which file is missing
or damaged, where it goes, and how to fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import pickle
import socket
import struct
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convlab.data.imageset import DataError, ImageSet
from convlab.experiment import DataConfig

if TYPE_CHECKING:
    import torch

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# CIFAR100's fine labels, as its meta file lists them (sorted), so they are known without the files.
CIFAR100_CLASSES = tuple("""
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
    caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
    forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
    mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
    sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
    willow_tree wolf woman worm
""".split())
# MNIST's and Fashion-MNIST's class names live in torchvision's classes, not in any file.
MNIST_CLASSES = tuple(f"{i} - {name}" for i, name in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@dataclass(frozen=True)
class Layout:
    """Where torchvision leaves one dataset's files under --data-dir, and which of them a split reads."""

    torchvision_class: str  # in torchvision.datasets: downloads and extracts the archives
    folder: str  # the extracted files, under --data-dir
    splits: Mapping[str, tuple[str, ...]]  # CIFAR: the pickled batches; MNIST: (images, labels) idx files
    meta: str = ""  # CIFAR: the pickled class names, read with every split
    meta_key: str = ""
    classes: tuple[str, ...] = ()  # MNIST: the fixed class names


_MNIST_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
LAYOUTS = {
    "cifar10": Layout(
        "CIFAR10", "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta="batches.meta", meta_key="label_names",
    ),
    "cifar100": Layout(
        "CIFAR100", "cifar-100-python", {"train": ("train",), "test": ("test",)},
        meta="meta", meta_key="fine_label_names",
    ),
    "mnist": Layout("MNIST", "MNIST/raw", _MNIST_SPLITS, classes=MNIST_CLASSES),
    "fashion-mnist": Layout("FashionMNIST", "FashionMNIST/raw", _MNIST_SPLITS, classes=FASHION_MNIST_CLASSES),
}

# The official MD5 of every file torchvision checks, copied from its dataset classes (a test keeps
# them equal): CIFAR's archive and each extracted file; MNIST's archives, checked before they are
# extracted (torchvision keeps no MD5 of the extracted idx files).
CHECKSUMS: dict[str, dict[str, str]] = {
    "cifar10": {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# Non-official copies' MD5s, by dataset, that a test or bench harness accepts: see register_checksums.
ACCEPTED_CHECKSUMS: dict[str, dict[str, str]] = {}


def register_checksums(dataset: str, md5s: Mapping[str, str]) -> None:
    """Accept a non-official copy of a dataset: each ``{filename: md5}`` replaces that official MD5.

    For test and bench harnesses only, which write small copies in the dataset's own format;
    convlab itself never calls it. It applies to reading and to torchvision's checks alike, and
    replaces what was registered for ``dataset`` before (``{}``: the official MD5s again). Under
    pytest, snapshot the entry first so it ends with the test:
    ``monkeypatch.setitem(ACCEPTED_CHECKSUMS, dataset, {})`` (see tests/conftest.py).
    """
    if dataset not in CHECKSUMS:
        raise ValueError(f"no checksums for dataset {dataset!r}; choose from {', '.join(CHECKSUMS)}")
    unknown = sorted(set(md5s) - set(CHECKSUMS[dataset]))
    if unknown:
        raise ValueError(f"{dataset} has no file named {', '.join(unknown)}; its files: {', '.join(CHECKSUMS[dataset])}")
    ACCEPTED_CHECKSUMS[dataset] = dict(md5s)


def checksums(dataset: str) -> dict[str, str]:
    """The MD5 each file of ``dataset`` must have: the official ones, or those a harness registered."""
    return {**CHECKSUMS[dataset], **ACCEPTED_CHECKSUMS.get(dataset, {})}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------- through torchvision

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


def _download_error(title: str, cfg: DataConfig, files: DownloadFiles, exc: BaseException, layout: Layout | None = None) -> DataError:
    """Turn whatever torchvision raised into one line that says what is missing and how to fix it."""
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
        missing = _missing_split(cfg, folder, layout)
        if missing:
            return DataError(f"{missing}; or {hint}")
        return DataError(
            f"{title} files in {folder} are missing or fail torchvision's integrity (MD5) check; "
            f"delete that folder and {hint}"
        )
    present = [(path, md5) for path, md5 in files.archives if path.exists()]
    for path, md5 in present:
        if _md5(path.read_bytes()) != md5:
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


def _missing_split(cfg: DataConfig, folder: Path, layout: Layout | None) -> str:
    """The split's own files that ``folder`` lacks (e.g. a copy of CIFAR10's test split alone), and
    the split that is there; "" when none is missing."""
    missing = [name for name in layout.splits[cfg.split] if not (folder / name).is_file()] if layout else []
    if not missing:
        return ""
    held = [split for split, names in layout.splits.items() if all((folder / n).is_file() for n in names)]
    there = (f"; it holds the {held[0]} split: use --split {held[0]} (convlab train: --split {held[0]} --holdout 0.2 "
             "trains on most of it and evaluates on the rest)") if held else ""
    return f"{folder} has no {', '.join(missing)} (the {cfg.split} split){there}"


def _torchvision_class(name: str) -> type:
    """torchvision's class for ``name``, checking the MD5s of ``checksums(name)`` (the same as its own unless registered)."""
    import torchvision.datasets

    base = getattr(torchvision.datasets, LAYOUTS[name].torchvision_class)
    md5 = checksums(name)
    if hasattr(base, "resources"):  # MNIST-style: (archive, md5) pairs
        lists = {"resources": [(f, md5[f]) for f, _ in base.resources]}
    else:
        lists = {
            "train_list": [[f, md5[f]] for f, _ in base.train_list],
            "test_list": [[f, md5[f]] for f, _ in base.test_list],
            "meta": {**base.meta, "md5": md5[base.meta["filename"]]},
            "tgz_md5": md5[base.filename],
        }
    # The same name: MNIST's folder is named after the class.
    return type(base.__name__, (base,), lists)


def load_torchvision(cfg: DataConfig, name: str) -> ImageSet:
    """Download, MD5-check and extract ``name`` with torchvision, and read it with torchvision."""
    import torch

    cls = _torchvision_class(name)
    root = Path(cfg.data_dir)
    files_of = mnist_files if hasattr(cls, "resources") else cifar_files
    # torchvision prints "Files already downloaded and verified" / "Downloading ..." on stdout;
    # keep stdout for convlab's own output.
    quiet = contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet, _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # CIFAR checks the MD5 of every extracted file before unpickling any; MNIST checks
            # the MD5 of each archive before extracting it, then parses the extracted idx files.
            ds = cls(root=str(root), train=cfg.split == "train", download=cfg.download)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError, AssertionError, EOFError) as exc:
        raise _download_error(cls.__name__, cfg, files_of(cls, root), exc, LAYOUTS[name]) from None

    images = torch.as_tensor(ds.data)
    if images.ndim == 3:  # MNIST-style (N, H, W): one grey channel
        images = images.unsqueeze(1)
    else:  # CIFAR-style (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    # A view of torchvision's array, not a copy: batch() makes each batch contiguous, so the
    # whole split is held once.
    return ImageSet(name, cfg.split, images, labels, tuple(ds.classes))


# ----------------------------------------------------------------------------- files on disk


def _read_cifar(
    folder: Path, layout: Layout, files: tuple[str, ...], md5: Mapping[str, str]
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | None:
    """A CIFAR split's (images, labels, classes), or None if a file is missing or fails its MD5.

    Each file's bytes are MD5-checked before they are unpickled (a pickle can run code), and
    the bytes checked are the bytes unpickled.
    """
    import numpy as np
    import torch

    def verified(name: str):
        try:
            data = (folder / name).read_bytes()
        except OSError:
            return None
        return pickle.loads(data, encoding="latin1") if _md5(data) == md5[name] else None

    meta = verified(layout.meta)
    if meta is None:
        return None
    pixels, labels = [], []
    for name in files:
        batch = verified(name)
        if batch is None:
            return None
        pixels.append(batch["data"])
        labels += batch["labels"] if "labels" in batch else batch["fine_labels"]
    # CIFAR rows are channel-planar (3 x 32 x 32): (N, 3, 32, 32) as they come, no copy per batch.
    rows = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
    images = torch.from_numpy(rows.reshape(-1, 3, 32, 32))
    return images, torch.tensor(labels, dtype=torch.int64), tuple(meta[layout.meta_key])


MNIST_SIZE = (28, 28)  # MNIST's and Fashion-MNIST's (H, W)


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An idx file of unsigned bytes (MNIST's format: magic 0, 0, 0x08, ndim; big-endian sizes; data)."""
    import torch

    data = bytearray(path.read_bytes())
    head = 4 + 4 * ndim
    if len(data) < head or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(f"{path.name} is not an idx file of {ndim}-d unsigned bytes")
    sizes = struct.unpack(f">{ndim}I", data[4:head])
    if len(data) - head != math.prod(sizes) or not math.prod(sizes):
        raise ValueError(f"{path.name} holds {len(data) - head} bytes, its header says {'x'.join(map(str, sizes))}")
    return torch.frombuffer(data, dtype=torch.uint8, offset=head).view(*sizes)


def _read_mnist(folder: Path, files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """An MNIST-style split's (images, labels), or None if its idx files are missing or unreadable.

    As torchvision reads them: it MD5-checks the archives before extracting them, not the
    extracted files (parsing an idx file runs no code).
    """
    images_file, labels_file = (folder / f for f in files)
    try:
        images, labels = _read_idx(images_file, 3).unsqueeze(1), _read_idx(labels_file, 1).long()
    except (OSError, ValueError):
        return None
    # Well-formed idx files of the wrong content: torchvision would read them just the same,
    # so say what is wrong with them rather than hand a run images of another size.
    found = f"{len(images)} images of {images.shape[2]}x{images.shape[3]} and {len(labels)} labels"
    if tuple(images.shape[2:]) != MNIST_SIZE or len(images) != len(labels):
        raise DataError(
            f"{images_file.name} and {labels_file.name} in {folder} are corrupted: they hold {found}, where "
            f"the dataset has {MNIST_SIZE[0]}x{MNIST_SIZE[1]} images, one label each; delete them and run again "
            "(torchvision extracts them again from the MD5-checked archives)"
        )
    return images, labels


def load_downloaded(cfg: DataConfig, name: str) -> ImageSet:
    """``name``'s split from the files on disk, or through torchvision when they are not all there and sound."""
    root = Path(cfg.data_dir)
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-dir {root} is a file, not a directory; choose another --data-dir")
    layout = LAYOUTS[name]
    folder, files = root / layout.folder, layout.splits[cfg.split]
    if layout.meta:
        read = _read_cifar(folder, layout, files, checksums(name))
        if read is not None:
            return ImageSet(name, cfg.split, *read)
    else:
        read = _read_mnist(folder, files)
        if read is not None:
            return ImageSet(name, cfg.split, *read, layout.classes)
    return load_torchvision(cfg, name)


def downloaded_loader(name: str) -> Callable[[DataConfig, int], ImageSet]:
    """A ``DatasetSpec.load`` for one downloaded dataset (the seed is not used: the data is fixed)."""
    return lambda cfg, seed: load_downloaded(cfg, name)


load_cifar10 = downloaded_loader("cifar10")
load_cifar100 = downloaded_loader("cifar100")
load_mnist = downloaded_loader("mnist")
load_fashion_mnist = downloaded_loader("fashion-mnist")
