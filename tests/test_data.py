"""The dataset registry and ImageSet: names, shapes without loading, batches."""

import dataclasses

import pytest
import torch

from convlab.data import (
    DATASETS,
    SHAPES_CLASSES,
    DataError,
    ImageSet,
    dataset_help,
    get_dataset,
    make_shapes,
)
from convlab.experiment import DataConfig


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


def test_every_dataset_names_its_classes_and_mean_without_loading(cifar):
    from convlab.data import load

    for name, spec in DATASETS.items():
        if name == "folder":
            continue
        cfg = DataConfig(dataset=name)
        names, mean = spec.class_names(cfg), spec.channel_mean(cfg)
        assert len(names) == len(set(names)) == spec.class_count(cfg) in (10, 100)
        assert len(mean) == spec.shape(cfg)[0] and all(0 < m < 1 for m in mean)
    # CIFAR100's fine labels as its meta file has them: 100, sorted as its meta lists them.
    hundred = get_dataset("cifar100").class_names(DataConfig(dataset="cifar100"))
    assert list(hundred) == sorted(hundred) and hundred[:3] == ("apple", "aquarium_fish", "baby")
    # What a loader names is what the registry says, and a mean is the images' mean.
    for name, data_dir in (("shapes", "data"), ("cifar10", str(cifar.root))):
        cfg = DataConfig(dataset=name, data_dir=data_dir)
        assert load(cfg, seed=0).classes == get_dataset(name).class_names(cfg)
    pixels, _ = make_shapes(2000, seed=3)
    measured = (pixels.float().mean((0, 2, 3)) / 255).tolist()
    assert get_dataset("shapes").channel_mean(DataConfig(dataset="shapes")) == pytest.approx(measured, abs=0.02)


def test_a_folder_s_classes_and_mean_come_from_its_images(tmp_path):
    import numpy as np
    from PIL import Image

    for label, value in (("dark", 40), ("light", 200)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 10), (value, value, 0)).save(tmp_path / "imgs" / label / f"{i}.png")
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "imgs"), image_size=8)
    spec = get_dataset("folder")
    assert spec.class_names(cfg) == ("dark", "light") and spec.class_count(cfg) == 2
    assert spec.channel_mean(cfg) == pytest.approx((120 / 255, 120 / 255, 0), abs=1e-6)
    gone = dataclasses.replace(cfg, data_dir=str(tmp_path / "moved"))
    assert spec.channel_mean(gone) is None
    assert np.isfinite(spec.channel_mean(dataclasses.replace(cfg, grayscale=True))[0])
