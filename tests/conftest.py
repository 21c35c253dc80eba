"""Shared fixtures: small CIFAR-format datasets, the CLI driven in-process, event-file reading."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

# As the convlab command does (convlab/__main__.py), before numpy loads OpenBLAS: the in-process
# runs' histograms would otherwise spin a thread per core against the PNG encoders.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest
import torch
from hypothesis import settings
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from convlab.__main__ import main as convlab_main
from convlab.data import ACCEPTED_CHECKSUMS, CIFAR10_CLASSES
from convlab.data import register_checksums as register_checksums_for
from convlab.writer import read_events

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CONVLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
# The re-packed real CIFAR-10 test split in ../shared/data (see its README): its own MD5s.
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}

torch.set_num_threads(1)

# Hypothesis draws new examples every run here, and has found real bugs that way; CI
# (.ci/run sets HYPOTHESIS_PROFILE=ci) draws the same ones every run, so that a landing is never
# refused by a draw that this commit did not cause. `pytest -m fuzz` and a local run keep exploring.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_batch(path: Path, images: np.ndarray, labels: list[int], label: str) -> None:
    n = len(images)
    batch = {
        "batch_label": label,
        "labels": labels,
        "data": images.transpose(0, 3, 1, 2).reshape(n, 3072),  # channel-planar rows, as CIFAR
        "filenames": [f"img_{i}.png" for i in range(n)],
    }
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


@dataclass
class CifarFixture:
    root: Path  # the --data-dir
    test_images: np.ndarray  # (N, 32, 32, 3) uint8, as written
    train_images: np.ndarray


def register_checksums(monkeypatch: pytest.MonkeyPatch, folder: Path, names: dict[str, str]) -> None:
    """Accept these CIFAR10 files' MD5s (test harness only), until the test ends."""
    monkeypatch.setitem(ACCEPTED_CHECKSUMS, "cifar10", {})  # so that monkeypatch undoes the registration
    register_checksums_for("cifar10", names)


def make_cifar(root: Path, n_test: int = 80, n_train_per_batch: int = 12, seed: int = 0) -> CifarFixture:
    """A small CIFAR-10 copy in the dataset's own python layout (same pickle format)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    # Smooth-ish random images (blocks), so PNGs are not pure noise.
    def images(n: int) -> np.ndarray:
        coarse = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
        return coarse.repeat(4, axis=1).repeat(4, axis=2)

    test = images(n_test)
    _write_batch(folder / "test_batch", test, [int(x) for x in rng.integers(0, 10, n_test)], "testing batch 1 of 1")
    train = []
    for i in range(1, 6):
        part = images(n_train_per_batch)
        train.append(part)
        _write_batch(folder / f"data_batch_{i}", part, [i % 10] * n_train_per_batch, f"training batch {i} of 5")
    meta = {"num_cases_per_batch": n_test, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump(meta, f, protocol=2)
    return CifarFixture(root, test, np.concatenate(train))


@pytest.fixture
def cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CifarFixture:
    fixture = make_cifar(tmp_path / "data")
    folder = fixture.root / "cifar-10-batches-py"
    register_checksums(monkeypatch, folder, {p.name: _md5(p) for p in folder.iterdir()})
    return fixture


@pytest.fixture
def shared_cifar(monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = SHARED_DATA / "cifar-10-batches-py"
    if not (folder / "test_batch").exists():
        pytest.skip(f"real CIFAR-10 copy not found at {SHARED_DATA}")
    register_checksums(monkeypatch, folder, SHARED_MD5)
    return SHARED_DATA


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Drive the real CLI entry point in-process; runs in tmp_path so ./logs and ./data are private."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        try:
            convlab_main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def assert_user_error(r: Result, message: str) -> None:
    """A user error as convlab promises it: exit 2, one line ``convlab: error: ...`` that says
    ``message``, no traceback."""
    assert r.code == 2, (r.code, r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convlab: error: "), r.err
    assert message in lines[0], lines[0]
    assert "Traceback" not in r.err + r.out


# ----------------------------------------------------------------------------- event files


@dataclass
class LoggedImage:
    step: int
    width: int
    height: int
    pixels: np.ndarray  # decoded (H, W, C) uint8


def load_events(run_dir: Path) -> event_accumulator.EventAccumulator:
    """Read a run back with TensorBoard's own loader, keeping every sample (convlab's reader:
    EventAccumulator with its record checksums computed in C)."""
    return read_events(run_dir)


def images(acc: event_accumulator.EventAccumulator, tag: str) -> list[LoggedImage]:
    out = []
    for ev in acc.Images(tag):
        pixels = np.asarray(Image.open(io.BytesIO(ev.encoded_image_string)).convert("RGB"))
        assert pixels.shape[:2] == (ev.height, ev.width)
        out.append(LoggedImage(ev.step, ev.width, ev.height, pixels))
    return out


def grid_size(n_tiles: int, tile_h: int, tile_w: int, ncols: int = 8) -> tuple[int, int]:
    """(height, width) of TensorBoard's add_images grid: 8 columns (fewer if fewer tiles), no padding."""
    cols = min(ncols, n_tiles)
    rows = -(-n_tiles // cols)
    return rows * tile_h, cols * tile_w


def only_run(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# ----------------------------------------------------------------------------- a trained classifier

# Small and quick to train, and it learns the built-in shapes, whose classes are spatial: a shape
# (circle, square, ...) on a background, or a texture. convlab predict's tests explain it.
SHAPES_CLASSIFIER = (
    "Conv2d(3, 16, 5, stride=2, padding=2)", "ReLU()", "Conv2d(16, 16, 3, padding=1)", "ReLU()", "MaxPool2d(2)",
    "Flatten()", "Linear(1024, 10)",
)


@pytest.fixture(scope="session")
def shapes_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A convlab train run of SHAPES_CLASSIFIER on shapes (250 steps of Adam: ~87% on its 256
    evaluation images, the first of the test split); trained once per session, a few seconds."""
    from convlab.config import resolve
    from convlab.train.run import train

    exp = resolve("train", {
        "stack": {"layers": list(SHAPES_CLASSIFIER)},
        "data": {"dataset": "shapes", "batch_size": 64},
        "train": {"max_steps": 250, "eval_batches": 4, "optimizer": "adam", "lr": 0.004, "snapshot_every": 1000},
        "run": {"logdir": str(tmp_path_factory.mktemp("trained")), "device": "cpu"},
    })
    return Path(train(exp)["run_dir"])
