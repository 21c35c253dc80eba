"""convlab sweep stack: whole layer lists compared side by side, each run exactly what
``convlab stack`` logs, the lists split by ast and never run as code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from convlab.calls import split_layers
from convlab.modules import LayerError
from convlab.sweep import prepare, setting_name
from convlab.sweep.grid import compare_picture
from convlab.writer import image_grid
from test_sweep import assert_same_events, assert_same_run, sweep_dir

from conftest import assert_user_error, images, load_events

REPO = Path(__file__).resolve().parents[1]
CONV = "Conv2d(3, 8, 3)"
ACTIVATIONS = {"conv2d-relu": "ReLU()", "conv2d-sigmoid": "Sigmoid()", "conv2d-tanh": "Tanh()"}
VARY = "layers=" + "; ".join(f"{CONV}, {a}" for a in ACTIVATIONS.values())


def _batch(cifar, start: int, stop: int) -> torch.Tensor:
    return torch.from_numpy(cifar.test_images[start:stop]).permute(0, 3, 1, 2).float() / 255


def test_each_run_logs_exactly_what_convlab_stack_logs(cifar, run_cli, tmp_path):
    options = ("--data-dir", cifar.root, "--logdir", "logs", "-b", "32", "--seed", "4", "--max-channels", "3")
    r = run_cli("sweep", "stack", "--vary", VARY, *options)
    assert r.code == 0, r.err
    swept = sweep_dir(tmp_path / "logs")
    assert sorted(p.name for p in swept.iterdir() if p.is_dir()) == sorted([*ACTIVATIONS, "compare"])
    for name, activation in ACTIVATIONS.items():
        single = run_cli("stack", CONV, activation, *options, "-q")
        assert single.code == 0, single.err
        (single_dir,) = [p for p in (tmp_path / "logs").iterdir() if p != swept]
        assert_same_events(swept / name, single_dir, ["stack.layers"])

        a = assert_same_run(swept / name, single_dir, steps=lambda tag: [0] if tag.endswith("kernels") else [0, 1, 2])
        tag = f"02-{activation[:-2].lower()}"
        assert sorted(a.Tags()["images"]) == sorted(["00-input", "01-conv2d", "01-conv2d/kernels", tag])
    table = load_events(swept / "compare").Tensors("combinations/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.splitlines()[0].startswith("| run | layers | output (C, H, W) | parameters | multiply-adds |")
    assert "| conv2d-tanh | Conv2d(3, 8, 3), Tanh() | (8, 30, 30) | 224 | 194,400 |" in table
    assert "multiply-adds per image (of Conv2d and Linear" in table


def test_compare_shows_each_runs_channels_on_one_shared_scale(cifar, run_cli, tmp_path):
    args = ("--data-dir", cifar.root, "--logdir", "logs", "-b", "8", "-n", "1", "--view-images", "2", "--max-channels", "2")
    r = run_cli("sweep", "stack", "--vary", VARY, *args)
    assert r.code == 0, r.err
    (logged,) = images(load_events(sweep_dir(tmp_path / "logs") / "compare"), "compare")

    sw = prepare("stack", {"stack": {"max_channels": 2}, "data": {"data_dir": str(cifar.root), "batch_size": 8},
                                 "views": {"images": 2}}, None, [VARY])
    picture = compare_picture(sw)
    assert [c.tiles for c in picture.columns] == [1, 2, 2, 2]  # the input, then 2 of 8 channels a run
    x = _batch(cifar, 0, 2)
    shown = []
    for c in sw.runs:
        with torch.no_grad():
            y = x
            for s in c.plan.stages:
                y = s.module.eval()(y)
        shown.append(y[:, :2])
    m = max(y.abs().max() for y in shown)
    z = picture.zoom
    for column, y in enumerate(shown, start=1):
        for row in range(2):
            for channel in range(2):
                expected = ((0.5 + 0.5 * y[row, channel] / m).clamp(0, 1) * 255).to(torch.uint8).numpy()
                top, left = picture.box(column, row, channel)
                region = logged.pixels[top : top + 30 * z : z, left : left + 30 * z : z]
                assert np.abs(region[..., 0].astype(int) - expected).max() <= 1, (column, row, channel)
                assert (region[..., 0] == region[..., 2]).all()  # grey
    # Sigmoid's values sit in (0.5, 0.73) of the shared scale: never dark, never stretched to black.
    top, left = picture.box(2, 0, 0)
    assert logged.pixels[top : top + 30 * z, left : left + 30 * z].min() >= 127


def test_one_activation_runs_keep_the_lessons_tags_and_compare_as_they_are(cifar, run_cli, tmp_path):
    args = ("--data-dir", cifar.root, "--logdir", "logs", "-b", "16", "-n", "2", "--view-images", "2")
    r = run_cli("sweep", "stack", "--vary", "layers=Sigmoid(); Tanh()", *args)
    assert r.code == 0, r.err
    swept = sweep_dir(tmp_path / "logs")
    sw = prepare("stack", {"stack": {}, "data": {"data_dir": str(cifar.root), "batch_size": 16}, "views": {"images": 2}},
                       None, ["layers=Sigmoid(); Tanh()"])
    picture, z = compare_picture(sw), compare_picture(sw).zoom
    compare = images(load_events(swept / "compare"), "compare")
    for column, (name, fn) in enumerate([("sigmoid", torch.sigmoid), ("tanh", torch.tanh)], start=1):
        acc = load_events(swept / name)
        assert sorted(acc.Tags()["images"]) == ["input", "output"]
        for step in (0, 1):
            x = _batch(cifar, 16 * step, 16 * (step + 1))
            grid = images(acc, "output")[step].pixels
            assert np.array_equal(grid, image_grid(fn(x)).numpy())
            for row in range(2):  # the column is the tag's own tile: raw, the values in [0, 1] as they are
                top, left = picture.box(column, row)
                region = compare[step].pixels[top : top + 32 * z, left : left + 32 * z]
                assert np.array_equal(region, grid[:32, row * 32 : (row + 1) * 32].repeat(z, 0).repeat(z, 1)), (name, step, row)


# ----------------------------------------------------------------------------- planning


def test_dry_run_prints_the_table_and_touches_nothing(run_cli, tmp_path):
    r = run_cli("sweep", "stack", "--vary", VARY, "--dataset", "shapes", "-n", "2", "--dry-run")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "sweep stack on shapes/test: 3 run(s) (3 layers)",
        "run             layers                      output (C, H, W)  parameters  multiply-adds",
        "conv2d-relu     Conv2d(3, 8, 3), ReLU()     (8, 30, 30)       224         194,400",
        "conv2d-sigmoid  Conv2d(3, 8, 3), Sigmoid()  (8, 30, 30)       224         194,400",
        "conv2d-tanh     Conv2d(3, 8, 3), Tanh()     (8, 30, 30)       224         194,400",
        "device: cpu; 2 step(s) of up to 64 image(s), each through every run",
        "dry run: nothing was loaded or written",
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_alternative_ending_in_features_is_refused(run_cli, tmp_path):
    vary = "layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Flatten(); Conv2d(3, 8, 3), Flatten(), Linear(7200, 10)"
    r = run_cli("sweep", "stack", "--vary", vary, "--dataset", "shapes")
    assert_user_error(r, "invalid combination(s): conv2d-flatten: its last stage Flatten() gives 7,200 features per image, "
                         "not a map (C, H, W); a sweep's compare picture shows each run's last output as a map")
    assert "conv2d-flatten-linear: its last stage Linear(7200, 10) gives 10 features" in r.err
    assert "or give --skip-invalid to sweep the other 1" in r.err and not (tmp_path / "logs").exists()
    r = run_cli("sweep", "stack", "--vary", vary, "--dataset", "shapes", "--skip-invalid", "--dry-run")
    assert r.code == 0, r.err
    assert [line.split()[0] for line in r.out.splitlines()[2:5]] == ["conv2d-relu", "skipped", "skipped"]
    # Every alternative ending in features: the one reason, said once.
    r = run_cli("sweep", "stack", "Flatten()", "--vary", "max_channels=2,3", "--dataset", "shapes")
    assert_user_error(r, "its last stage Flatten() gives 3,072 features per image, not a map")


def test_invalid_alternatives_are_named_or_skipped(run_cli, tmp_path):
    vary = "layers=Conv2d(3, 8, 3), ReLU(); Conv2d(4, 8, 3), ReLU(); ReLU(; MaxPool2d(40)"
    r = run_cli("sweep", "stack", "--vary", vary, "--dataset", "shapes", "-n", "1", "-b", "4", "--logdir", "logs")
    assert_user_error(r, "invalid combination(s): conv2d-relu-2: stage 1 Conv2d(4, 8, 3): the images have 3 channels; "
                         "use Conv2d(3, 8, 3)")
    assert "; relu: stage 1 ReLU(: not a layer call" in r.err and "; maxpool2d: stage 1 MaxPool2d(40): kernel 40" in r.err
    assert "or give --skip-invalid to sweep the other 1" in r.err and not (tmp_path / "logs").exists()

    r = run_cli("sweep", "stack", "--vary", vary, "--dataset", "shapes", "-n", "1", "-b", "4", "--logdir", "logs",
                "--skip-invalid", "--views", "none", "--run-name", "s")
    assert r.code == 0, r.err
    assert "skipped conv2d-relu-2: stage 1 Conv2d(4, 8, 3)" in r.out and "skipped maxpool2d: stage 1 MaxPool2d(40)" in r.out
    swept = tmp_path / "logs" / "s"
    assert sorted(p.name for p in swept.iterdir() if p.is_dir()) == ["compare", "conv2d-relu"]
    assert json.loads((swept / "summary.json").read_text())["skipped"].keys() == {"conv2d-relu-2", "relu", "maxpool2d"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--vary", "layers=ReLU(), Sigmoid()"), "--vary layers lists one value (ReLU(), Sigmoid()); a sweep compares two or "
         "more (separate layers's alternatives with ';', e.g. --vary 'layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Tanh()')"),
        (("--vary", "layers=ReLU(); nn.ReLU( )"), "--vary layers: 'ReLU()' and 'nn.ReLU( )' are the same value; list each once"),
        (("--vary", "layers=ReLU();;Tanh()"), "--vary layers: empty value in 'ReLU();;Tanh()'"),
        (("ReLU()", "--vary", "layers=ReLU();Tanh()"), "--vary layers and the LAYER arguments are both given; drop one of them"),
        (("--vary", "layer=ReLU();Tanh()"), "--vary layer: 'layer' is not a key of 'convlab stack'; did you mean 'layers'?"),
        (("--vary", "layers=ReLU();Tanh()", "--pretrained", "vgg16"), "--pretrained vgg16 gives the layers; leave out the LAYER"),
    ],
)
def test_bad_layer_alternatives_are_one_line_errors(run_cli, tmp_path, args, message):
    assert_user_error(run_cli("sweep", "stack", "--dataset", "shapes", *args), message)
    assert not (tmp_path / "logs").exists()


def test_other_stack_keys_vary_too(run_cli):
    r = run_cli("sweep", "stack", "Conv2d(3, 20, 3)", "--vary", "max_channels=4,8", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert [line.split()[:2] for line in r.out.splitlines()[2:4]] == [["ch4", "4"], ["ch8", "8"]]
    sw = prepare("stack", {"stack": {"layers": ["Conv2d(3, 20, 3)"]}, "data": {"dataset": "shapes"}}, None, ["max_channels=4,8"])
    assert [c.tiles for c in compare_picture(sw).columns] == [1, 4, 8]


# ----------------------------------------------------------------------------- the ast split


def test_layer_lists_split_at_top_level_commas_only():
    assert split_layers("Conv2d(3, 8, (3, 5), padding=(1, 2)), ReLU()") == ("Conv2d(3, 8, (3, 5), padding=(1, 2))", "ReLU()")
    assert split_layers("  GELU(approximate='tanh'),\n nn.MaxPool2d(2, stride=(2, 1)),  ") == (
        "GELU(approximate='tanh')", "nn.MaxPool2d(2, stride=(2, 1))")
    assert split_layers("(Conv2d(3, 8, 3), (ReLU()))") == ("Conv2d(3, 8, 3)", "ReLU()")
    assert split_layers("Sigmoid()") == ("Sigmoid()",) and split_layers("Sigmoid(),") == ("Sigmoid()",)
    assert split_layers("Conv2d(3, 8, 3), [ReLU(), Tanh()]") == ("Conv2d(3, 8, 3)", "[ReLU(), Tanh()]")  # parse_layer refuses it
    for bad, message in [("ReLU(), (", "not a list of layer calls"), ("()", "no layers in '()'"), ("x" * 200_000, "too many")]:
        with pytest.raises(LayerError, match=re.escape(message)):
            split_layers(bad)
    assert setting_name("layers", ("nn.Conv2d(3, 8, 3)", "ReLU()")) == "conv2d-relu"
    assert setting_name("layers", ("Conv2d(3, 8, 3)", "ReLU()") * 3) == "conv2d-relu-conv2d-relu+2"
    assert setting_name("layers", ("Relu()", "__import__('os')")) == "relu-__import"


@pytest.mark.parametrize(
    "layer",
    ["__import__('os').system('touch pwned')", "Conv2d(3, 6, open('pwned', 'w'))", "exec('open(\"pwned\", \"w\")')",
     "lambda: __import__('os')", "ReLU().__class__"],
)
def test_injections_are_refused_with_no_side_effect(run_cli, tmp_path, layer):
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("sweep", "stack", "--vary", f"layers=ReLU(); Conv2d(3, 8, 3), {layer}", "--dataset", "shapes")
    assert_user_error(r, ": stage 2 ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "pwned").exists()
    (tmp_path / "evil.toml").write_text(f'[sweep]\nvary = {{ layers = [["ReLU()"], ["Tanh()", {json.dumps(layer)}]] }}\n')
    assert_user_error(run_cli("sweep", "stack", "--config", "evil.toml", "--dataset", "shapes"), ": stage 2 ")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "logs").exists()


# ----------------------------------------------------------------------------- config files


def test_toml_lists_of_layer_lists_sweep_and_the_saved_config_repeats_it(run_cli, tmp_path):
    (tmp_path / "lists.toml").write_text(
        'command = "stack"\n[sweep]\nvary = { layers = [["Conv2d(3, 8, 3)", "ReLU()"], ["Conv2d(3, 8, 3)", "Sigmoid()"]] }\n')
    (tmp_path / "texts.toml").write_text('[sweep]\nvary = { layers = ["Conv2d(3, 8, 3), ReLU()", "Conv2d(3, 8, 3), Sigmoid()"] }\n')
    r = run_cli("sweep", "stack", "--config", "lists.toml", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert [line.split()[0] for line in r.out.splitlines()[2:4]] == ["conv2d-relu", "conv2d-sigmoid"]
    assert run_cli("sweep", "stack", "--config", "texts.toml", "--dataset", "shapes", "--dry-run").out == r.out
    r2 = run_cli("sweep", "stack", "--config", "lists.toml", "--dataset", "shapes", "--vary", "layers=ReLU();Tanh()", "--dry-run")
    assert [line.split()[0] for line in r2.out.splitlines()[2:4]] == ["relu", "tanh"]

    r = run_cli("sweep", "stack", "--config", "lists.toml", "--dataset", "shapes", "-n", "1", "-b", "4", "--views", "none",
                "--logdir", "logs", "--run-name", "s", "-q")
    assert r.code == 0, r.err
    saved = (tmp_path / "logs" / "s" / "config.toml").read_text()
    assert "# layers: set by [sweep] below\n# weights = (default)" in saved and '"ReLU()",\n' not in saved
    assert saved.endswith('vary = { layers = [["Conv2d(3, 8, 3)", "ReLU()"], ["Conv2d(3, 8, 3)", "Sigmoid()"]] }\n')
    again = run_cli("sweep", "stack", "--config", tmp_path / "logs" / "s" / "config.toml", "--dry-run")
    first = run_cli("sweep", "stack", "--config", "lists.toml", "--dataset", "shapes", "-n", "1", "-b", "4", "--dry-run")
    assert again.code == 0 and again.out == first.out

    (tmp_path / "bad.toml").write_text('[sweep]\nvary = { layers = [["ReLU()"], [1, 2]] }\n')
    assert_user_error(run_cli("sweep", "stack", "--config", "bad.toml"), "stack.layers: expected a list of strings")


def test_the_activations_config(run_cli):
    r = run_cli("sweep", "stack", "--config", REPO / "configs" / "sweep-activations.toml", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert [line.split()[0] for line in r.out.splitlines()[2:5]] == ["conv2d-relu", "conv2d-sigmoid", "conv2d-tanh"]
    assert "(8, 32, 32)" in r.out


@pytest.mark.realdata
def test_the_activations_sweep_on_real_cifar10(shared_cifar, run_cli, tmp_path):
    r = run_cli("sweep", "stack", "--config", REPO / "configs" / "sweep-activations.toml", "--data-dir", shared_cifar,
                "--logdir", "logs", "--run-name", "act", "-n", "1", "-q")
    assert r.code == 0, r.err
    (compare,) = images(load_events(tmp_path / "logs" / "act" / "compare"), "compare")
    for name in ("conv2d-relu", "conv2d-sigmoid", "conv2d-tanh"):
        acc = load_events(tmp_path / "logs" / "act" / name)
        assert "02-" + name.split("-")[1] in acc.Tags()["images"]
    assert compare.width > compare.height


def test_weights_none_against_a_training_runs_model_side_by_side(run_cli, tmp_path):
    """--vary weights=none,RUN/model.pt: the untrained network (PyTorch's seeded init) beside the
    trained one, the runs named 'random' and after the training run's directory; each exactly what
    convlab stack logs with those weights."""
    torch.manual_seed(7)
    trained = tmp_path / "logs" / "train" / "my-run" / "model.pt"
    trained.parent.mkdir(parents=True)
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)).state_dict(), trained)
    r = run_cli("sweep", "stack", CONV, "--vary", f"weights=none,{trained}", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert [line.split()[:2] for line in r.out.splitlines()[2:4]] == [["random", "none"], ["my-run", str(trained)]]
    assert_user_error(run_cli("sweep", "stack", CONV, "--vary", "weights=none,random"),
                      "--vary weights: 'none' and 'random' are the same value; list each once")

    options = ("--dataset", "shapes", "-b", "4", "-n", "3", "--views", "kernels", "-q")
    r = run_cli("sweep", "stack", CONV, "--vary", f"weights=none,{trained}", *options, "--logdir", "out")
    assert r.code == 0, r.err
    swept = sweep_dir(tmp_path / "out")
    assert 'vary = { weights = ["none", ' in (swept / "config.toml").read_text()
    steps = lambda tag: [0] if tag.endswith("kernels") else [0, 1, 2]  # noqa: E731
    for name, weights in (("random", ()), ("my-run", ("--weights", trained))):
        single = run_cli("stack", CONV, *weights, *options, "--logdir", "out")
        assert single.code == 0, single.err
        (single_dir,) = [p for p in (tmp_path / "out").iterdir() if p != swept]
        assert_same_run(swept / name, single_dir, steps)
    first, second = (images(load_events(swept / n), "01-conv2d/kernels")[0] for n in ("random", "my-run"))
    assert not np.array_equal(first.pixels, second.pixels)
