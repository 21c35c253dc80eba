"""RunWriter: the same pictures as SummaryWriter.add_images, encoded off the main thread, in order."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_masked_crc32c
from torch.utils.tensorboard import SummaryWriter

from convlab import writer as writer_module
from convlab.writer import RunWriter, encode_png, image_grid

from conftest import images, load_events


def _batch(n: int, c: int, h: int = 5, w: int = 7, seed: int = 0) -> torch.Tensor:
    """Floats that hit TensorBoard's edge cases: k/255 (truncated to k-1 after x*255), <0, >1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), generator=g).float() / 255
    x.view(-1)[::7] = -0.5
    x.view(-1)[::11] = 1.7
    return x


def _logged(tmp_path: Path, name: str, log) -> list:
    run = tmp_path / name
    run.mkdir()
    log(run)
    (path,) = run.glob("events.out.tfevents.*")
    protos = [(ev.step, v.image.height, v.image.width, v.image.colorspace)
              for ev in EventFileLoader(str(path)).Load() for v in ev.summary.value]
    return protos, images(load_events(run), "x")


def _with_run_writer(batch):
    def log(run):
        w = RunWriter(run)
        w.images("x", batch, 0)
        w.close()
    return log


def _with_summary_writer(batch):
    def log(run):
        w = SummaryWriter(str(run))
        w.add_images("x", batch, 0)
        w.close()
    return log


@pytest.mark.parametrize(
    "batch",
    [
        _batch(64, 3),  # full rows of 8
        _batch(13, 3),  # a last, partial row
        _batch(1, 3),
        _batch(10, 1),  # grey tiles become RGB
        _batch(9, 3).double(),  # float64 goes through float32, as TensorBoard does
        torch.randint(0, 256, (11, 3, 4, 6), dtype=torch.uint8),  # uint8 taken as is
    ],
    ids=["64rgb", "13rgb", "1rgb", "10grey", "float64", "uint8"],
)
def test_same_decoded_pixels_as_add_images(tmp_path, batch):
    ours_meta, ours = _logged(tmp_path, "ours", _with_run_writer(batch))
    theirs_meta, theirs = _logged(tmp_path, "theirs", _with_summary_writer(batch))
    assert ours_meta == theirs_meta
    assert len(ours) == 1
    np.testing.assert_array_equal(ours[0].pixels, theirs[0].pixels)


def test_floats_are_truncated_after_x255_like_tensorboard():
    x = torch.tensor([0.0, 1 / 255, 2 / 255, 254 / 255, 1.0, -1.0, 2.0]).view(1, 1, 1, 7)
    grid = image_grid(x)
    expected = (x.numpy().astype(np.float32) * 255).clip(0, 255).astype(np.uint8).reshape(7)
    assert grid.shape == (1, 7, 3)
    assert grid[0, :, 0].tolist() == expected.tolist()
    assert grid[0, :, 0].tolist()[-2:] == [0, 255]


def test_grid_is_a_fresh_tensor():
    batch = torch.randint(0, 256, (1, 3, 4, 4), dtype=torch.uint8)
    grid = image_grid(batch)
    batch.zero_()
    assert grid.any()


@pytest.mark.parametrize("shape", [(3, 2, 4, 4), (4, 3, 4), (0, 3, 4, 4)])
def test_grid_rejects_what_add_images_cannot_show(shape):
    with pytest.raises(ValueError):
        image_grid(torch.zeros(shape))


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_png_round_trip(h, w, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(pixels)))
    assert decoded.mode == "RGB" and decoded.size == (w, h)
    np.testing.assert_array_equal(np.asarray(decoded), pixels)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_native_crc32c_matches_tensorboards_own(data):
    from tensorboard.summary.writer import record_writer

    assert writer_module.use_native_crc32c()
    assert record_writer.masked_crc32c is not tensorboard_masked_crc32c
    assert record_writer.masked_crc32c(data) == tensorboard_masked_crc32c(data)


def _events(run_dir: Path) -> list[tuple[str, int]]:
    """(tag, step) of every summary value, in file order, read with TensorBoard's loader."""
    (path,) = run_dir.glob("events.out.tfevents.*")
    return [(v.tag, ev.step) for ev in EventFileLoader(str(path)).Load() for v in ev.summary.value]


class SlowEncoder:
    """Wraps the real encoder: slow enough that encodes pile up; records how many are pending."""

    def __init__(self, monkeypatch, delay: float = 0.002, fail_on_call: int | None = None):
        self.real = writer_module.encode_png
        self.delay, self.fail_on_call = delay, fail_on_call
        self.writer: RunWriter | None = None
        self.calls, self.max_seen = 0, 0
        self.lock = threading.Lock()
        monkeypatch.setattr(writer_module, "encode_png", self)

    def __call__(self, pixels):
        with self.lock:
            self.calls += 1
            call = self.calls
            self.max_seen = max(self.max_seen, self.writer.in_flight)
        time.sleep(self.delay)
        if call == self.fail_on_call:
            raise OSError("disk on fire")
        return self.real(pixels)


def test_in_flight_encodes_stay_bounded_over_many_steps(tmp_path, monkeypatch):
    slow = SlowEncoder(monkeypatch)
    w = slow.writer = RunWriter(tmp_path, max_in_flight=3, encode_workers=2)
    batch = _batch(4, 3, 8, 8)
    seen = []
    for step in range(150):
        w.images("a", batch, step)
        w.images("b", batch, step)
        w.scalar("s", float(step), step)
        seen.append(w.in_flight)
    assert max(seen) <= 3 and slow.max_seen <= 3
    assert max(seen) == 3  # encodes did pile up, so the bound is what held them
    w.close()
    assert w.in_flight == 0
    expected = [(tag, step) for step in range(150) for tag in ("a", "b", "s")]
    assert _events(tmp_path) == expected  # close() waited for all, and the order is the call order


def test_events_keep_call_order_and_hparams_text_scalars_read_back(tmp_path, monkeypatch):
    SlowEncoder(monkeypatch, delay=0.01).writer = w = RunWriter(tmp_path)
    w.text("config", "hello")
    w.hparams({"lr": 0.1, "name": "x"}, ["s"])
    for step in range(3):
        w.images("img", _batch(2, 3), step)
        w.scalar("s", step / 2, step)
    w.close()
    tags = _events(tmp_path)
    assert tags[0] == ("config/text_summary", 0)
    assert [t for t in tags if t[0] in ("img", "s")] == [("img", 0), ("s", 0), ("img", 1), ("s", 1), ("img", 2), ("s", 2)]
    acc = load_events(tmp_path)
    assert [e.value for e in acc.Scalars("s")] == [0.0, 0.5, 1.0]
    assert acc.PluginTagToContent("hparams")
    assert [im.step for im in images(acc, "img")] == [0, 1, 2]


def test_an_encode_error_surfaces_and_the_rest_is_still_written(tmp_path, monkeypatch):
    slow = SlowEncoder(monkeypatch, delay=0.005, fail_on_call=3)
    w = slow.writer = RunWriter(tmp_path, max_in_flight=2, encode_workers=1)
    with pytest.raises(OSError, match="disk on fire"):
        for step in range(20):
            w.images("a", _batch(2, 3), step)
        w.flush()
    w.close()
    steps = [im.step for im in images(load_events(tmp_path), "a")]
    assert 2 not in steps and steps == sorted(steps) and steps[:2] == [0, 1]


def test_close_raises_an_error_from_a_pending_encode(tmp_path, monkeypatch):
    slow = SlowEncoder(monkeypatch, delay=0.02, fail_on_call=1)
    w = slow.writer = RunWriter(tmp_path, max_in_flight=4)
    w.images("a", _batch(2, 3), 0)  # still encoding when close() is called
    w.scalar("s", 1.0, 0)
    with pytest.raises(OSError, match="disk on fire"):
        w.close()
    assert _events(tmp_path) == [("s", 0)]
    w.close()  # idempotent


def test_closed_writer_refuses_and_discard_removes_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    w = RunWriter(run)
    w.images("a", _batch(2, 3), 0)
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.images("a", _batch(2, 3), 1)
    w2 = RunWriter(run)
    w2.images("a", _batch(2, 3), 0)
    w2.discard()
    assert not run.exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_grid_is_built_on_the_gpu_with_the_same_pixels():
    x = _batch(13, 3, 30, 30)
    on_gpu = image_grid(x.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), image_grid(x))


def test_writers_sharing_a_batch_encode_its_grid_once_and_write_the_same_events(tmp_path, monkeypatch):
    built = []
    real_grid, real_summary = writer_module.image_grid, writer_module.image_summary
    monkeypatch.setattr(writer_module, "image_grid", lambda batch: built.append(batch) or real_grid(batch))
    # Slow encodes: some are still queued when the first writer leaves.
    monkeypatch.setattr(writer_module, "image_summary", lambda *a: time.sleep(0.02) or real_summary(*a))
    shared = writer_module.SharedBatch()
    dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    writers = []
    for d in dirs:
        d.mkdir()
        writers.append(RunWriter(d, max_in_flight=64))
        writers[-1].shared = shared
    for step in range(3):
        x = _batch(6, 3, seed=step)
        shared.set(x)
        for i, w in enumerate(writers):
            w.images("input", x, step)
            w.images("output", x[:, :1] * (i + 1), step)  # each writer's own: never shared
    assert len(built) == 3 + 3 * 3  # the input once a step; each output once per writer and step
    # The first writer encoded the shared grids; leaving, it cancels none the others wait for.
    writers[0].discard()
    for w in writers[1:]:
        w.close()

    def protos(run: Path) -> list:
        (path,) = run.glob("events.out.tfevents.*")
        return [(ev.step, v.tag, list(v.tensor.string_val)) for ev in EventFileLoader(str(path)).Load()
                for v in ev.summary.value]

    b, c = protos(dirs[1]), protos(dirs[2])
    assert [p for p in b if p[1] == "input"] == [p for p in c if p[1] == "input"] and len(b) == len(c) == 6
    assert [p[0] for p in b if p[1] == "input"] == [0, 1, 2] and all(p[2] for p in b)
    assert [p for p in b if p[1] == "output"] != [p for p in c if p[1] == "output"]
    assert not dirs[0].exists()
