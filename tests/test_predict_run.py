"""convlab predict end to end, through the real CLI: a training run's model on your images, what
it says (terminal, --json, the run's tags read back with TensorBoard's loader, the sheets) and
bad input as one line with nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convlab import planning
from convlab.config import resolve
from convlab.data import SHAPES_CLASSES, make_shapes
from convlab.trained import run_settings

from conftest import assert_user_error, images, load_events, only_run

EVAL_IMAGES = 256  # the run's evaluation set: eval_batches 4 of 64, the first of shapes' test split


def _texts(acc, tag: str) -> dict[int, str]:
    return {ev.step: ev.tensor_proto.string_val[0].decode() for ev in acc.Tensors(f"{tag}/text_summary")}


def _nothing_written(tmp_path: Path) -> None:
    """No run and no sheet (the tests' sheets are named why*.png or x.png)."""
    logs = tmp_path / "logs"
    assert not logs.exists() or not any(logs.iterdir()), list(logs.iterdir())
    assert not list(tmp_path.glob("why*.png")) and not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def eval_folder(shapes_classifier, tmp_path_factory) -> Path:
    """The run's evaluation images as PNG files, each in its class's subfolder (ImageFolder)."""
    root = tmp_path_factory.mktemp("eval") / "shapes"
    pixels, labels = make_shapes(EVAL_IMAGES, seed=0, split="test")
    for i in range(EVAL_IMAGES):
        folder = root / SHAPES_CLASSES[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def oddities(tmp_path_factory) -> dict[str, Path]:
    """What learners' images are like: transparency, a palette, 16-bit grey, a big phone photo."""
    root = tmp_path_factory.mktemp("odd")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[20:44, 20:44] = (230, 230, 90, 255)
    Image.fromarray(rgba, "RGBA").save(root / "sticker.png")
    palette = Image.new("P", (50, 40), 1)
    palette.putpalette([20, 20, 20, 240, 240, 240] + [0] * 762)
    palette.save(root / "palette.gif")
    deep = (np.arange(48)[None, :].repeat(48, 0) * 1300).astype(np.uint16)
    Image.fromarray(deep).save(root / "scan16.png")
    photo = np.random.default_rng(0).integers(0, 256, (750, 1000, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(root / "phone.jpg", exif=exif, quality=90)
    return {p.stem: p for p in root.iterdir()}


def _run_predictions(run_dir: Path, pixels: torch.Tensor) -> list[int]:
    """What the training run's own evaluation computes for these images: the same model, fed as
    convlab train evaluates (batches of 64, Plan.batch_input), argmax of the last stage."""
    p = planning.plan(resolve("stack", run_settings(run_dir) | {"run": {"device": "cpu"}}))
    model = torch.nn.Sequential(*(s.module for s in p.stages)).to(memory_format=p.memory_format).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), 64):
            out += model(p.batch_input(pixels[start : start + 64])).argmax(1).tolist()
    return out


def test_a_folder_of_the_evaluation_images_agrees_with_the_run_image_for_image(run_cli, tmp_path, shapes_classifier, eval_folder):
    r = run_cli("predict", "--run", shapes_classifier, eval_folder, "--attributions", "none", "--pictures", "0", "--json",
                "--device", "cpu")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [rec["label"] for rec in doc["images"]] == sorted(rec["label"] for rec in doc["images"])  # class by class
    index = [int(Path(rec["image"]).stem) for rec in doc["images"]]
    pixels, labels = make_shapes(EVAL_IMAGES, seed=0, split="test")
    expected = _run_predictions(shapes_classifier, pixels)
    assert [rec["predicted"] for rec in doc["images"]] == [SHAPES_CLASSES[expected[i]] for i in index]
    assert [rec["label"] for rec in doc["images"]] == [SHAPES_CLASSES[int(labels[i])] for i in index]
    logged = load_events(shapes_classifier).Scalars("test/accuracy")[-1].value
    assert doc["counted"] == EVAL_IMAGES and doc["accuracy"] == pytest.approx(logged, abs=1e-6)
    assert 0.5 < doc["accuracy"] < 1  # it learned something, and the check could fail
    summary = json.loads((Path(doc["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["accuracy"] == doc["accuracy"] and summary["predicted"] == EVAL_IMAGES
    rows = list(csv.DictReader((Path(doc["run_dir"]) / "predictions.csv").open()))
    assert [row["predicted"] for row in rows] == [rec["predicted"] for rec in doc["images"]] and len(rows) == EVAL_IMAGES


def test_learners_images_each_give_a_prediction_and_what_was_done_is_said(run_cli, tmp_path, shapes_classifier, oddities):
    r = run_cli("predict", "--run", shapes_classifier, *sorted(oddities.values()), "--attributions", "none", "--device", "cpu",
                "--top", "2")
    assert r.code == 0, r.err
    out = r.out
    for name in ("palette.gif", "phone.jpg", "scan16.png", "sticker.png"):
        assert f". {oddities[Path(name).stem]} -> " in out, name
    assert "- palette (P) -> RGB: each palette index looked up" in out
    assert "- EXIF orientation 6: turned 90° clockwise to stand upright (750x1000 -> 1000x750, HxW)" in out
    assert "- 16-bit grey (I;16): scaled to 8 bits" in out
    assert "- RGBA: transparent pixels put over white" in out
    assert "warning: shrunk 23x to 32x32" in out  # a 1000x750 photo for a 32x32 model
    bars = [line for line in out.splitlines() if "█" in line]
    assert len(bars) >= 4 and all(line.rstrip().endswith("%") for line in bars)
    run = only_run(tmp_path / "logs")
    seen = _texts(load_events(run), "seen")
    assert sorted(seen) == [0, 1, 2, 3] and "EXIF orientation 6" in seen[1]


def test_the_run_logs_the_input_every_stage_each_attribution_and_the_probabilities(run_cli, tmp_path, shapes_classifier,
                                                                                    eval_folder, oddities):
    first = sorted((eval_folder / "circle").iterdir())[0]
    r = run_cli("predict", "--run", shapes_classifier, first, oddities["sticker"], "--trace", "1:0:3:3", "--out", "why.png",
                "--device", "cpu", "--logdir", "logs", "--run-name", "mine")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "mine")
    tags = acc.Tags()["images"]
    stages = ["01-conv2d", "02-relu", "03-conv2d", "04-relu", "05-maxpool2d", "06-flatten", "07-linear"]
    assert set(stages + ["00-input", "gradcam", "saliency", "occlusion"]) <= set(tags)
    shown = images(acc, "00-input")
    assert [i.step for i in shown] == [0, 1] and all((i.height, i.width) == (32, 32) for i in shown)
    pixels = make_shapes(EVAL_IMAGES, seed=0, split="test")[0][int(first.stem)].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(shown[0].pixels.astype(int) - pixels).max() <= 1  # the image as the model saw it ([0, 1] -> x255, truncated)
    for tag in ("gradcam", "saliency", "occlusion", *stages):
        assert [i.step for i in images(acc, tag)] == [0, 1], tag
    overlays = [images(acc, tag)[0] for tag in ("gradcam", "saliency", "occlusion")]
    assert len({(i.width, i.height) for i in overlays}) <= 2 and all(i.height >= 128 + 30 for i in overlays)
    for tag in ("probabilities", "seen", "trace"):
        assert sorted(_texts(acc, tag)) == [0, 1], tag
    probabilities = _texts(acc, "probabilities")[0]
    assert probabilities.startswith("| class | probability |") and probabilities.count("\n| ") == 3 + 1
    assert "trace 1:0:3:3: stage 1 Conv2d(3, 16, 5, stride=2, padding=2)" in _texts(acc, "trace")[0]
    assert "predicted 2 image(s)" in _texts(acc, "predictions")[0]
    summary = json.loads((tmp_path / "logs" / "mine" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 2 and summary["predicted"] == 2
    assert {"gradcam", "saliency", "occlusion", "probabilities", "seen", "trace"} <= set(summary["tags"])
    sheets = sorted(p.name for p in tmp_path.glob("why*.png"))
    assert sheets == ["why-0.png", "why-1.png"]
    sheet = Image.open(tmp_path / "why-0.png")
    assert sheet.width > 5 * 128 and sheet.height > 128
    assert "(the model's own value: " in r.out and "sheet why-1.png" in r.out


def test_one_image_one_sheet_named_as_asked(run_cli, tmp_path, shapes_classifier, oddities):
    r = run_cli("predict", "--run", shapes_classifier, oddities["palette"], "--out", "cat.png", "--attributions", "occlusion",
                "--target", "Square", "--device", "cpu", "-q")
    assert r.code == 0 and r.out == "", (r.err, r.out)
    assert [p.name for p in tmp_path.glob("*.png")] == ["cat.png"]
    acc = load_events(only_run(tmp_path / "logs"))
    assert "occlusion" in acc.Tags()["images"] and "gradcam" not in acc.Tags()["images"]


def test_dry_run_checks_everything_and_writes_nothing(run_cli, tmp_path, shapes_classifier, oddities):
    r = run_cli("predict", "--run", shapes_classifier, oddities["phone"], "--out", "x.png", "--dry-run")
    assert r.code == 0, r.err
    assert 'command = "predict"' in r.out and "dry run: nothing was loaded or written" in r.out
    assert "10 classes: circle, square" in r.out and "Grad-CAM at stage 3 Conv2d(16, 16, 3, padding=1), read after stage 4 ReLU()" in r.out
    _nothing_written(tmp_path)


def test_a_labelled_folder_with_files_and_folders_it_cannot_count(run_cli, tmp_path, shapes_classifier, eval_folder):
    folder = tmp_path / "mine"
    for name in ("circle", "lion"):
        (folder / name).mkdir(parents=True)
        for src in sorted((eval_folder / "circle").iterdir())[:2]:
            (folder / name / src.name).write_bytes(src.read_bytes())
    (folder / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    r = run_cli("predict", "--run", shapes_classifier, folder, "--attributions", "none", "--pictures", "1", "--device", "cpu")
    assert r.code == 0, r.err
    assert "folder lion: not a class of the model (10 classes), so its 2 image(s) are predicted but not counted" in r.out
    assert "skipped 1 file(s) that are not images convlab can read: " in r.out and "broken.png" in r.out
    assert "accuracy " in r.out and "of 2 image(s) in the class its folder names" in r.out


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "image not found: missing.png"),
    (["broken.png"], "broken.png cannot be read: cannot be decoded"),
    (["ok.png", "--trace", "1:16:0:0"], r"--trace 1:16:0:0: stage 1 Conv2d(3, 16, 5, stride=2, padding=2) gives maps of (C, H, W) = (16, 16, 16): its channel runs from 0 to 15, not 16"),
    (["ok.png", "--target", "hexagon"], "--target 'hexagon' is not a class of the model; its classes: circle, square"),
    (["ok.png", "--layer", "2"], "--layer 2: stage 2 ReLU() is not a conv stage; Grad-CAM reads a Conv2d's maps: 1, 3"),
    (["ok.png", "--layer", "1", "--attributions", "saliency"], "--layer 1 picks the stage Grad-CAM reads"),
    (["ok.png", "--attributions", "lime"], "unknown attribution 'lime'; choose from gradcam, saliency, occlusion"),
    (["ok.png", "--out", "why.jpg"], "--out writes a PNG sheet per image; give a file name ending in .png"),
    (["ok.png", "ReLU()"], "--run RUN gives the layers and their weights; leave out LAYER arguments"),
])
def test_bad_input_is_one_line_and_nothing_is_written(run_cli, tmp_path, shapes_classifier, eval_folder, args, message):
    (tmp_path / "ok.png").write_bytes(sorted((eval_folder / "dots").iterdir())[0].read_bytes())
    (tmp_path / "broken.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    run = tmp_path / "RUN"
    run.symlink_to(shapes_classifier)
    r = run_cli("predict", "--run", "RUN", *args, "--device", "cpu")
    assert_user_error(r, message)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("layers, message", [
    (["Conv2d(3, 8, 5, stride=2, padding=2)", "ReLU()", "Flatten()", "Linear(2048, 10)"],
     r"stage 1 Conv2d(3, 8, 5, stride=2, padding=2): its weight is (8, 3, 5, 5) but the file's tensor 1, '0.weight', is (16, 3, 5, 5)"),
    (["Conv2d(3, 16, 5, stride=2, padding=2)", "ReLU()", "Conv2d(16, 16, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Flatten()",
      "Linear(1024, 7)"], "stage 7 Linear(1024, 7): its weight is (7, 1024) but the file's tensor 5, '6.weight', is (10, 1024)"),
    ("cifar100", "the last stage, 7 Linear(1024, 10), gives 10 scores per image, but cifar100 has 100 classes: was the model "
                 "trained on another --dataset?"),
    (["Conv2d(3, 16, 5, stride=2, padding=2)", "ReLU()"], "gives maps (16, 16, 16) per image, not one score per class"),
])
def test_a_model_file_that_does_not_match_is_one_line(run_cli, tmp_path, shapes_classifier, eval_folder, layers, message):
    from conftest import SHAPES_CLASSIFIER

    image = sorted((eval_folder / "dots").iterdir())[0]
    dataset = "shapes"
    if layers == "cifar100":
        layers, dataset = list(SHAPES_CLASSIFIER), "cifar100"
    r = run_cli("predict", *layers, image, "--weights", shapes_classifier / "model.pt", "--dataset", dataset, "--device", "cpu")
    assert_user_error(r, message)
    _nothing_written(tmp_path)


def test_layers_and_weights_without_a_run_and_what_is_refused(run_cli, tmp_path, shapes_classifier, eval_folder):
    from conftest import SHAPES_CLASSIFIER

    image = sorted((eval_folder / "ring").iterdir())[0]
    r = run_cli("predict", *SHAPES_CLASSIFIER, image, "--weights", shapes_classifier / "model.pt", "--dataset", "shapes",
                "--attributions", "none", "--json", "--device", "cpu")
    assert r.code == 0, r.err
    by_layers = json.loads(r.out)["images"][0]
    r = run_cli("predict", "--run", shapes_classifier, image, "--attributions", "none", "--json", "--device", "cpu")
    assert json.loads(r.out)["images"][0]["top"] == by_layers["top"]
    r = run_cli("predict", "--pretrained", "vgg16", "--upto", "4", image)
    assert_user_error(r, "--pretrained vgg16 gives the first stages of vgg16, which end in maps, not one score per class")
    r = run_cli("predict", "--config", shapes_classifier / "config.toml", image)
    assert_user_error(r, f"is a training run's config; give the run itself: convlab predict --run {shapes_classifier}")
    r = run_cli("predict", image)
    assert_user_error(r, "convlab predict needs a model: --run logs/train/train-... (a training run), or its layers")
    r = run_cli("predict", "--run", shapes_classifier)
    assert_user_error(r, "convlab predict needs images: give image files or folders")


def test_a_run_stopped_by_a_signal_keeps_what_it_predicted(run_cli, tmp_path, shapes_classifier, eval_folder, monkeypatch):
    import signal

    from convlab.errors import Interrupted
    from convlab.predict import run as prediction

    batch = prediction._Run.batch
    calls = []

    def stopped_at_the_third(self, b):
        calls.append(b.start)
        if len(calls) == 3:
            raise Interrupted(signal.SIGTERM, "SIGTERM")
        batch(self, b)

    monkeypatch.setattr(prediction._Run, "batch", stopped_at_the_third)
    r = run_cli("predict", "--run", shapes_classifier, eval_folder / "dots", "--batch-size", "4", "--pictures", "1",
                "--attributions", "none", "--device", "cpu", "--logdir", "logs", "--run-name", "cut")
    assert r.code == 128 + signal.SIGTERM and "interrupted by SIGTERM" in r.err
    summary = json.loads((tmp_path / "logs" / "cut" / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["steps"] == 8 and summary["stopped_by"] == "SIGTERM"
    rows = list(csv.DictReader((tmp_path / "logs" / "cut" / "predictions.csv").open()))
    assert [int(row["index"]) for row in rows] == list(range(8))
    assert [i.step for i in images(load_events(tmp_path / "logs" / "cut"), "00-input")] == [0]
