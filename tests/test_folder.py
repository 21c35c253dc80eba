"""--dataset folder: a folder of your own images, every format and mode, errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from convlab.data import DataError, folder_shape, get_dataset, load
from convlab.experiment import DataConfig

from conftest import assert_user_error, grid_size, images, load_events, only_run


def _user_error(r, message: str, tmp_path: Path) -> str:
    """A one-line user error, and no run left behind."""
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
    return r.err.splitlines()[0]


# ----------------------------------------------------------------------------- fixtures


def _thirds(w: int, h: int) -> Image.Image:
    """Red | green | blue vertical bands: where a crop comes from is visible in its pixels."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 3, 0] = 255
    a[:, w // 3 : 2 * w // 3, 1] = 255
    a[:, 2 * w // 3 :, 2] = 255
    return Image.fromarray(a)


def _truncated_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a valid header over missing data: an interrupted copy


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """An ImageFolder-layout folder: every format, many modes and sizes, and files to skip."""
    root = tmp_path / "photos"
    for d in ("cat/nested", "dog", ".ipynb_checkpoints"):
        (root / d).mkdir(parents=True)
    _thirds(300, 200).save(root / "cat" / "bands.png")  # RGB, landscape
    Image.new("L", (50, 80), 90).save(root / "cat" / "nested" / "grey.jpg", quality=100)  # greyscale JPEG, portrait
    rgba = np.zeros((64, 64, 4), np.uint8)  # transparent everywhere but an opaque black square
    rgba[16:48, 16:48, 3] = 255
    Image.fromarray(rgba, "RGBA").save(root / "dog" / "alpha.png")
    frames = [Image.new("P", (40, 40), 0), Image.new("P", (40, 40), 1)]
    for f in frames:
        f.putpalette([200, 30, 30, 20, 20, 220] + [0] * 762)
    frames[0].save(root / "dog" / "anim.gif", save_all=True, append_images=frames[1:])  # palette, 2 frames
    Image.new("RGB", (33, 17), (10, 200, 10)).save(root / "dog" / "plain.bmp")
    Image.new("RGB", (70, 70), (250, 250, 0)).save(root / "dog" / "web.webp", lossless=True)
    grey16 = np.full((20, 20), 32768, np.uint16)
    grey16[:, 10:] = 65535
    Image.fromarray(grey16).save(root / "dog" / "deep16.png")  # 16-bit grey
    _truncated_png(root / "dog" / "broken.png")
    (root / "dog" / "notes.txt").write_text("not an image\n")
    (root / "README.md").write_text("a file beside the class folders does not break the layout\n")
    Image.new("RGB", (8, 8)).save(root / ".ipynb_checkpoints" / "copy.png")  # hidden: never read
    return root


# Sorted by path components: cat/bands, cat/nested/grey, then dog/... in name order.
ORDER = ["cat/bands.png", "cat/nested/grey.jpg", "dog/alpha.png", "dog/anim.gif", "dog/deep16.png",
         "dog/plain.bmp", "dog/web.webp"]


def _folder(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="folder", data_dir=str(root), **kw)


# ----------------------------------------------------------------------------- tests


def test_folder_reads_every_format_as_imagefolder(photos):
    ds = load(_folder(photos), seed=0)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(ORDER), 3, 128, 128)
    assert ds.classes == ("cat", "dog")
    assert ds.labels.tolist() == [0, 0, 1, 1, 1, 1, 1]
    notes = "\n".join(ds.notes)
    assert "2 classes from the first-level subfolders: cat, dog" in notes
    # The text file, the README and the truncated PNG are skipped and named; the hidden folder is not read.
    assert "skipped 3 file(s) that are not readable images" in notes
    assert "dog/broken.png" in notes and "dog/notes.txt" in notes and "README.md" in notes
    assert "ipynb" not in notes
    assert "0 cat (2), 1 dog (5)" in ds.describe()
    again = load(_folder(photos), seed=1)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels)


def test_folder_pixels_follow_each_mode(photos):
    ds = load(_folder(photos), seed=0)
    img = {name: ds.images[i].permute(1, 2, 0).numpy().astype(int) for i, name in enumerate(ORDER)}

    # Exactly torchvision's Resize(128) + CenterCrop(128) of the RGB file.
    expect = v2.functional.center_crop(v2.functional.resize(Image.open(photos / "cat" / "bands.png"), [128]), [128, 128])
    assert np.array_equal(img["cat/bands.png"], np.asarray(expect))
    # 300x200 -> 192x128, centre 128 columns = source columns 50..250: red, green, blue bands, narrower red/blue.
    assert img["cat/bands.png"][64, 5].tolist() == [255, 0, 0]
    assert img["cat/bands.png"][64, 64].tolist() == [0, 255, 0]
    assert img["cat/bands.png"][64, 122].tolist() == [0, 0, 255]

    grey = img["cat/nested/grey.jpg"]  # greyscale becomes R = G = B
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert abs(grey.mean() - 90) < 2

    alpha = img["dog/alpha.png"]  # transparent over white, the opaque square stays black
    assert alpha[5, 5].tolist() == [255, 255, 255] and alpha[64, 64].tolist() == [0, 0, 0]

    assert img["dog/anim.gif"][64, 64].tolist() == [200, 30, 30]  # the first frame, palette resolved
    assert img["dog/plain.bmp"][64, 64].tolist() == [10, 200, 10]
    assert img["dog/web.webp"][64, 64].tolist() == [250, 250, 0]
    deep = img["dog/deep16.png"]  # 16-bit grey scaled to 8 bits, not clipped to white
    assert deep[64, 10].tolist() == [128] * 3 and deep[64, 120].tolist() == [255] * 3


def test_folder_grayscale_is_one_channel_luma(photos):
    ds = load(_folder(photos, grayscale=True), seed=0)
    assert ds.images.shape == (len(ORDER), 1, 128, 128)
    bands = ds.images[ORDER.index("cat/bands.png"), 0]
    # PIL's 'L' (ITU-R 601-2 luma, as torchvision's Grayscale): red 76, green 150, blue 29.
    assert [bands[64, 5].item(), bands[64, 64].item(), bands[64, 122].item()] == [76, 150, 29]
    assert ds.images[ORDER.index("dog/alpha.png"), 0, 5, 5].item() == 255


def test_folder_image_size_0_keeps_sizes(tmp_path):
    root = tmp_path / "same"
    root.mkdir()
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(3)]
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(root / f"{i}.png")
    assert folder_shape(_folder(root, image_size=0)) == (3, 24, 40)
    ds = load(_folder(root, image_size=0), seed=0)
    assert ds.classes == () and ds.labels.tolist() == [-1, -1, -1]
    assert "unlabelled" in ds.describe()
    for i, a in enumerate(arrays):
        assert np.array_equal(ds.images[i].permute(1, 2, 0).numpy(), a)  # not resampled at all


def test_folder_image_size_0_with_mixed_sizes_names_an_offender(photos):
    with pytest.raises(DataError, match=r"--image-size 0 keeps each image's own size.*e\.g\. cat/.* is \d+x\d+"):
        folder_shape(_folder(photos, image_size=0))


def test_folder_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "phone"
    root.mkdir()
    a = np.zeros((20, 40, 3), np.uint8)  # stored landscape 40 wide, left half white
    a[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write
    Image.fromarray(a).save(root / "photo.jpg", exif=exif, quality=100)
    assert folder_shape(_folder(root, image_size=0)) == (3, 40, 20)  # shown portrait
    shown = load(_folder(root, image_size=0), seed=0).images[0, 0].float()
    assert shown[:18].mean() > 240 and shown[22:].mean() < 15  # the white half is now on top


def test_folder_order_is_sorted_not_creation_order(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for name, value in (("b.png", 2), ("a.png", 1), ("c.png", 3), ("a10.png", 4)):
        Image.new("L", (10, 10), value).save(root / name)
    ds = load(_folder(root, image_size=0, grayscale=True), seed=0)
    assert ds.images[:, 0, 0, 0].tolist() == [1, 4, 2, 3]  # a, a10, b, c


def test_folder_images_beside_subfolders_are_unlabelled(tmp_path):
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(root / "top.png")
    Image.new("RGB", (10, 10)).save(root / "sub" / "inner.png")
    ds = load(_folder(root), seed=0)
    assert len(ds) == 2 and ds.classes == () and ds.labels.tolist() == [-1, -1]


def test_folder_one_image_file(photos):
    ds = load(_folder(photos / "dog" / "plain.bmp", image_size=0), seed=0)
    assert ds.images.shape == (1, 3, 17, 33)


def test_folder_reads_only_what_max_batches_needs(photos):
    cfg = _folder(photos, batch_size=2, max_batches=1)
    assert get_dataset("folder").num_images(cfg) == len(ORDER) + 1  # headers only: the truncated PNG counts
    ds = load(cfg, seed=0)
    assert len(ds) == 2 and ds.labels.tolist() == [0, 0]
    assert f"the first of {len(ORDER) + 1}" in ds.notes[0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "found no images under .*empty"),
        (lambda root: None, "does not exist"),
        (lambda root: (root.mkdir(), (root / "a.txt").write_text("x")), r"only 1 file\(s\) that are not readable images \(a.txt\)"),
        (lambda root: (root.mkdir(), _truncated_png(root / "cut.png")), "no image it could read"),
    ],
)
def test_folder_without_images_is_a_clear_error(tmp_path, make, message):
    root = tmp_path / "in"
    make(root)
    with pytest.raises(DataError, match=message):
        get_dataset("folder").shape(_folder(root))
        load(_folder(root), seed=0)


def test_folder_has_no_train_split(photos):
    with pytest.raises(DataError, match="no train/test split.*drop --split train"):
        folder_shape(_folder(photos, split="train"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "shapes", "--image-size", "64"], "--image-size applies to --dataset folder only; shapes images are 32x32"),
        (["--dataset", "shapes", "--grayscale"], "--grayscale applies to --dataset folder"),
        (["--dataset", "folder", "--image-size", "-1"], "image_size must be 0 (keep each image's size) or more, got -1"),
        (["--dataset", "folder", "--data-dir", "nowhere"], "--data-dir nowhere does not exist"),
    ],
)
def test_folder_option_errors_are_one_line(run_cli, tmp_path, args, message):
    _user_error(run_cli("conv", *args, "--logdir", "logs"), message, tmp_path)


def test_folder_end_to_end_with_labels_in_the_text_summary(photos, run_cli, tmp_path):
    r = run_cli("conv", "--dataset", "folder", "--data-dir", photos, "--image-size", "64", "--logdir", "logs")
    assert r.code == 0, r.err
    assert "skipped 3 file(s) that are not readable images" in r.out and "cat, dog" in r.out
    run_dir = only_run(tmp_path / "logs")
    assert run_dir.name.startswith("conv-c6-k3-s1-p0-folder-")
    acc = load_events(run_dir)
    (inp,) = images(acc, "input")
    assert (inp.height, inp.width) == grid_size(len(ORDER), 64, 64)
    text = acc.Tensors("data/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "folder (all): 7 images of (3, 64, 64)" in text and "0 cat (2), 1 dog (5)" in text
    assert "dog/broken.png" in text


def test_grayscale_folder_end_to_end(photos, run_cli, tmp_path):
    r = run_cli("conv", "--dataset", "folder", "--data-dir", photos, "--grayscale", "-c", "2", "--logdir", "logs",
                "--run-name", "g")
    assert r.code == 0, r.err
    assert "Conv2d(1, 2, kernel_size=(3, 3)" in r.out
    acc = load_events(tmp_path / "logs" / "g")
    (inp,) = images(acc, "input")
    assert (inp.height, inp.width) == grid_size(len(ORDER), 128, 128)
    tile = inp.pixels[:128, :128].astype(int)
    assert abs(tile[64, 64, 0] - 150) <= 1 and (tile[..., 0] == tile[..., 2]).all()  # green band as luma, grey
    (out,) = images(acc, "output")
    assert (out.height, out.width) == grid_size(len(ORDER) * 2, 126, 126)
    assert "grayscale = true" in (tmp_path / "logs" / "g" / "config.toml").read_text()


@pytest.mark.parametrize("width, height, size, mode", [
    (300, 200, 128, "RGB"), (200, 300, 128, "RGB"), (129, 128, 128, "L"), (128, 128, 128, "RGB"),
    (37, 1000, 64, "RGB"), (1000, 37, 32, "L"), (64, 48, 128, "RGB"), (7, 5, 3, "RGB"),
])
def test_resize_and_crop_is_torchvisions_resize_and_center_crop(width, height, size, mode):
    from torchvision.transforms.v2 import functional as F

    from convlab.data.folder import resize_and_crop

    rng = np.random.default_rng(width * height)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    expected = np.asarray(F.center_crop(F.resize(im, [size]), [size, size]))
    got = np.asarray(resize_and_crop(im, size))
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_reading_a_folder_imports_no_torchvision(tmp_path):
    import subprocess
    import sys

    Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    code = (
        "import sys\nfrom convlab.experiment import DataConfig\nfrom convlab.data import load\n"
        f"s = load(DataConfig(dataset='folder', data_dir={str(tmp_path)!r}), 0)\n"
        "print(s.image_shape, 'torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 128, 128) False"


def test_a_fifo_named_like_an_image_is_skipped_not_read(run_cli, tmp_path):
    import os

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), 200, dtype=np.uint8)).save(folder / "a.png")
    os.mkfifo(folder / "x.png")  # opening it for reading would block forever
    r = run_cli("conv", "--dataset", "folder", "--data-dir", folder, "--image-size", "32", "--logdir", "logs")
    assert r.code == 0, r.err
    assert "1 image(s) from" in r.out and "skipped 1 file(s) that are not readable images (x.png)" in r.out
    assert_user_error(run_cli("conv", "--dataset", "folder", "--data-dir", folder / "x.png"), "no images")


def test_an_image_too_long_to_resize_is_skipped_before_decoding(run_cli, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((1, 300_000), dtype=np.uint8)).save(folder / "line.png")  # a few hundred bytes
    Image.fromarray(np.full((40, 60, 3), 90, dtype=np.uint8)).save(folder / "ok.png")
    r = run_cli("conv", "--dataset", "folder", "--data-dir", folder, "--logdir", "logs")
    assert r.code == 0, r.err
    assert "skipped 1 image(s) too long to resize to --image-size 128 (e.g. line.png: 1x300000 would become 128x38,400,000)" in r.out
    (folder / "ok.png").unlink()
    assert_user_error(run_cli("conv", "--dataset", "folder", "--data-dir", folder), "1 image(s) too long to resize")


def test_a_decompression_bomb_is_skipped_without_a_warning(run_cli, tmp_path, recwarn):
    folder = tmp_path / "imgs"
    folder.mkdir()
    limit = Image.MAX_IMAGE_PIXELS
    Image.fromarray(np.zeros((limit // 4000 + 10, 4000), dtype=np.uint8)).save(folder / "bomb.png")
    Image.fromarray(np.full((40, 60, 3), 90, dtype=np.uint8)).save(folder / "ok.png")
    r = run_cli("conv", "--dataset", "folder", "--data-dir", folder, "--logdir", "logs")
    assert r.code == 0, r.err
    assert "skipped 1 file(s) that are not readable images (bomb.png)" in r.out
    assert "DecompressionBomb" not in r.out + r.err
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_names_that_are_not_utf8_are_shown_escaped(run_cli, tmp_path):
    import os

    folder = tmp_path / "imgs"
    for cls in (b"cl\xffass", b"plain"):
        (folder / os.fsdecode(cls)).mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 60, dtype=np.uint8)).save(folder / os.fsdecode(cls) / "a.png")
    (folder / "plain" / os.fsdecode(b"n\xfeote.txt")).write_text("not an image")
    r = run_cli("conv", "--dataset", "folder", "--data-dir", folder, "--image-size", "32", "--logdir", "logs")
    assert r.code == 0, r.err
    assert "classes from the first-level subfolders: cl\\xffass, plain" in r.out
    assert "(plain/n\\xfeote.txt)" in r.out
    acc = load_events(only_run(tmp_path / "logs"))
    assert "0 cl\\xffass (1), 1 plain (1)" in acc.Tensors("data/text_summary")[0].tensor_proto.string_val[0].decode()
