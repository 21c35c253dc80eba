"""The notebook API (convlab.notebook): each call makes the run the command line makes with the
same options (compared event for event), raises the command line's one-line errors, and returns
a result that shows the run's own pictures, read back with TensorBoard's loader."""

from __future__ import annotations

import io
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convlab
from convlab.errors import ConfigError, ConvlabError
from convlab.notebook.results import PredictRun, Run, Sweep, Text, TopRun, TrainRun
from test_sweep import assert_same_events, assert_same_picture, events

from conftest import assert_user_error, images, load_events

SMALL = ("--dataset", "shapes", "-n", "2", "-b", "8")
SMALL_KW = dict(dataset="shapes", max_batches=2, batch_size=8)
TRAIN_LAYERS = ("Conv2d(3, 4, 3, stride=2)", "ReLU()", "Flatten()", "Linear(900, 10)")

# command: (its command line, the API function, its positional arguments and keywords)
SAME_RUNS = {
    "conv": (["conv", "-c", "4", "-k", "5", "--padding", "same", "--init", "identity,random,box,gaussian", *SMALL],
             "conv", (), dict(out_channels=4, kernel_size=5, padding="same", init=["identity", "random", "box", "gaussian"],
                              **SMALL_KW)),
    "pool": (["pool", "-k", "3", "--ceil", "--unpool", "--views", "channels,stats", *SMALL],
             "pool", (), dict(kernel_size=3, ceil_mode=True, unpool=True, show="channels,stats", **SMALL_KW)),
    "stack": (["stack", "Conv2d(3, 4, 3)", "ReLU()", "MaxPool2d(2)", "--max-channels", "2", *SMALL],
              "stack", ("Conv2d(3, 4, 3)", "ReLU()", "MaxPool2d(2)"), dict(max_channels=2, **SMALL_KW)),
    "train": (["train", *TRAIN_LAYERS, "--max-steps", "3", "--eval-batches", "1", "--snapshot-every", "2", "--dataset", "shapes",
               "-b", "8", "--optimizer", "adam", "--lr", "0.003"],
              "train", TRAIN_LAYERS, dict(max_steps=3, eval_batches=1, snapshot_every=2, dataset="shapes", batch_size=8,
                                          optimizer="adam", lr=0.003)),
}


@pytest.mark.parametrize("command", SAME_RUNS)
def test_the_api_call_and_the_command_line_make_the_same_run(command, run_cli, tmp_path, monkeypatch):
    argv, name, args, kwargs = SAME_RUNS[command]
    r = run_cli(*argv, "--logdir", "logs", "--run-name", "r", "--quiet")
    assert r.code == 0, r.err
    (tmp_path / "api").mkdir()
    monkeypatch.chdir(tmp_path / "api")
    run = getattr(convlab, name)(*args, **kwargs, logdir="logs", run_name="r", quiet=True)
    assert type(run) is (TrainRun if command == "train" else Run) and run.run_dir == Path("logs/r")
    api, cli = tmp_path / "api/logs/r", tmp_path / "logs/r"
    assert_same_events(api, cli, [])
    assert (api / "config.toml").read_text() == (cli / "config.toml").read_text()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (api, cli))
    for s in (a, b):
        for key in ("seconds", "first_step_time", "timing", "model"):
            s.pop(key, None)
    assert a == b


def test_a_sweep_and_the_command_line_make_the_same_runs(run_cli, tmp_path, monkeypatch):
    r = run_cli("sweep", "pool", "--vary", "kernel_size=2,3", "--vary", "ceil_mode=false,true", *SMALL,
                "--logdir", "logs", "--run-name", "s", "--quiet")
    assert r.code == 0, r.err
    (tmp_path / "api").mkdir()
    monkeypatch.chdir(tmp_path / "api")
    sweep = convlab.sweep("pool", vary={"kernel_size": [2, 3], "ceil_mode": [False, True]}, **SMALL_KW, logdir="logs",
                          run_name="s", quiet=True)
    assert isinstance(sweep, Sweep) and list(sweep.runs) == ["k2-floor", "k2-ceil", "k3-floor", "k3-ceil"]
    for name in sweep.runs:
        assert_same_events(tmp_path / "api/logs/s" / name, tmp_path / "logs/s" / name, ["pool.kernel_size", "pool.ceil_mode"])
    a, b = load_events(tmp_path / "api/logs/s/compare"), load_events(tmp_path / "logs/s/compare")
    assert [i.pixels.tobytes() for i in images(a, "compare")] == [i.pixels.tobytes() for i in images(b, "compare")]
    # The command line's own --vary text works too, and a key given twice is its error.
    with pytest.raises(ConvlabError, match="--vary kernel_size is given twice"):
        convlab.sweep("pool", vary=["kernel_size=2,3", "kernel_size=4,5"], **SMALL_KW)


# An untrained classifier of shapes' 10 classes (seeded: the same weights in every run), and two images.
PREDICT_LAYERS = ("Conv2d(3, 4, 3, stride=2)", "ReLU()", "Flatten()", "Linear(900, 10)")
TOP_LAYERS = ("Conv2d(3, 4, 3)", "ReLU()", "MaxPool2d(2)", "Conv2d(4, 4, 3, padding=1)")
SAME_RESULTS = {
    "predict": (["predict", *PREDICT_LAYERS, "images", "--dataset", "shapes", "--top", "2", "--out", "sheet.png", "--layer", "1"],
                dict(dataset="shapes", top_k=2, out="sheet.png", layer=1)),
    "top": (["top", *TOP_LAYERS, "--dataset", "shapes", "-n", "2", "-b", "32", "--k", "3", "--stages", "1,4", "--channels", "0,2",
             "--class", "circle", "--out", "sheets"],
            dict(dataset="shapes", max_batches=2, batch_size=32, k=3, stages=[1, 4], channels=[0, 2], class_name="circle",
                 out="sheets")),
}


def _two_images(folder: Path) -> None:
    from convlab.data import make_shapes

    folder.mkdir()
    pixels, _ = make_shapes(2, seed=1, split="test")
    for i in range(2):
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")


def _timeless(event):
    """An event without what a run's clock puts in it: its wall time, predict's 'in 0.1 s (20 images/s)'."""
    event.wall_time = 0
    if event.HasField("summary") and event.summary.value[0].tag == "predictions/text_summary":
        value = event.summary.value[0].tensor.string_val
        value[0] = re.sub(rb" in [0-9.]+ s( \([0-9,]+ images/s\))?", b"", value[0])
    return event


@pytest.mark.parametrize("command", SAME_RESULTS)
def test_predict_and_top_make_the_command_lines_run_and_sheets(command, run_cli, tmp_path, monkeypatch):
    argv, kwargs = SAME_RESULTS[command]
    _two_images(tmp_path / "images")
    r = run_cli(*argv, "--logdir", "logs", "--run-name", "r", "--quiet")
    assert r.code == 0, r.err
    (tmp_path / "api").mkdir()
    monkeypatch.chdir(tmp_path / "api")
    _two_images(tmp_path / "api/images")  # the same pictures, the same relative path
    if command == "predict":
        run = convlab.predict(*PREDICT_LAYERS, Path("images"), **kwargs, logdir="logs", run_name="r", quiet=True)
        assert type(run) is PredictRun and run.sheets == [Path("sheet-0.png"), Path("sheet-1.png")]
    else:
        run = convlab.top(*TOP_LAYERS, **kwargs, logdir="logs", run_name="r", quiet=True)
        assert type(run) is TopRun and run.sheets == [Path("sheets/01-conv2d-top.png"), Path("sheets/04-conv2d-top.png")]
    api, cli = tmp_path / "api/logs/r", tmp_path / "logs/r"
    a, b = events(api), events(cli)
    assert len(a) == len(b) > 8
    for x, y in zip(a, b):
        if x.HasField("summary") and x.summary.value[0].metadata.plugin_data.plugin_name == "images":
            assert_same_picture(x, y)
        else:
            assert _timeless(x) == _timeless(y)
    assert (api / "config.toml").read_text() == (cli / "config.toml").read_text()
    summaries = [json.loads((d / "summary.json").read_text()) for d in (api, cli)]
    for s in summaries:
        for key in ("seconds", "first_step_time", "images_per_second"):
            s.pop(key, None)
    assert summaries[0] == summaries[1]
    for sheet in run.sheets:  # the PNG sheets: the same pictures
        assert np.array_equal(np.asarray(Image.open(sheet)), np.asarray(Image.open(tmp_path / sheet)))
    if command == "predict":
        assert (api / "predictions.csv").read_text() == (cli / "predictions.csv").read_text()


@pytest.fixture(scope="module")
def prediction(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    _two_images(root / "images")
    return convlab.predict(*PREDICT_LAYERS, root / "images", dataset="shapes", attributions="gradcam,occlusion",
                           logdir=str(root / "logs"), quiet=True)


def test_a_prediction_shows_a_row_per_image_read_back_from_its_run(prediction):
    acc = load_events(prediction.run_dir)
    rows = prediction.rows()
    assert [[p.caption.split(" -> ")[0] if " -> " in p.caption else p.caption for p in row] for row in rows] == [
        [f"{i}. {prediction.run_dir.parents[1] / 'images' / f'{i}.png'}", f"00-input, step {i}", f"gradcam, step {i}",
         f"occlusion, step {i}"] for i in range(2)]
    table = prediction.predictions()
    assert [row["image"] for row in table] == [str(prediction.run_dir.parents[1] / "images" / f"{i}.png") for i in range(2)]
    for i, row in enumerate(rows):
        # The bars are the logged probabilities, which are the CSV's; the other pictures are as logged.
        top = prediction.top(i)
        assert [f"{c}:{q:.4f}" for c, q in top] == [f"{c}:{float(q):.4f}" for c, q in (t.split(":") for t in table[i]["top"].split(";"))]
        assert row[0].caption.endswith(f"-> {top[0][0]} ({top[0][1]:.1%})") and row[0].image.height >= 3 * 16
        for picture, tag in zip(row[1:], ("00-input", "gradcam", "occlusion")):
            (logged,) = [x for x in images(acc, tag) if x.step == i]
            assert np.array_equal(np.asarray(picture.image.convert("RGB")), logged.pixels)
    assert "nothing: it is what the model takes" in prediction.seen(0)
    html = prediction._repr_html_()
    assert html.count("<img ") == 8 and html.count("display: flex") == 2 and "as the model sees it" in html
    sheet = Image.open(io.BytesIO(prediction._repr_png_()))
    assert sheet.width > sum(p.image.width for p in rows[0]) and sheet.height > sum(max(p.image.height for p in r) for r in rows)


def test_a_top_run_shows_each_stage_sheet_and_its_channel_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = convlab.top(*TOP_LAYERS, **SMALL_KW, k=2, stages="1", quiet=True)
    assert [p.caption for p in run.pictures()] == ["01-conv2d/top, step 0"] and run.sheets == []
    assert "convlab top: 2 patches per channel over 16 image(s) of shapes/test" in run.title
    html = run._repr_html_()
    assert html.count("<img ") == 1 and "channel" in run.text("01-conv2d/top") and html.count("<pre>") == 2


def test_a_run_that_trained_a_python_model_is_refused_as_the_source_of_layers(run_cli, tmp_path):
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(900, 10))
    trained = convlab.train(model=net, dataset="shapes", batch_size=8, max_steps=1, eval_batches=1, quiet=True)
    _two_images(tmp_path / "images")
    says = f"trained a Python nn.Module (model=), which its config.toml cannot rebuild: give the model's layers as text with --weights {trained.model}"
    for argv, call in [(["predict", "--run", trained.run_dir, "images"], lambda: convlab.predict("images", run=trained.run_dir)),
                       (["top", "--run", trained.run_dir], lambda: convlab.top(run=trained.run_dir))]:
        assert_user_error(run_cli(*argv), says)
        with pytest.raises(ConfigError, match=re.escape(says)):
            call()
    assert [p.parent for p in Path("logs").rglob("summary.json")] == [trained.run_dir]  # nothing but the training run


def test_predict_and_top_dry_runs_are_the_command_lines_text(run_cli, tmp_path):
    _two_images(tmp_path / "images")
    for argv, text in [
        (["predict", *PREDICT_LAYERS, "images", "--dataset", "shapes", "--dry-run"],
         convlab.predict(*PREDICT_LAYERS, "images", dataset="shapes", dry_run=True)),
        (["top", *TOP_LAYERS, "--dataset", "shapes", "--channels", "1", "--dry-run"],
         convlab.top(*TOP_LAYERS, dataset="shapes", channels=1, dry_run=True)),
    ]:
        r = run_cli(*argv)
        assert r.code == 0 and isinstance(text, Text)
        assert text.text.strip() == r.out.strip(), argv
    assert not (tmp_path / "logs").exists()


def test_predict_takes_no_python_model():
    from torch import nn

    with pytest.raises(ConfigError, match=r"^predict takes no model=: .* give the layers with weights='net.pt'"):
        convlab.predict("photo.png", model=nn.Linear(2, 2))


def test_defaults_then_the_config_file_then_the_keywords(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("exp.toml").write_text('[conv]\nout_channels = 2\nkernel_size = 5\n[data]\ndataset = "shapes"\nmax_batches = 1\n')
    run = convlab.conv(config="exp.toml", kernel_size=3, quiet=True)
    config = (run.run_dir / "config.toml").read_text()
    assert "out_channels = 2" in config and "kernel_size = [3, 3]" in config and "batch_size = 64" in config


@pytest.mark.parametrize(("argv", "call"), [
    (["conv", "--kernel", "33"], lambda: convlab.conv(kernel_size=33)),
    (["pool", "--kernel", "4", "--padding", "3", "--dataset", "shapes"], lambda: convlab.pool(kernel_size=4, padding=3, dataset="shapes")),
    (["stack", "Relu()"], lambda: convlab.stack("Relu()")),
    (["train", *TRAIN_LAYERS[:3], "Linear(900, 7)", "--dataset", "shapes"],
     lambda: convlab.train(*TRAIN_LAYERS[:3], "Linear(900, 7)", dataset="shapes")),
    (["sweep", "pool", "--vary", "kernel_size=2"], lambda: convlab.sweep("pool", vary={"kernel_size": [2]})),
    (["explain", "conv", "--groups", "2"], lambda: convlab.explain("conv", groups=2)),
    (["demo", "pool", "--input", "1 2; 3"], lambda: convlab.demo("pool", input_matrix="1 2; 3")),
    (["predict", *PREDICT_LAYERS, "missing.png", "--dataset", "shapes"], lambda: convlab.predict(*PREDICT_LAYERS, "missing.png", dataset="shapes")),
    (["predict", *PREDICT_LAYERS[:3], "Linear(900, 7)", "x.png", "--dataset", "shapes"],
     lambda: convlab.predict(*PREDICT_LAYERS[:3], "Linear(900, 7)", "x.png", dataset="shapes")),
    (["predict", "x.png", "--run", "nowhere"], lambda: convlab.predict("x.png", run="nowhere")),
    (["top", *TOP_LAYERS, "--dataset", "shapes", "--stages", "5"], lambda: convlab.top(*TOP_LAYERS, dataset="shapes", stages=[5])),
    (["top", *TOP_LAYERS, "--dataset", "shapes", "--channels", "7"], lambda: convlab.top(*TOP_LAYERS, dataset="shapes", channels=7)),
    (["top", "--run", "nowhere", "ReLU()"], lambda: convlab.top("ReLU()", run="nowhere")),
    (["explain", "convtranspose", "-s", "2", "--output-padding", "2"], lambda: convlab.explain("convtranspose", stride=2, output_padding=2)),
    (["explain", "convtranspose", "--case", "padding-strides", "-k", "2"],
     lambda: convlab.explain("convtranspose", case="padding-strides", kernel_size=2)),
    (["demo", "convtranspose", "--weight", "1 2; 3"], lambda: convlab.demo("convtranspose", weight="1 2; 3")),
])
def test_user_errors_are_the_command_lines_one_line_as_exceptions(argv, call, run_cli, tmp_path):
    r = run_cli(*argv)
    assert_user_error(r, "")
    with pytest.raises(ConvlabError) as caught:
        call()
    assert f"convlab: error: {caught.value}" == r.err.strip()
    assert caught.value._render_traceback_() == [f"{type(caught.value).__name__}: {caught.value}"]  # what Jupyter shows
    assert not (tmp_path / "logs").exists()


def test_keywords_are_the_options_config_names_with_help():
    import inspect

    signature = inspect.signature(convlab.pool)
    assert {"kernel_size", "stride", "padding", "dilation", "ceil_mode", "batch_size", "max_batches", "show", "config"} \
        <= set(signature.parameters)
    assert "out_channels" not in signature.parameters
    assert "ceil_mode" in convlab.pool.__doc__ and "keep a last window" in convlab.pool.__doc__
    with pytest.raises(TypeError, match="unexpected keyword argument 'kernal_size'; did you mean 'kernel_size'"):
        convlab.pool(kernal_size=3)


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("api") / "logs"
    return convlab.conv(out_channels=6, **SMALL_KW, logdir=str(logdir), quiet=True)


def test_a_run_gives_back_what_it_logged(conv_run):
    acc = load_events(conv_run.run_dir)
    for tag in ("input", "output", "channels"):
        assert conv_run.steps(tag) == [0, 1]
        for logged in images(acc, tag):
            picture = conv_run.image(tag, step=logged.step)
            assert isinstance(picture, Image.Image) and picture.size == (logged.width, logged.height)
            assert np.array_equal(np.asarray(picture.convert("RGB")), logged.pixels)
    assert conv_run.scalars("output/mean") == [(s.step, s.value) for s in acc.Scalars("output/mean")]
    assert conv_run.text("layer").startswith("Conv2d(3, 6, kernel_size=(3, 3)")
    assert conv_run.summary["steps"] == 2 and conv_run.summary["status"] == "complete"
    with pytest.raises(ConvlabError, match="has no image 'output' at step 7; it has it at step.s. 0, 1"):
        conv_run.image("output", step=7)
    with pytest.raises(ConvlabError, match="has no image tag 'maxpool'; its images: "):
        conv_run.image("maxpool")


def test_a_run_shows_its_pictures_as_html_and_png(conv_run):
    pictures = conv_run.pictures()
    assert [p.caption for p in pictures] == ["input, step 0", "output, step 0", "channels, step 0", "kernels, step 0"]
    html = conv_run._repr_html_()
    assert html.count("<img src=\"data:image/png;base64,") == 4 and str(conv_run.run_dir) in html and "<details>" in html
    sheet = Image.open(io.BytesIO(conv_run._repr_png_()))
    assert sheet.width >= max(p.image.width for p in pictures)
    assert sheet.height > sum(p.image.height for p in pictures)
    # Each picture sits in the sheet as it was logged.
    input_picture = np.asarray(pictures[0].image.convert("RGB"))
    found = np.asarray(sheet.convert("RGB"))
    rows = [y for y in range(found.shape[0] - input_picture.shape[0])
            if np.array_equal(found[y, 4 : 4 + input_picture.shape[1]], input_picture[0])]
    assert any(np.array_equal(found[y : y + input_picture.shape[0], 4 : 4 + input_picture.shape[1]], input_picture) for y in rows)


def test_a_training_run_shows_its_loss_kernels_and_confusion(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = convlab.train(*TRAIN_LAYERS, dataset="shapes", batch_size=8, max_steps=4, eval_batches=1, snapshot_every=2, quiet=True)
    assert [p.caption for p in run.pictures()] == ["loss over training steps", "01-conv2d/kernels, step 0",
                                                   "01-conv2d/kernels, step 4", "test/confusion, step 4"]
    assert run.model == run.run_dir / "model.pt" and run.model.is_file()
    assert [s for s, _ in run.scalars("train/loss")] == [1, 2, 3, 4]
    assert "test accuracy" in run.title


def test_explain_demo_and_dry_runs_are_the_command_lines_text(run_cli, tmp_path):
    for argv, text in [
        (["conv", "-k", "5", "--dataset", "shapes", "--dry-run"], convlab.conv(kernel_size=5, dataset="shapes", dry_run=True)),
        (["train", *TRAIN_LAYERS, "--dataset", "shapes", "--dry-run"], convlab.train(*TRAIN_LAYERS, dataset="shapes", dry_run=True)),
        (["sweep", "pool", "--vary", "kernel_size=2,3", "--dataset", "shapes", "--dry-run"],
         convlab.sweep("pool", vary={"kernel_size": [2, 3]}, dataset="shapes", dry_run=True)),
        (["explain", "conv", "-s", "2", "--size", "9x7"], convlab.explain("conv", stride=2, size=(9, 7))),
        (["explain", "pool", "-k", "3", "--ceil"], convlab.explain("pool", kernel_size=3, ceil_mode=True)),
        (["explain", "unpool", "-k", "2"], convlab.explain("unpool", kernel_size=2)),
        (["explain", "stack", "Conv2d(3, 8, 3)", "MaxPool2d(2)"], convlab.explain("stack", "Conv2d(3, 8, 3)", "MaxPool2d(2)")),
        (["demo", "pool"], convlab.demo("pool")),
        (["demo", "conv", "--cell", "1,1", "-s", "2"], convlab.demo("conv", cell=(1, 1), stride=2)),
        (["explain", "convtranspose", "-s", "2"], convlab.explain("convtranspose", stride=2)),
        (["explain", "convtranspose", "--channels", "4", "--size", "5x7", "-c", "2", "-k", "3x2", "-s", "2", "--output-padding", "1",
          "--no-bias"], convlab.explain("convtranspose", channels=4, size=(5, 7), out_channels=2, kernel_size=(3, 2), stride=2,
                                        output_padding=1, bias=False)),
        (["explain", "convtranspose", "--case", "padding-strides-odd"], convlab.explain("convtranspose", case="padding-strides-odd")),
        (["demo", "convtranspose"], convlab.demo("convtranspose")),
        (["demo", "convtranspose", "-k", "2", "-s", "2", "--cell", "1,2", "--input", "1 2; 3 4"],
         convlab.demo("convtranspose", kernel_size=2, stride=2, cell=(1, 2), input_matrix=[[1, 2], [3, 4]])),
        (["demo", "convtranspose", "--case", "no-padding-strides"], convlab.demo("convtranspose", case="no-padding-strides")),
    ]:
        r = run_cli(*argv)
        assert r.code == 0 and isinstance(text, Text)
        assert text.text.strip() == r.out.strip(), argv
        assert text._repr_html_().startswith("<pre>")
    assert not (tmp_path / "logs").exists()


def test_a_transposed_convolutions_keywords_are_its_own():
    with pytest.raises(ConfigError, match="output_padding is a transposed convolution's; explain conv takes neither"):
        convlab.explain("conv", output_padding=1)
    with pytest.raises(ConfigError, match="case is a transposed convolution's; demo pool takes neither"):
        convlab.demo("pool", case="padding-strides")
    with pytest.raises(ConfigError, match="ceil_mode is a pool's; demo convtranspose takes"):
        convlab.demo("convtranspose", ceil_mode=True)
    with pytest.raises(ConfigError, match="explain convtranspose takes .*; leave out mode"):
        convlab.explain("convtranspose", mode="avg")
    with pytest.raises(ConfigError, match="unknown explain 'deconv'; choose from conv, pool, unpool, convtranspose, stack"):
        convlab.explain("deconv")


def test_interact_redraws_the_arithmetic_and_the_picture_as_the_sliders_move():
    pytest.importorskip("ipywidgets")
    box = convlab.interact("conv", dataset="shapes", out_channels=4)
    assert set(box.sliders) == {"kernel_size", "stride", "padding", "dilation"}
    first = box.picture.value
    assert "output (4, 30, 30)" in box.arithmetic.value and Image.open(io.BytesIO(first)).size[1] > 30
    box.sliders["kernel_size"].value = 5
    box.sliders["stride"].value = 2
    assert "kernel_size=(5, 5), stride=(2, 2)" in box.arithmetic.value and "output (4, 14, 14)" in box.arithmetic.value
    assert box.picture.value != first
    box.sliders["kernel_size"].value = 7
    box.sliders["dilation"].value = 3
    box.sliders["stride"].value = 1
    box.sliders["padding"].value = 0
    assert "output (4, 14, 14)" in box.arithmetic.value
    pool = convlab.interact("pool", dataset="shapes")
    assert "ceil_mode" in pool.sliders
    pool.sliders["padding"].value = 3  # more than half the kernel: the layer's own error, and no picture
    assert "ConfigError" in pool.arithmetic.value and pool.picture.layout.visibility == "hidden"
    pool.sliders["padding"].value = 1
    pool.sliders["ceil_mode"].value = True
    assert "ceil_mode=True" in pool.arithmetic.value and pool.picture.layout.visibility == "visible"


def test_interact_without_ipywidgets_prints_the_static_explanation(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if it were not installed
    assert convlab.interact("pool", kernel_size=3, dataset="shapes") is None
    out = capsys.readouterr().out
    assert "MaxPool2d(kernel_size=3, stride=3" in out and "pip install 'convlab[notebook]'" in out


def test_board_serves_every_step_through_tensorboards_notebook_support(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvlabError, match="no TensorBoard runs in"):
        convlab.board("empty")
    run = convlab.conv(dataset="shapes", batch_size=4, max_batches=3, show="none", quiet=True)
    board = convlab.board("logs")
    try:
        assert f"localhost:{board.port}" in capsys.readouterr().out  # TensorBoard's own display, outside a notebook
        url = f"{board.url}data/plugin/images/images?run={run.run_dir.name}&tag=input"
        deadline, steps = time.monotonic() + 60, []
        while steps != [0, 1, 2] and time.monotonic() < deadline:  # the server reads the logdir in the background
            try:
                steps = [s["step"] for s in json.loads(urllib.request.urlopen(url, timeout=30).read())]
            except urllib.error.HTTPError:
                pass
            time.sleep(0.2)
        assert steps == [0, 1, 2]
    finally:
        board.stop()
