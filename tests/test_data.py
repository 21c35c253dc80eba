"""The dataset registry and ImageSet: names, shapes without loading, batches."""

import dataclasses

import pytest
import torch

from convlab.config import DataConfig
from convlab.data import (
    DATASETS,
    SHAPES_CLASSES,
    DataError,
    ImageSet,
    dataset_help,
    get_dataset,
    make_shapes,
)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'mnistt'; choose from cifar10, shapes"):
        get_dataset("mnistt")


def test_every_dataset_says_its_shape_without_loading():
    for name, spec in DATASETS.items():
        if name != "folder":
            c, h, w = spec.shape(DataConfig(dataset=name))
            assert c in (1, 3) and spec.num_images(DataConfig(dataset=name)) > 0


def test_batch_is_a_contiguous_slice_of_the_split():
    pixels, labels = make_shapes(20, seed=1)
    ds = ImageSet("shapes", "test", pixels, labels, SHAPES_CLASSES)
    images = pixels.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # a strided view, as of NHWC data
    strided = dataclasses.replace(ds, images=images)
    assert not strided.images.is_contiguous()
    for s in (ds, strided):
        batch = s.batch(5, 15)
        assert batch.dtype == torch.uint8 and batch.shape == (10, 3, 32, 32) and batch.is_contiguous()
        assert torch.equal(batch, ds.images[5:15])
        labels = s.batch_labels(5, 15)
        assert labels.dtype == torch.int64 and torch.equal(labels, ds.labels[5:15])
    assert strided.batch(15, 99).shape[0] == 5  # the last batch may be short, as slicing


def test_dataset_help_lists_every_dataset_with_its_summary():
    lines = dataset_help().splitlines()
    assert [line.split(":")[0] for line in lines] == list(DATASETS)
    assert all(line.split(": ", 1)[1] == DATASETS[line.split(":")[0]].summary for line in lines)
