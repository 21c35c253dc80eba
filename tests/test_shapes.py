"""The built-in shapes dataset: deterministic, well formed, splits apart, drawn batch by batch."""

import time

import numpy as np
import pytest
import torch

from convlab.data import SHAPES_CLASSES, get_dataset, load, make_shapes
from convlab.data.shapes import SHAPES_CHUNK, _chunk_seed, _draw_shapes
from convlab.experiment import DataConfig

from conftest import images, load_events


def test_shapes_is_deterministic_and_well_formed():
    a, la = make_shapes(500, seed=3)
    b, lb = make_shapes(500, seed=3)
    c, _ = make_shapes(500, seed=4)
    assert a.dtype == torch.uint8 and a.shape == (500, 3, 32, 32)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert sorted(la.unique().tolist()) == list(range(len(SHAPES_CLASSES)))


def test_shapes_images_have_content_to_find():
    images, labels = make_shapes(200, seed=0)
    x = images.float()
    # Every image has real contrast (a shape or texture on its background), none is flat.
    spread = x.amax((1, 2, 3)) - x.amin((1, 2, 3))
    assert spread.min() > 60
    # Vertical stripes vary along x and hardly along y; horizontal stripes the other way round.
    for name, along_x in (("stripes-v", True), ("stripes-h", False)):
        idx = labels == SHAPES_CLASSES.index(name)
        img = x[idx].mean(1)
        dx = (img[:, :, 1:] - img[:, :, :-1]).abs().mean()
        dy = (img[:, 1:, :] - img[:, :-1, :]).abs().mean()
        assert (dx > 2 * dy) if along_x else (dy > 2 * dx)


def test_shapes_splits_have_cifar_sizes_and_differ():
    spec = get_dataset("shapes")
    assert spec.split_sizes == {"test": 10_000, "train": 50_000}
    test = load(DataConfig(dataset="shapes", split="test"), seed=0)
    assert len(test) == 10_000 and test.image_shape == (3, 32, 32)
    assert test.classes == SHAPES_CLASSES
    start = time.perf_counter()
    train = load(DataConfig(dataset="shapes", split="train"), seed=0)
    assert len(train) == 50_000
    assert not torch.equal(train.images[:100], test.images[:100])
    assert time.perf_counter() - start < 60  # a sanity bound only; speed lives in `make bench`


def test_shapes_prefix_is_stable_and_max_batches_draws_only_what_is_used():
    full, full_labels = make_shapes(2500, seed=5)
    part, part_labels = make_shapes(1100, seed=5)
    assert torch.equal(full[:1100], part) and torch.equal(full_labels[:1100], part_labels)
    few = load(DataConfig(dataset="shapes", max_batches=3, batch_size=7), seed=5)
    assert len(few) == 21
    everything = load(DataConfig(dataset="shapes"), seed=5)
    assert torch.equal(everything.batch(0, 21), few.batch(0, len(few)))


def _batches(ds, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image and label of ``ds``, read batch by batch as the pipeline reads them."""
    starts = range(0, len(ds), batch_size)
    return (torch.cat([ds.batch(a, a + batch_size) for a in starts]),
            torch.cat([ds.batch_labels(a, a + batch_size) for a in starts]))


@pytest.mark.parametrize("batch_size, max_batches", [(7, 40), (64, 4), (100, 3), (130, 2), (300, 1)])
def test_streamed_shapes_are_the_same_pixels_whatever_batch_size_or_max_batches(batch_size, max_batches):
    ds = load(DataConfig(dataset="shapes", batch_size=batch_size, max_batches=max_batches), seed=4)
    n = batch_size * max_batches
    assert len(ds) == n and ds.image_shape == (3, 32, 32)
    pixels, labels = _batches(ds, batch_size)
    expected, expected_labels = make_shapes(n, seed=4)  # the same split, drawn at once
    assert pixels.dtype == torch.uint8 and torch.equal(pixels, expected)
    assert labels.dtype == torch.int64 and torch.equal(labels, expected_labels)
    assert torch.equal(ds.labels, expected_labels)
    # Another seed, or the other split, gives other pixels.
    assert not torch.equal(load(DataConfig(dataset="shapes", batch_size=batch_size, max_batches=max_batches), seed=5).batch(0, n), pixels)
    train = load(DataConfig(dataset="shapes", split="train", batch_size=batch_size, max_batches=max_batches), seed=4)
    assert not torch.equal(train.batch(0, n), pixels)


def test_streamed_labels_are_the_drawn_images_labels():
    ds = load(DataConfig(dataset="shapes", split="train", batch_size=50, max_batches=5), seed=2)
    for chunk in range(-(-len(ds) // SHAPES_CHUNK)):
        g = torch.Generator().manual_seed(_chunk_seed(2, "train", chunk))
        pixels, labels = _draw_shapes(SHAPES_CHUNK, g, 32)  # a chunk drawn whole, as the stream draws it
        a, b = chunk * SHAPES_CHUNK, min(len(ds), (chunk + 1) * SHAPES_CHUNK)
        assert torch.equal(ds.batch(a, b), pixels[: b - a]) and torch.equal(ds.batch_labels(a, b), labels[: b - a])


def test_streamed_shapes_draw_only_what_is_read_one_chunk_at_a_time():
    ds = load(DataConfig(dataset="shapes", split="train"), seed=0)
    stream = ds.images
    assert len(ds) == 50_000 and stream.chunks_drawn == 0  # nothing drawn before the first batch
    # Class counts come from the labels alone: no pixel is drawn to describe the split.
    assert "0 circle (5000), 1 square (5000)" in ds.describe() and stream.chunks_drawn == 0
    assert ds.batch(0, 64).shape == (64, 3, 32, 32) and stream.chunks_drawn == 1
    ds.batch(64, 128)  # runs into the second chunk
    assert stream.chunks_drawn == 2
    ds.batch(128, 192)  # still the second chunk: held, not drawn again
    assert stream.chunks_drawn == 2
    last = ds.batch(49_950, 50_000)  # the last chunk is drawn alone: nothing before it is needed
    assert stream.chunks_drawn == 3
    g = torch.Generator().manual_seed(_chunk_seed(0, "train", 50_000 // SHAPES_CHUNK - 1))
    assert torch.equal(last, _draw_shapes(SHAPES_CHUNK, g, 32)[0][-50:])


def test_streamed_shapes_end_to_end_same_input_whatever_batch_size(run_cli, tmp_path):
    """Two runs over the same 16 images, as 2 batches of 8 and 1 batch of 16, log the same input pixels."""
    common = ("conv", "--dataset", "shapes", "--logdir", "logs", "--views", "none")
    assert run_cli(*common, "--batch-size", "8", "--max-batches", "2", "--run-name", "eights").code == 0
    assert run_cli(*common, "--batch-size", "16", "--max-batches", "1", "--run-name", "sixteen").code == 0
    assert run_cli(*common, "--batch-size", "16", "--max-batches", "1", "--seed", "1", "--run-name", "seed1").code == 0
    eights = images(load_events(tmp_path / "logs" / "eights"), "input")
    (sixteen,) = images(load_events(tmp_path / "logs" / "sixteen"), "input")
    (seed1,) = images(load_events(tmp_path / "logs" / "seed1"), "input")
    assert [e.step for e in eights] == [0, 1]
    # 16 tiles in rows of 8: the first row is the first batch of 8, the second row the second.
    assert np.array_equal(sixteen.pixels, np.concatenate([e.pixels for e in eights]))
    assert not np.array_equal(seed1.pixels, sixteen.pixels)
