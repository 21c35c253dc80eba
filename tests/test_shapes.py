"""The built-in shapes dataset: deterministic, well formed, splits apart."""

import time

import torch

from convlab.config import DataConfig
from convlab.data import SHAPES_CLASSES, get_dataset, load, make_shapes


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
    assert torch.equal(everything.images[:21], few.images)
