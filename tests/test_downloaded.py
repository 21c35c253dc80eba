"""The downloaded datasets: CIFAR10, CIFAR100, MNIST and Fashion-MNIST.

Every fixture is built here (CIFAR10's in conftest), in the dataset's own format; the fixtures'
checksums are registered with convlab.data.register_checksums (test harness only) and
torchvision's mirrors pointed at a dead loopback port, so nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

import convlab
from convlab.data import ACCEPTED_CHECKSUMS, CHECKSUMS, DataError, downloaded, get_dataset, load, register_checksums
from convlab.data.downloaded import LAYOUTS
from convlab.experiment import DataConfig

from conftest import assert_user_error, grid_size, images, load_events, make_cifar

DEAD = "http://127.0.0.1:9/"  # a loopback port nobody listens on: refused at once, as offline


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _register(monkeypatch: pytest.MonkeyPatch, dataset: str, md5s: dict[str, str]) -> None:
    """Accept a fixture's MD5s (test harness only), until the test ends."""
    monkeypatch.setitem(ACCEPTED_CHECKSUMS, dataset, {})  # so that monkeypatch undoes the registration
    register_checksums(dataset, md5s)


def _user_error(r, message: str, tmp_path: Path) -> str:
    """A one-line user error, and no run left behind."""
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
    return r.err.splitlines()[0]


# ----------------------------------------------------------------------------- CIFAR10


def test_cifar10_loads_from_its_pickles(cifar):
    test = load(DataConfig(data_dir=str(cifar.root)), seed=0)
    assert test.images.shape == (80, 3, 32, 32) and test.images.dtype == torch.uint8
    assert np.array_equal(test.images.permute(0, 2, 3, 1).numpy(), cifar.test_images)
    assert test.classes[0] == "airplane"
    train = load(DataConfig(data_dir=str(cifar.root), split="train"), seed=0)
    assert np.array_equal(train.images.permute(0, 2, 3, 1).numpy(), cifar.train_images)


def test_cifar10_missing_without_download(tmp_path: Path):
    with pytest.raises(DataError, match="not found.*--no-download.*cifar-10-python.tar.gz.*--dataset shapes"):
        load(DataConfig(data_dir=str(tmp_path), download=False), seed=0)


def test_cifar10_offline_fails_fast_and_says_what_to_do(tmp_path: Path, monkeypatch):
    # A loopback port nobody listens on: a refused connection, as a machine without network sees.
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"cannot download CIFAR10.*put the official cifar-10-python.tar.gz"):
        load(DataConfig(data_dir=str(tmp_path)), seed=0)
    assert time.perf_counter() - start < 30


def test_cifar10_corrupted_file_fails_integrity_before_unpickling(cifar, monkeypatch):
    batch = cifar.root / "cifar-10-batches-py" / "test_batch"
    # Not a pickle at all: if anything unpickled it, the error would be an UnpicklingError.
    batch.write_bytes(b"this is not the file you are looking for")
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    for download in (False, True):
        with pytest.raises(DataError, match="integrity"):
            load(DataConfig(data_dir=str(cifar.root), download=download), seed=0)


# ----------------------------------------------------------------------------- MNIST-format fixtures


def _idx(array: np.ndarray) -> bytes:
    """The idx format MNIST ships in: magic (0, 0, type 0x08 = ubyte, ndim), big-endian sizes, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@dataclass
class MnistFixture:
    root: Path  # the --data-dir
    raw: Path
    test_images: np.ndarray  # (N, 28, 28) uint8
    test_labels: np.ndarray
    train_images: np.ndarray


def make_mnist(root: Path, cls: type, monkeypatch: pytest.MonkeyPatch, n_test: int = 20, n_train: int = 12) -> MnistFixture:
    """The four gzipped idx archives torchvision's MNIST downloads, in <root>/<Class>/raw/, with their MD5s registered."""
    rng = np.random.default_rng(5)
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    md5s = {}
    for name, array in arrays.items():
        archive = raw / f"{name}.gz"
        archive.write_bytes(gzip.compress(_idx(array), mtime=0))
        md5s[archive.name] = _md5(archive)
    _register(monkeypatch, {"MNIST": "mnist", "FashionMNIST": "fashion-mnist"}[cls.__name__], md5s)
    monkeypatch.setattr(cls, "mirrors", [DEAD])
    return MnistFixture(root, raw, arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"],
                        arrays["train-images-idx3-ubyte"])


MNISTS = [("mnist", MNIST), ("fashion-mnist", FashionMNIST)]


@pytest.mark.parametrize("name, cls", MNISTS)
def test_mnist_loads_through_torchvision(tmp_path, monkeypatch, name, cls):
    fx = make_mnist(tmp_path / "data", cls, monkeypatch)
    test = load(DataConfig(dataset=name, data_dir=str(fx.root)), seed=0)
    assert test.images.dtype == torch.uint8 and test.images.shape == (20, 1, 28, 28)
    assert np.array_equal(test.images[:, 0].numpy(), fx.test_images)
    assert test.labels.tolist() == fx.test_labels.tolist() and test.classes == tuple(cls.classes)
    assert (fx.raw / "t10k-images-idx3-ubyte").exists()  # torchvision checked the MD5s and extracted
    train = load(DataConfig(dataset=name, data_dir=str(fx.root), split="train"), seed=0)
    assert np.array_equal(train.images[:, 0].numpy(), fx.train_images)
    assert get_dataset(name).shape(DataConfig(dataset=name, grayscale=True)) == (1, 28, 28)


@pytest.mark.parametrize("name, cls", MNISTS)
def test_mnist_offline_names_the_archives_and_where_they_go(tmp_path, monkeypatch, name, cls):
    monkeypatch.setattr(cls, "mirrors", [DEAD])
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load(DataConfig(dataset=name, data_dir=str(tmp_path / "d")), seed=0)
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert message.startswith(f"cannot download {cls.__name__} (") and "Connection refused" in message
    names = ", ".join(f for f, _ in cls.resources)
    assert f"put the official {names} (from {DEAD}) in {tmp_path / 'd' / cls.__name__ / 'raw'}/" in message
    assert "--dataset shapes" in message


def test_mnist_without_download(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"MNIST not found in .*MNIST/raw/ and --no-download is set.*train-images-idx3-ubyte\.gz"):
        load(DataConfig(dataset="mnist", data_dir=str(tmp_path), download=False), seed=0)
    fx = make_mnist(tmp_path / "data", MNIST, monkeypatch)
    with pytest.raises(DataError, match="there but not extracted, and --no-download is set; run with --download"):
        load(DataConfig(dataset="mnist", data_dir=str(fx.root), download=False), seed=0)


def test_mnist_archive_failing_md5_is_named(tmp_path, monkeypatch):
    fx = make_mnist(tmp_path / "data", MNIST, monkeypatch)
    archive = fx.raw / "train-images-idx3-ubyte.gz"
    archive.write_bytes(gzip.compress(b"tampered", mtime=0))
    with pytest.raises(DataError, match=f"{archive} fails torchvision's integrity \\(MD5\\) check; delete it"):
        load(DataConfig(dataset="mnist", data_dir=str(fx.root)), seed=0)


def test_mnist_unreadable_extracted_files(tmp_path, monkeypatch):
    fx = make_mnist(tmp_path / "data", MNIST, monkeypatch)
    load(DataConfig(dataset="mnist", data_dir=str(fx.root)), seed=0)  # extracts
    (fx.raw / "t10k-images-idx3-ubyte").write_bytes(b"garbage, not idx")
    with pytest.raises(DataError, match="MNIST files in .* cannot be read .*delete .*t10k-images-idx3-ubyte"):
        load(DataConfig(dataset="mnist", data_dir=str(fx.root)), seed=0)


# ----------------------------------------------------------------------------- CIFAR100


def make_cifar100(root: Path, monkeypatch: pytest.MonkeyPatch, n: int = 10) -> np.ndarray:
    rng = np.random.default_rng(9)
    folder = root / CIFAR100.base_folder
    folder.mkdir(parents=True)
    test = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    for name, split in (("test", test), ("train", test[:4])):
        batch = {"data": split.transpose(0, 3, 1, 2).reshape(len(split), 3072),
                 "fine_labels": [i % 100 for i in range(len(split))], "coarse_labels": [0] * len(split)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    fine = [f"class{i}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": fine, "coarse_label_names": ["x"] * 20}, protocol=2))
    _register(monkeypatch, "cifar100", {name: _md5(folder / name) for name in ("train", "test", "meta")})
    return test


def test_cifar100_loads_from_its_pickles(tmp_path, monkeypatch):
    test = make_cifar100(tmp_path, monkeypatch)
    ds = load(DataConfig(dataset="cifar100", data_dir=str(tmp_path)), seed=0)
    assert ds.images.shape == (10, 3, 32, 32)
    assert np.array_equal(ds.images.permute(0, 2, 3, 1).numpy(), test)
    assert len(ds.classes) == 100 and ds.labels.tolist() == list(range(10))


def test_cifar100_offline_and_corrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR100, "url", DEAD + "cifar-100-python.tar.gz")
    with pytest.raises(DataError, match=r"cannot download CIFAR100 .*put the official cifar-100-python\.tar\.gz"):
        load(DataConfig(dataset="cifar100", data_dir=str(tmp_path / "none")), seed=0)
    make_cifar100(tmp_path, monkeypatch)
    (tmp_path / CIFAR100.base_folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="CIFAR100 files in .*cifar-100-python are missing or fail .*integrity"):
        load(DataConfig(dataset="cifar100", data_dir=str(tmp_path)), seed=0)


def test_offline_message_from_the_cli(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "mirrors", [DEAD])
    line = _user_error(run_cli("pool", "--dataset", "fashion-mnist", "--logdir", "logs"), "cannot download FashionMNIST", tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in line and "data/FashionMNIST/raw/" in line


# ----------------------------------------------------------------------------- 1 channel, every view


@pytest.mark.parametrize(
    "args, tag, tiles, size",
    [
        (["conv", "-c", "1"], "output", 1, 26),
        (["conv", "-c", "3"], "output", 1, 26),
        (["conv", "-c", "4"], "output", 2, 26),
        (["conv"], "output", 2, 26),  # 6 channels: the tutorial's reshape view
        (["conv", "-c", "4", "--padding", "same", "--padding-mode", "reflect"], "output", 2, 28),
        (["pool", "--kernel", "2"], "maxpool", 1, 14),
    ],
)
def test_every_view_works_on_one_channel_input(tmp_path, monkeypatch, run_cli, args, tag, tiles, size):
    fx = make_mnist(tmp_path / "data", MNIST, monkeypatch)
    r = run_cli(*args, "--dataset", "mnist", "--data-dir", fx.root, "--batch-size", "16", "--logdir", "logs",
                "--run-name", "grey")
    assert r.code == 0, r.err
    if args[0] == "conv":
        assert "Conv2d(1, " in r.out  # in_channels defaults to the data's 1 channel
    acc = load_events(tmp_path / "logs" / "grey")
    inputs, outputs = images(acc, "input"), images(acc, tag)
    assert [i.step for i in inputs] == [o.step for o in outputs] == [0, 1]
    assert [(i.height, i.width) for i in inputs] == [grid_size(16, 28, 28), grid_size(4, 28, 28)]
    assert [(o.height, o.width) for o in outputs] == [grid_size(16 * tiles, size, size), grid_size(4 * tiles, size, size)]
    # The grey input shows as grey, pixel for pixel (TensorBoard truncates x*255).
    first = inputs[0].pixels[:28, :28].astype(int)
    assert np.abs(first - fx.test_images[0][..., None]).max() <= 1
    if tag == "maxpool":
        window = fx.test_images[0, :2, :2].max()
        assert abs(int(outputs[0].pixels[0, 0, 0]) - int(window)) <= 1
    text = acc.Tensors("data/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "mnist (test): 20 images of (1, 28, 28)" in text and "0 - zero" in text


def test_in_channels_3_on_one_channel_data_is_an_error(tmp_path, monkeypatch, run_cli):
    fx = make_mnist(tmp_path / "data", MNIST, monkeypatch)
    _user_error(run_cli("conv", "--dataset", "mnist", "--data-dir", fx.root, "--in-channels", "3", "--logdir", "logs"),
                "in_channels=3 but the images have 1 channel(s)", tmp_path)


# ----------------------------------------------------------------------------- files on disk, without torchvision


def test_checksums_are_torchvision_s():
    """The one table of official MD5s, and where each split's files lie, is torchvision's: it cannot drift."""
    for name, cls in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        official = {cls.filename: cls.tgz_md5, **dict(cls.train_list), **dict(cls.test_list),
                    cls.meta["filename"]: cls.meta["md5"]}
        assert CHECKSUMS[name] == official
        layout = LAYOUTS[name]
        assert (layout.torchvision_class, layout.folder) == (cls.__name__, cls.base_folder)
        assert (layout.meta, layout.meta_key) == (cls.meta["filename"], cls.meta["key"])
        assert layout.splits == {"train": tuple(f for f, _ in cls.train_list), "test": tuple(f for f, _ in cls.test_list)}
    for name, cls in MNISTS:
        assert CHECKSUMS[name] == dict(cls.resources)
        layout = LAYOUTS[name]
        assert (layout.torchvision_class, layout.folder, layout.classes) == (cls.__name__, f"{cls.__name__}/raw", tuple(cls.classes))
        extracted = sorted(f.removesuffix(".gz") for f, _ in cls.resources)
        assert sorted(f for files in layout.splits.values() for f in files) == extracted


def test_register_checksums_refuses_what_it_cannot_use(monkeypatch):
    monkeypatch.setitem(ACCEPTED_CHECKSUMS, "cifar10", {})
    with pytest.raises(ValueError, match="cifar10 has no file named data_batch_6"):
        register_checksums("cifar10", {"data_batch_6": "0" * 32})
    with pytest.raises(ValueError, match="no checksums for dataset 'shapes'"):
        register_checksums("shapes", {})
    register_checksums("cifar10", {"test_batch": "0" * 32})
    assert downloaded.checksums("cifar10") == {**CHECKSUMS["cifar10"], "test_batch": "0" * 32}
    register_checksums("cifar10", {})
    assert downloaded.checksums("cifar10") == CHECKSUMS["cifar10"]


def _on_disk(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixture copy of ``name`` as torchvision leaves it once downloaded and extracted; its --data-dir."""
    root = tmp_path / "data"
    if name == "cifar10":
        make_cifar(root)
        _register(monkeypatch, "cifar10", {p.name: _md5(p) for p in (root / "cifar-10-batches-py").iterdir()})
    elif name == "cifar100":
        make_cifar100(root, monkeypatch)
    else:
        make_mnist(root, dict(MNISTS)[name], monkeypatch)
        load(DataConfig(dataset=name, data_dir=str(root)), seed=0)  # torchvision checks and extracts the archives
    return root


def _never(*args):
    raise AssertionError("went through torchvision")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_files_on_disk_read_without_torchvision_give_torchvision_s_tensors(tmp_path, monkeypatch, name):
    root = _on_disk(name, tmp_path, monkeypatch)
    for split in ("test", "train"):
        cfg = DataConfig(dataset=name, split=split, data_dir=str(root), download=False)
        with monkeypatch.context() as m:
            m.setattr(downloaded, "load_torchvision", _never)
            ours = load(cfg, seed=0)
        theirs = downloaded.load_torchvision(cfg, name)  # torchvision's class reads the same files
        assert ours.images.dtype == torch.uint8 and ours.image_shape == theirs.image_shape and len(ours) == len(theirs) > 0
        assert torch.equal(ours.batch(0, len(ours)), theirs.batch(0, len(theirs)))
        assert ours.labels.dtype == torch.int64 and torch.equal(ours.labels, theirs.labels)
        assert ours.classes == theirs.classes and len(ours.classes) in (10, 100)


def test_reading_present_data_leaves_torchvision_unimported(tmp_path, monkeypatch):
    root = _on_disk("mnist", tmp_path, monkeypatch)
    make_cifar(root)
    md5s = {p.name: _md5(p) for p in (root / "cifar-10-batches-py").iterdir()}
    code = """if True:
        import json, sys
        from convlab.experiment import DataConfig
        from convlab.data import load, register_checksums
        register_checksums("cifar10", json.loads(sys.argv[2]))
        for name, split in (("cifar10", "test"), ("cifar10", "train"), ("mnist", "test"), ("mnist", "train")):
            ds = load(DataConfig(dataset=name, split=split, data_dir=sys.argv[1], download=False), seed=0)
            print(name, split, len(ds))
        print("torchvision imported:", "torchvision" in sys.modules)
    """
    env = {**os.environ, "PYTHONPATH": str(Path(convlab.__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", code, str(root), json.dumps(md5s)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["cifar10 test 80", "cifar10 train 60", "mnist test 20", "mnist train 12",
                                     "torchvision imported: False"]


def _payload(marker: Path) -> bytes:
    """A pickle that makes the folder ``marker`` when it is unpickled: proof that it was."""

    class MakesFolder:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return pickle.dumps({"data": MakesFolder(), "labels": [0]}, protocol=2)


@pytest.mark.parametrize("download", ["--no-download", "--download"])
def test_cifar10_damaged_file_is_refused_before_it_is_unpickled(cifar, run_cli, tmp_path, monkeypatch, download):
    proof = tmp_path / "proof"
    pickle.loads(_payload(proof))  # the payload does run when unpickled
    assert proof.is_dir()
    marker = tmp_path / "unpickled"
    (cifar.root / "cifar-10-batches-py" / "test_batch").write_bytes(_payload(marker))
    monkeypatch.setattr(CIFAR10, "url", DEAD + "cifar-10-python.tar.gz")
    r = run_cli("conv", "--data-dir", cifar.root, download, "--logdir", "logs")
    _user_error(r, "fail torchvision's integrity (MD5) check", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("images, labels, found", [
    ((20, 10, 10), 20, "20 images of 10x10 and 20 labels"),
    ((20, 28, 28), 7, "20 images of 28x28 and 7 labels"),
])
def test_extracted_mnist_files_of_the_wrong_content_are_named(run_cli, tmp_path, images, labels, found):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros(images, dtype=np.uint8)))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(labels, dtype=np.uint8)))
    r = run_cli("conv", "--dataset", "mnist", "--data-dir", tmp_path / "data", "--no-download", "-n", "1")
    assert_user_error(r, f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte in {raw} are corrupted: they hold {found}")
    assert "delete them and run again" in r.err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("download", ["--no-download", "--download"])
def test_a_copy_of_one_split_names_the_other_splits_missing_files(cifar, run_cli, tmp_path, monkeypatch, download):
    """A CIFAR10 folder holding the test split alone (as ../shared/data): training on its train split
    names the missing files and how to train on the test split instead."""
    for i in range(1, 6):
        (cifar.root / "cifar-10-batches-py" / f"data_batch_{i}").unlink()
    monkeypatch.setattr(CIFAR10, "url", DEAD + "cifar-10-python.tar.gz")
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--data-dir", cifar.root, download, "--logdir", "logs")
    _user_error(r, f"{cifar.root / 'cifar-10-batches-py'} has no data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
                   "data_batch_5 (the train split); it holds the test split: use --split test (convlab train: --split "
                   "test --holdout 0.2 trains on most of it and evaluates on the rest); or put the official "
                   "cifar-10-python.tar.gz", tmp_path)
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--data-dir", cifar.root, download, "--split", "test",
                "--holdout", "0.2", "--max-steps", "1", "--logdir", "logs", "-q")
    assert r.code == 0, r.err
