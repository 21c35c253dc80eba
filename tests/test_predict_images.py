"""Your images as the model sees them: found, read as the training images were, what was done
said in words, and warnings where an image is far from what the model was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convlab.data import DataError, make_shapes
from convlab.data.folder import resize_and_crop
from convlab.predict.images import ImageFile, ModelInput, batches, find_images

CIFAR_INPUT = ModelInput((3, 32, 32), "cifar10", (0.4914, 0.4822, 0.4465))
MNIST_INPUT = ModelInput((1, 28, 28), "mnist", (0.1307,))


def _save(array: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 200, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- finding them


def test_files_and_folders_in_order_with_class_subfolders_as_labels(tmp_path):
    photos = tmp_path / "photos"
    for name in ("dog/b.png", "cat/z.png", "cat/a.png", "cat/nested/deep.png"):
        _save(_noise(8, 8), photos / name)
    (photos / "README.md").write_text("not an image")
    (photos / ".ipynb_checkpoints").mkdir()
    _save(_noise(8, 8), photos / ".ipynb_checkpoints" / "x.png")
    single = _save(_noise(8, 8), tmp_path / "single.jpg")
    found = find_images([str(single), str(photos)])
    names = [f.name for f in found.files]
    assert names == [str(single), f"{photos}/cat/a.png", f"{photos}/cat/nested/deep.png", f"{photos}/cat/z.png", f"{photos}/dog/b.png"]
    assert [f.label for f in found.files] == [None, "cat", "cat", "cat", "dog"]
    assert [f.given for f in found.files] == [True, False, False, False, False]
    assert found.skipped == ((f"{photos}/README.md", "not an image convlab reads"),)
    assert found.notes == (f"{photos}: 4 image file(s), labelled by their 2 class subfolders: cat, dog",)


def test_an_image_beside_the_subfolders_makes_the_folder_unlabelled(tmp_path):
    _save(_noise(8, 8), tmp_path / "f" / "sub" / "a.png")
    _save(_noise(8, 8), tmp_path / "f" / "loose.png")
    found = find_images([str(tmp_path / "f")])
    assert [f.label for f in found.files] == [None, None]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nothing.png", "image not found: "),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "is not an image convlab reads"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no images"),
])
def test_what_is_not_an_image_is_one_line(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        find_images([str(make(tmp_path))])


# ----------------------------------------------------------------------------- as the model sees them


def test_a_same_size_image_is_the_dataset_s_tensor(tmp_path):
    """A shapes image saved as PNG and read back for a shapes model is the dataset's own uint8 tensor."""
    images, _ = make_shapes(3, seed=0)
    model_input = ModelInput((3, 32, 32), "shapes", (0.5, 0.5, 0.5))
    for i in range(3):
        path = _save(images[i].permute(1, 2, 0).numpy(), tmp_path / f"{i}.png")
        seen = model_input.see(ImageFile(path, path.name))
        assert torch.equal(torch.from_numpy(seen.reading.pixels.copy()).permute(2, 0, 1), images[i])
        assert seen.reading.steps == () and seen.reading.scale == 1 and seen.reading.kept == 1


def test_each_kind_of_file_is_read_and_what_was_done_is_said(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (200, 0, 0, 255)  # an opaque red square on a transparent field
    palette = Image.new("P", (48, 36), 1)
    palette.putpalette([200, 30, 30, 20, 20, 220] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    deep = (np.arange(64)[None, :].repeat(64, 0) * 1024).astype(np.uint16)  # 0 .. 64512 left to right
    Image.fromarray(deep).save(tmp_path / "deep16.png")
    photo = np.zeros((750, 1000, 3), np.uint8)
    photo[:, :500] = 255  # stored landscape, its left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show", as phones write
    Image.fromarray(photo).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    files = {
        "rgba": _save(rgba, tmp_path / "rgba.png"),
        "palette": tmp_path / "palette.png",
        "deep16": tmp_path / "deep16.png",
        "phone": tmp_path / "phone.jpg",
    }
    seen = {k: CIFAR_INPUT.see(ImageFile(p, p.name)) for k, p in files.items()}
    for s in seen.values():
        assert s.reading.pixels.shape == (32, 32, 3) and s.reading.pixels.dtype == np.uint8
    steps = {k: " | ".join(s.reading.steps) for k, s in seen.items()}
    assert "RGBA: transparent pixels put over white" in steps["rgba"]
    assert seen["rgba"].reading.pixels[1, 1].tolist() == [255, 255, 255] and seen["rgba"].reading.pixels[16, 16].tolist() == [200, 0, 0]
    assert "palette (P) -> RGB: each palette index looked up" in steps["palette"]
    assert "centre-cropped to 32x32: 10 column(s) cut off" in steps["palette"]
    assert "16-bit grey (I;16): scaled to 8 bits" in steps["deep16"] and "grey (L) -> RGB" in steps["deep16"]
    assert seen["deep16"].reading.pixels[0, -1, 0] > 240  # not clipped: the bright end stays bright, the dark end dark
    assert seen["deep16"].reading.pixels[0, 0, 0] < 15
    assert "EXIF orientation 6: turned 90° clockwise" in steps["phone"] and "JPEG decoded at 1/8" in steps["phone"]
    assert "resized (bilinear)" in steps["phone"] and "23.4x smaller" in steps["phone"]
    assert seen["phone"].reading.size == (1000, 750)  # upright: portrait
    top, bottom = seen["phone"].reading.pixels[:10].mean(), seen["phone"].reading.pixels[-10:].mean()
    assert top > 240 and bottom < 15  # the white half is on top once turned


def test_a_grey_model_reads_colour_as_luma_and_says_so(tmp_path):
    path = _save(np.full((28, 28, 3), (255, 0, 0), np.uint8), tmp_path / "red.png")
    seen = MNIST_INPUT.see(ImageFile(path, "red.png"))
    assert seen.reading.pixels.shape == (28, 28, 1) and seen.reading.pixels[0, 0, 0] == 76  # ITU-R 601 luma of red
    assert seen.reading.steps == ("RGB -> grey (L): luma, 0.299 R + 0.587 G + 0.114 B",)


def test_a_non_square_input_is_covered_then_cropped():
    """A model trained on 24x40 images: the picture is resized to cover 24x40, then its centre cut."""
    im = Image.fromarray(_noise(100, 100))
    out = resize_and_crop(im, (24, 40))
    assert out.size == (40, 24)
    assert np.array_equal(np.asarray(out), np.asarray(im.resize((40, 40), Image.BILINEAR).crop((0, 8, 40, 32))))


# ----------------------------------------------------------------------------- warnings


def test_a_digit_drawn_dark_on_white_is_far_from_mnist_and_looks_inverted(tmp_path):
    page = np.full((28, 28, 3), 250, np.uint8)
    page[6:22, 12:16] = 10  # a dark "1" on white paper
    seen = MNIST_INPUT.see(ImageFile(_save(page, tmp_path / "one.png"), "one.png"))
    (warning,) = seen.warnings
    assert "mean brightness 0.90" in warning and "mnist training images' 0.13" in warning and "try it inverted" in warning
    light = MNIST_INPUT.see(ImageFile(_save(255 - page, tmp_path / "inverted.png"), "inverted.png"))
    assert light.warnings == ()  # light on black, as MNIST: nothing to say


def test_a_photo_shrunk_far_or_cropped_hard_is_warned_about(tmp_path):
    big = CIFAR_INPUT.see(ImageFile(_save(_noise(600, 800), tmp_path / "big.png"), "big.png"))
    assert any(w.startswith("shrunk 19x to 32x32") for w in big.warnings), big.warnings
    wide = CIFAR_INPUT.see(ImageFile(_save(_noise(40, 200), tmp_path / "wide.png"), "wide.png"))
    assert any("the centre crop keeps 20% of the picture" in w for w in wide.warnings), wide.warnings
    fine = CIFAR_INPUT.see(ImageFile(_save(_noise(64, 64), tmp_path / "fine.png"), "fine.png"))
    assert fine.warnings == ()


# ----------------------------------------------------------------------------- batches


def test_batches_hold_every_image_in_order_and_name_what_cannot_be_read(tmp_path):
    paths = [_save(np.full((32, 32, 3), 10 * i, np.uint8), tmp_path / "f" / f"{i:02d}.png") for i in range(11)]
    broken = tmp_path / "f" / "05b.png"  # between 05 and 06: a header over half of the data
    data = paths[0].read_bytes()
    Image.fromarray(_noise(64, 64)).save(broken)
    broken.write_bytes(broken.read_bytes()[:200])
    found = find_images([str(tmp_path / "f")])
    out = list(batches(found.files, CIFAR_INPUT, 4))
    assert [len(b.seen) for b in out] == [4, 3, 4] and [b.start for b in out] == [0, 4, 7]
    assert [b.skipped for b in out][1][0][0].endswith("05b.png") and "cannot be decoded" in out[1].skipped[0][1]
    values = torch.cat([b.pixels[:, 0, 0, 0] for b in out]).tolist()
    assert values == [10 * i for i in range(11)]
    assert data == paths[0].read_bytes()
