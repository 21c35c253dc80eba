"""convlab stack end to end: what reaches TensorBoard, read back with its own loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convlab import pipeline
from convlab.config import read_config_file, resolve
from convlab.errors import ConfigError
from convlab.layers import check_batch_memory
from convlab.pictures import LABEL_TOP, auto_zoom, label_left
from convlab.writer import image_grid

from conftest import assert_user_error, images, load_events, only_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = ["Conv2d(3, 8, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Flatten()", "Linear(2048, 10)"]


def _fixture_batch(cifar, start: int, stop: int) -> torch.Tensor:
    return torch.from_numpy(cifar.test_images[start:stop]).permute(0, 3, 1, 2).float() / 255


def _reference(seed: int) -> nn.Sequential:
    """The same stack built by PyTorch alone: the same seed gives the same weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10)).eval()


def _stage_outputs(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    outputs = []
    with torch.no_grad():
        for m in model:
            x = m(x)
            outputs.append(x)
    return outputs


def test_every_stage_equals_pytorchs_sequential(cifar, run_cli, tmp_path):
    r = run_cli("stack", *SMALL, "--data-dir", cifar.root, "--seed", "5", "-b", "32", "--logdir", "logs", "--run-name", "s", "-q")
    assert r.code == 0, r.err
    ref = _reference(5)
    exp = resolve("stack", {"stack": {"layers": SMALL}, "run": {"seed": 5}})
    p = pipeline.plan(exp)
    x = _fixture_batch(cifar, 0, 32)
    for ours, theirs in zip(pipeline.forward([s.module.eval() for s in p.stages], x), _stage_outputs(ref, x)):
        assert torch.equal(ours, theirs)
    acc = load_events(tmp_path / "logs" / "s")
    tags = ["01-conv2d", "02-relu", "03-maxpool2d", "04-flatten", "05-linear"]
    batches = [_stage_outputs(ref, _fixture_batch(cifar, i, i + 32)) for i in (0, 32, 64)]
    for i, tag in enumerate(tags):
        for stat, fn in (("min", torch.min), ("max", torch.max), ("mean", torch.mean)):
            logged = [e.value for e in acc.Scalars(f"{tag}/{stat}")]
            assert logged == pytest.approx([fn(b[i]).item() for b in batches], rel=1e-5, abs=1e-6), (tag, stat)
        assert [h.histogram_value.num for h in acc.Histograms(f"{tag}/histogram")] == [b[i].numel() for b in batches]


def test_tags_list_the_stages_in_order_with_their_pictures(cifar, run_cli, tmp_path):
    r = run_cli("stack", *SMALL, "--data-dir", cifar.root, "-b", "16", "-n", "2", "--logdir", "logs", "--run-name", "t",
                "--max-channels", "5", "--view-images", "3")
    assert r.code == 0, r.err
    expected = ["00-input", "01-conv2d", "01-conv2d/kernels", "02-relu", "03-maxpool2d", "04-flatten", "05-linear"]
    summary = json.loads((tmp_path / "logs" / "t" / "summary.json").read_text())
    assert summary["tags"] == expected and summary["output_shape"] == [10]
    assert f"logged 2 step(s) of {', '.join(expected)} to" in r.out
    acc = load_events(tmp_path / "logs" / "t")
    assert sorted(acc.Tags()["images"]) == sorted(expected)
    assert sorted(t for t in expected if t != "01-conv2d/kernels") == [t for t in sorted(expected) if "/" not in t]
    for tag in expected:
        logged = images(acc, tag)
        assert [im.step for im in logged] == ([0] if tag.endswith("kernels") else [0, 1])
    # A map stage: the first 5 of 8 channels of the first 3 images, one tile each.
    zoom = auto_zoom(32, 32, 5)
    conv = images(acc, "01-conv2d")[0]
    top, left = LABEL_TOP, label_left(3)  # channel and image numbers
    assert (conv.height, conv.width) == (top + 2 + 3 * (32 * zoom + 2), left + 2 + 5 * (32 * zoom + 2))
    pool = images(acc, "03-maxpool2d")[0]
    assert pool.width == left + 2 + 5 * (16 * auto_zoom(16, 16, 5) + 2)
    # A vector stage: one heat-strip row per image, one cell per feature.
    flat, linear = images(acc, "04-flatten")[0], images(acc, "05-linear")[0]
    assert (flat.height, flat.width) == (2 + 3 * (8 + 2), 4 + 2048)
    assert (linear.height, linear.width) == (2 + 3 * (16 + 2), 4 + 10 * 16)
    layer = acc.Tensors("layer/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "5  Linear(2048, 10)" in layer and "first 5 channels" in layer and "01-conv2d" in layer
    assert "weights:" not in layer and "weights:" not in r.out  # PyTorch's own init: nothing to say


def test_the_last_stage_names_the_top_classes(cifar, run_cli, tmp_path):
    r = run_cli("stack", *SMALL, "Softmax(dim=1)", "--data-dir", cifar.root, "-b", "8", "-n", "1", "--logdir", "logs",
                "--run-name", "c", "--view-images", "2", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "c")
    text = acc.Tensors("06-softmax/classes/text_summary")[0].tensor_proto.string_val[0].decode()
    head, blank, *lines = text.splitlines()
    assert head == "Top classes of each image, with their probabilities (the Softmax stage's output):" and blank == ""
    assert len(lines) == 2 and lines[0].startswith("- image 0 (") and lines[1].startswith("- image 1 (")
    from convlab.data import CIFAR10_CLASSES

    names = lines[0].split(": ", 1)[1].split(", ")
    assert len(names) == 3 and all(n.rsplit(" ", 1)[0] in CIFAR10_CLASSES for n in names)
    assert sum(float(n.rsplit(" ", 1)[1]) for n in names) <= 1.0 + 1e-3  # probabilities, best first
    assert "classes" not in " ".join(acc.Tags()["tensors"]).replace("06-softmax/classes", "")
    # Without the Softmax stage: the same probabilities, as the softmax of the Linear's scores (logits).
    r = run_cli("stack", *SMALL, "--data-dir", cifar.root, "-b", "8", "-n", "1", "--logdir", "logs", "--run-name", "l",
                "--view-images", "2", "-q")
    assert r.code == 0, r.err
    text = load_events(tmp_path / "logs" / "l").Tensors("05-linear/classes/text_summary")[0].tensor_proto.string_val[0].decode()
    head, _, *logit_lines = text.splitlines()
    assert head == "Top classes of each image, with their probabilities (the softmax of the last stage's scores (logits)):"
    assert logit_lines == lines  # the same seeded weights: the same top classes and probabilities


def test_one_activation_is_the_lessons_script(cifar, run_cli, tmp_path):
    """``convlab stack "Sigmoid()"``: tags 'input' and 'output', output as add_images shows it."""
    r = run_cli("stack", "Sigmoid()", "--data-dir", cifar.root, "-b", "16", "-n", "2", "--logdir", "logs", "--run-name", "a")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "a")
    assert sorted(acc.Tags()["images"]) == ["input", "output"]
    for step in (0, 1):
        x = _fixture_batch(cifar, 16 * step, 16 * (step + 1))
        assert np.array_equal(images(acc, "output")[step].pixels, image_grid(torch.sigmoid(x)).numpy())
        assert np.array_equal(images(acc, "input")[step].pixels, image_grid(x).numpy())
    assert "logged 2 step(s) of input, output to" in r.out
    assert [s.step for s in acc.Scalars("output/mean")] == [0, 1]


def test_the_saved_config_repeats_the_run(cifar, run_cli, tmp_path):
    r = run_cli("stack", "nn.Conv2d(3, 4, kernel_size=3)", "ReLU(inplace=True)", "AvgPool2d(2, stride=2),", "--data-dir", cifar.root,
                "-b", "8", "-n", "2", "--seed", "3", "--views", "channels,stats", "--max-channels", "2", "--logdir", "logs", "-q")
    assert r.code == 0, r.err
    first = only_run(tmp_path / "logs")
    assert first.name.startswith("stack-conv2d-relu-avgpool2d-2")
    saved = (first / "config.toml").read_text()
    assert 'command = "stack"' in saved
    assert 'layers = [\n    "Conv2d(3, 4, 3)",\n    "ReLU(inplace=True)",\n    "AvgPool2d(2, stride=2)",\n]' in saved
    assert read_config_file(first / "config.toml", "stack")["stack"]["max_channels"] == 2
    r = run_cli("stack", "--config", first / "config.toml", "--run-name", "again", "-q")
    assert r.code == 0, r.err
    a, b = load_events(first), load_events(tmp_path / "logs" / "again")
    assert sorted(a.Tags()["images"]) == sorted(b.Tags()["images"]) == ["00-input", "01-conv2d", "02-relu", "03-avgpool2d"]
    for tag in ("01-conv2d/max", "03-avgpool2d/mean"):
        assert [e.value for e in a.Scalars(tag)] == [e.value for e in b.Scalars(tag)]
    assert (tmp_path / "logs" / "again" / "config.toml").read_text().replace('run_name = "again"', "# run_name = (default)") == saved


# A stack sweep's file (configs/sweep-activations.toml) is planned by test_views' ready-experiment check.
@pytest.mark.parametrize("path", [p for p in sorted(CONFIGS.glob("*.toml")) if "[stack]" in p.read_text() and "[sweep]" not in p.read_text()],
                         ids=lambda p: p.name)
def test_every_ready_stack_plans(path):
    """Stack files and training files (configs/edges-emerge.toml: [stack] and [train]) alike."""
    from convlab.train.plan import plan_training

    if 'command = "train"' in path.read_text():
        p = plan_training(resolve("train", {"data": {"dataset": "shapes"}}, config_file=path)).stack
    else:
        p = pipeline.plan(resolve("stack", {"data": {"dataset": "shapes"}}, config_file=path))
    assert p.stages


def test_the_lesson_model_config(run_cli):
    r = run_cli("stack", "--config", CONFIGS / "cifar10-model.toml", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert "    8  Linear(1024, 64)" in r.out and "145,578" in r.out and "dry run: nothing was loaded or written" in r.out


def test_a_dry_run_prints_the_table_and_writes_nothing(run_cli, tmp_path):
    r = run_cli("stack", *SMALL, "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert "stage  layer" in r.out and "05-linear" not in r.out and "Linear(2048, 10)" in r.out
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "a stack needs layers: convlab stack"),
        (["Conv2d(3, 32, 5, padding=2)", "MaxPool2d(2)", "Conv2d(32, 32, 5, padding=2)", "MaxPool2d(2)",
          "Conv2d(32, 64, 5, padding=2)", "MaxPool2d(2)", "Flatten()", "Linear(512, 64)", "Linear(64, 10)"],
         "stage 8 Linear(512, 64): Flatten gives 1024 = 64x4x4 features per image; use Linear(1024, 64)"),
        (["Conv2d(3, 6, 3)", "Linear(6, 2)"], "stage 2 Linear(6, 2): Linear takes feature vectors"),
        (["Conv2d(3, 6, 3)", "Relu()"], "stage 2 Relu(): unknown layer 'Relu'; did you mean ReLU?"),
        (["Conv2d(3, 32, 5), ReLU()"], 'stage 1 Conv2d(3, 32, 5), ReLU(): 2 layers separated by commas in one argument; '
                                       'give each layer as its own argument: "Conv2d(3, 32, 5)" "ReLU()"'),
        (["MaxPool2d(2)"] * 6, "stage 6 MaxPool2d(2): kernel 2 does not fit the input's height: 1 + 2*0 padding = 1 < 2"),
        (["ReLU()", "--views", "kernels"], "view 'kernels' does not apply to this stack"),
        (["Conv2d(3, 6, 3)", "--views", "features"], "view 'features' does not apply to this stack (conv and pool layers give maps"),
        (["Conv2d(3, 6, 3)", "ReLU()", "--views", "features"], "view 'features' applies to no stage of this stack"),
        (["ReLU()", "--views", "nope"], "unknown view 'nope'; choose from channels, kernels, stats, features, classes"),
        (["ReLU()", "--max-channels", "0"], "max_channels must be at least 1"),
        (["ReLU()", "--upto", "2"], "--upto counts the first stages of a --pretrained model"),
        (["ReLU()", "--pretrained", "vgg16"], "--pretrained vgg16 gives the layers; leave out the LAYER arguments"),
        (["--pretrained", "lenet"], "unknown --pretrained 'lenet'; choose from vgg16, alexnet, resnet18"),
        (["--pretrained", "resnet18", "--upto", "9"], "--upto 9: resnet18's first stages run from 1 to 4"),
        (["Flatten()", "Linear(3072, 1000000)"], "the weights of Linear(3072, 1000000) (1000000 x 3072) would need"),
        (["Conv2d(3, 128, 1)", "Flatten()", "-b", "20000"], "one batch of 10000 outputs of (128, 32, 32) (C, H, W) would need"),
        (["ReLU()", "--weights", "w.npy"], "--weights w.npy: expected a .pt or .pth file saved with torch.save"),
        (["ReLU()", "--weights", "missing.pt"], "--weights file not found: missing.pt"),
    ],
)
def test_a_bad_stack_is_one_line_and_leaves_nothing(run_cli, tmp_path, args, message):
    r = run_cli("stack", *args, "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists()


def test_the_memory_guard_counts_feature_vectors():
    with pytest.raises(ConfigError, match=r"one batch of 20000 outputs of \(100000,\) features would need 7 GiB"):
        check_batch_memory(20000, 50000, (100000,))


@pytest.mark.parametrize(
    "layer",
    ["__import__('os').system('touch pwned')", "Conv2d(3, 6, open('pwned', 'w'))", "eval('1')", "exec('x=1')",
     "lambda: __import__('os')", "ReLU().__class__", "Conv2d(3, 6, 3, padding=os.sep)"],
)
def test_injections_are_refused_with_no_side_effect(run_cli, tmp_path, layer):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_user_error(run_cli("stack", "ReLU()", layer, "--dataset", "shapes"), "stage 2 ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "pwned").exists()
    (tmp_path / "evil.toml").write_text(f'[stack]\nlayers = ["ReLU()", {json.dumps(layer)}]\n')
    assert_user_error(run_cli("stack", "--config", "evil.toml", "--dataset", "shapes"), "stage 2 ")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ('[stack]\nlayers = "ReLU()"\n', 'stack.layers: expected a list of strings'),
        ("[stack]\nlayers = [1, 2]\n", "stack.layers: expected a list of strings"),
        ('[stack]\nlayer = ["ReLU()"]\n', "unknown key 'layer'; did you mean 'layers'?"),
        ('[conv]\nout_channels = 3\n', "has a [conv] section, but this is 'convlab stack'; run it with: convlab conv --config"),
        ('command = "conv"\n', "is a 'conv' experiment; run it with: convlab conv --config"),
    ],
)
def test_bad_stack_files(run_cli, tmp_path, text, message):
    (tmp_path / "s.toml").write_text(text)
    assert_user_error(run_cli("stack", "--config", "s.toml", "--dataset", "shapes"), message)


def test_a_stack_file_is_refused_by_conv(run_cli, tmp_path):
    (tmp_path / "s.toml").write_text('command = "stack"\n[stack]\nlayers = ["ReLU()"]\n')
    assert_user_error(run_cli("conv", "--config", "s.toml"), "is a 'stack' experiment; run it with: convlab stack --config")


def test_flags_override_the_file(run_cli, tmp_path):
    (tmp_path / "s.toml").write_text('[stack]\nlayers = ["Conv2d(3, 6, 3)"]\nmax_channels = 3\n[data]\nbatch_size = 5\n')
    r = run_cli("stack", "Tanh()", "--config", "s.toml", "--max-channels", "7", "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert 'layers = [\n    "Tanh()",\n]' in r.out and "max_channels = 7" in r.out and "batch_size = 5" in r.out


def test_explain_stack(run_cli):
    r = run_cli("explain", "stack", "Conv2d(1, 6, 5)", "MaxPool2d(2)", "Flatten()", "Linear(864, 10)", "--size", "28x28")
    assert r.code == 0, r.err
    assert "(6, 24, 24)" in r.out and "(864,)" in r.out and "8,650" in r.out and "total" in r.out
    assert_user_error(run_cli("explain", "stack", "Conv2d(3, 6, 5)", "Linear(6, 2)"), "stage 2 Linear(6, 2)")
    r = run_cli("explain", "stack", "--pretrained", "vgg16", "--upto", "5")
    assert r.code == 0, r.err
    assert "(64, 16, 16)" in r.out and "38,720" in r.out


def test_explain_stack_and_the_stack_help_import_no_torch():
    code = (
        "import sys\n"
        "from convlab.__main__ import main\n"
        "for argv in (['stack', '--help'], ['explain', 'stack', *sys.argv[1:]], ['explain', 'stack', 'Relu()']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *SMALL], capture_output=True, text=True, check=True).stdout
    assert "Linear(2048, 10)" in out and out.strip().splitlines()[-1] == "False False"


@pytest.mark.cuda
def test_a_stack_on_the_gpu_equals_the_cpu(cifar, run_cli, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    for device in ("cpu", "cuda"):
        r = run_cli("stack", *SMALL, "--data-dir", cifar.root, "-n", "1", "--device", device, "--logdir", "logs", "--run-name", device, "-q")
        assert r.code == 0, r.err
    cpu, gpu = load_events(tmp_path / "logs" / "cpu"), load_events(tmp_path / "logs" / "cuda")
    for tag in ("01-conv2d/max", "05-linear/mean"):
        assert [e.value for e in cpu.Scalars(tag)] == pytest.approx([e.value for e in gpu.Scalars(tag)], rel=1e-3, abs=1e-4)


@pytest.mark.realdata
def test_the_lesson_model_on_real_images(shared_cifar, run_cli, tmp_path):
    r = run_cli("stack", "--config", CONFIGS / "cifar10-model.toml", "--data-dir", shared_cifar, "--no-download", "-n", "1",
                "--logdir", "logs", "--run-name", "real", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "real")
    stages = ["01-conv2d", "02-maxpool2d", "03-conv2d", "04-maxpool2d", "05-conv2d", "06-maxpool2d", "07-flatten",
              "08-linear", "09-linear"]
    assert [t for t in sorted(acc.Tags()["images"]) if "/" not in t] == ["00-input", *stages]  # the input first, then in stage order
    for tag in stages:
        pixels = images(acc, tag)[0].pixels
        assert pixels.std() > 10, tag  # real content, not a flat picture
    text = acc.Tensors("09-linear/classes/text_summary")[0].tensor_proto.string_val[0].decode()
    from convlab.data import CIFAR10_CLASSES

    head, _, first, *_ = text.splitlines()
    assert head == "Top classes of each image, with their probabilities (the softmax of the last stage's scores (logits)):"
    truth = first.split("(", 1)[1].split(")", 1)[0]
    named = first.split(": ", 1)[1].split(", ")
    assert 0 < sum(float(n.rsplit(" ", 1)[1]) for n in named) <= 1.0 + 1e-3  # probabilities, not logits
    assert first.startswith("- image 0 (") and truth in CIFAR10_CLASSES  # each image named by its label


# ----------------------------------------------------------------------------- going down and back up


ENCODER_DECODER = [
    "Conv2d(3, 16, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Conv2d(16, 32, 3, stride=2, padding=1)", "ReLU()",
    "ConvTranspose2d(32, 16, 4, stride=2, padding=1)", "ReLU()", "Upsample(scale_factor=2, mode='bilinear')",
    "Conv2d(16, 3, 3, padding=1)",
]


def test_the_encoder_decoder_config_shrinks_and_grows_the_image(cifar, run_cli, tmp_path):
    """configs/encoder-decoder.toml: each stage's picture at one zoom, so its size is the map's
    (32, 16, 8, back to 16 and 32), and its values are an nn.Sequential's with the same seed."""
    assert list(read_config_file(CONFIGS / "encoder-decoder.toml", "stack")["stack"]["layers"]) == ENCODER_DECODER
    r = run_cli("stack", "--config", CONFIGS / "encoder-decoder.toml", "--data-dir", cifar.root, "-b", "8", "-n", "1",
                "--logdir", "logs", "--run-name", "ed", "--seed", "3", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "ed")
    sizes = {"01-conv2d": 32, "02-relu": 32, "03-maxpool2d": 16, "04-conv2d": 8, "05-relu": 8, "06-convtranspose2d": 16,
             "07-relu": 16, "08-upsample": 32, "09-conv2d": 32}
    assert sorted(t for t in acc.Tags()["images"] if "/" not in t) == sorted(["00-input", *sizes])
    for tag, n in sizes.items():
        picture = images(acc, tag)[0]
        channels = 3 if tag == "09-conv2d" else 8  # max_channels = 8
        top, left = LABEL_TOP, label_left(4)  # the channel numbers above, the image numbers on the left
        assert (picture.height, picture.width) == (top + 2 + 4 * (2 * n + 2), left + 2 + channels * (2 * n + 2)), tag
    torch.manual_seed(3)
    from convlab.calls import parse_layers
    from convlab.layers import build_layer

    reference = nn.Sequential(*(build_layer(s, 3) for s in parse_layers(ENCODER_DECODER))).eval()
    outputs = _stage_outputs(reference, _fixture_batch(cifar, 0, 8))
    for (tag, _), out in zip(sizes.items(), outputs):
        assert acc.Scalars(f"{tag}/mean")[0].value == pytest.approx(out.mean().item(), rel=1e-5, abs=1e-6), tag
    layer = acc.Tensors("layer/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "ConvTranspose2d(32, 16, 4, stride=2, padding=1)  (16, 16, 16)" in layer and "<=16" in layer


def test_going_back_up_loads_weights_sweeps_and_trains(run_cli, tmp_path):
    """The two kinds in a weights file (a state_dict, and a whole saved model of them), a stack
    sweep and a short training run."""
    from convlab.calls import parse_layers
    from convlab.layers import build_layer

    torch.manual_seed(1)
    model = nn.Sequential(*(build_layer(s, 3) for s in parse_layers(ENCODER_DECODER))).eval()
    for saved, obj in (("state.pt", model.state_dict()), ("whole.pt", model)):
        torch.save(obj, tmp_path / saved)
        exp = resolve("stack", {"stack": {"layers": ENCODER_DECODER, "weights": str(tmp_path / saved)}, "data": {"dataset": "shapes"},
                                "run": {"seed": 9}})
        x = torch.rand(2, 3, 32, 32)
        ours = pipeline.forward([s.module.eval() for s in pipeline.plan(exp).stages], x)
        assert all(torch.equal(a, b) for a, b in zip(ours, _stage_outputs(model, x))), saved
    vary = "layers=ConvTranspose2d(3, 4, 2, stride=2), ReLU(); Upsample(scale_factor=2), Conv2d(3, 4, 1)"
    r = run_cli("sweep", "stack", "--vary", vary, "--dataset", "shapes", "--dry-run")
    assert r.code == 0, r.err
    assert "convtranspose2d-relu" in r.out and "upsample-conv2d" in r.out and "(4, 64, 64)" in r.out
    r = run_cli("train", "Conv2d(3, 8, 3, stride=2, padding=1)", "ReLU()", "ConvTranspose2d(8, 4, 2, stride=2)",
                "Upsample(scale_factor=0.25, mode='bilinear')", "Flatten()", "Linear(256, 10)", "--dataset", "shapes",
                "--max-steps", "3", "--eval-batches", "1", "-b", "16", "--logdir", "logs", "--run-name", "t", "-q")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "logs" / "t" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 3
    state = torch.load(tmp_path / "logs" / "t" / "model.pt", weights_only=True)
    assert tuple(state["2.weight"].shape) == (8, 4, 2, 2)  # ConvTranspose2d's (in, out/groups, kH, kW), trained


def test_the_input_lists_first_and_only_the_first_convs_kernels_unless_asked(run_cli, tmp_path):
    """TensorBoard sorts tags by name: the images are stage 0 ('00-input'), before '01-conv2d'; a deeper
    conv's kernels (a grid of noise to a learner) are logged when --views names them."""
    layers = ("Conv2d(3, 4, 3)", "ReLU()", "Conv2d(4, 4, 3)", "Conv2d(4, 2, 3)")
    options = ("--dataset", "shapes", "-b", "4", "-n", "1", "-q")
    assert run_cli("stack", *layers, *options, "--logdir", "logs", "--run-name", "default").code == 0
    tags = sorted(load_events(tmp_path / "logs" / "default").Tags()["images"])
    assert tags == ["00-input", "01-conv2d", "01-conv2d/kernels", "02-relu", "03-conv2d", "04-conv2d"]
    assert run_cli("stack", *layers, *options, "--views", "channels,kernels", "--logdir", "logs", "--run-name", "asked").code == 0
    tags = sorted(load_events(tmp_path / "logs" / "asked").Tags()["images"])
    assert [t for t in tags if t.endswith("/kernels")] == ["01-conv2d/kernels", "03-conv2d/kernels", "04-conv2d/kernels"]
    # Equal stages are told apart: only the first of two identical convs is the first.
    same = ("Conv2d(3, 3, 3)", "Conv2d(3, 3, 3)")
    assert run_cli("stack", *same, *options, "--logdir", "logs", "--run-name", "same").code == 0
    assert [t for t in load_events(tmp_path / "logs" / "same").Tags()["images"] if t.endswith("/kernels")] == ["01-conv2d/kernels"]
