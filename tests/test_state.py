"""state.py: the one reader of weights files and the one checker of a layer's state, for every
weighted layer kind and every way a file arrives (conv and stack --weights, train --init-weights,
a sweep, --pretrained's cache); issue 25, rows 1, 3, 9 and 11."""

from __future__ import annotations

import collections
import json
import os
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from convlab import pipeline
from convlab.calls import parse_layer
from convlab.config import resolve
from convlab.layers import FACTORIES, build_layer
from convlab.pretrained import PRETRAINED
from convlab.weights import read_state

from conftest import assert_user_error, load_events

SHAPES = ("--dataset", "shapes", "-n", "1", "-b", "2", "--logdir", "logs")
ONE_OF_EACH = ["Conv2d(3, 6, 3)", "MaxPool2d(2)", "AvgPool2d(2)", "ReLU()", "LeakyReLU()", "Sigmoid()", "Tanh()", "GELU()",
               "ELU()", "BatchNorm2d(6)", "Dropout()", "Dropout2d()", "Flatten()", "Linear(6, 2)", "Softmax(dim=1)", "Identity()",
               "ConvTranspose2d(6, 4, 3, groups=2)", "Upsample(scale_factor=2)"]


def test_every_kind_with_weights_has_its_reach():
    from convlab.state import REACH, reach_problem

    kinds = {}
    for text in ONE_OF_EACH:
        cfg = parse_layer(text)
        kinds[cfg.kind] = build_layer(cfg, 3 if cfg.kind == "conv" else 6)
    assert set(kinds) == set(FACTORIES)  # one of each kind convlab builds
    weighted = {k for k, m in kinds.items() if any(True for _ in m.parameters())}
    assert weighted == set(REACH) == {"conv", "convtranspose", "linear", "batchnorm2d"}
    for kind in weighted:
        assert reach_problem(kind, kinds[kind]) is None  # PyTorch's own init is fine
    transposed = kinds["convtranspose"]
    with torch.no_grad():  # its reach is per output channel, over its group's inputs and every tap
        transposed.weight.fill_(1.0)
        transposed.bias.zero_()
        transposed.weight[3:, 1].fill_(3.5e38 / 27)  # group 1's second output channel: 3 inputs x 9 taps, just past
    assert "sum |weight| + |bias| is 3.5e+38 for output channel 3," in reach_problem("convtranspose", transposed)


@pytest.mark.parametrize(
    "value, role, problem",
    [
        (torch.randn(6, 3, 3, 3, device="meta"), "weight", "holds no data: it is a meta tensor"),
        (torch.zeros(6, 3).to_sparse(), "weight", "is a sparse tensor (sparse_coo)"),
        (torch.zeros(6, dtype=torch.complex64), "bias", "holds complex64 values; expected real numbers"),
        (torch.tensor([1.0, float("nan"), float("inf"), -float("inf")]), "bias", "holds NaN or infinite values (1 NaN, 2 infinite of 4)"),
        (torch.tensor([1e300], dtype=torch.float64), "weight", "holds values beyond float32's range (largest |value| 1e+300"),
        (torch.tensor([1.0, -1.0]), "running_var", "holds a negative variance (-1 in channel 1)"),
    ],
)
def test_the_checker_names_what_no_layer_can_run_with(value, role, problem):
    from convlab.state import tensor_problem

    assert tensor_problem(value, "'x'", role).startswith(f"'x' {problem}")


@pytest.mark.parametrize("value", [torch.zeros(3), torch.tensor([-0.0, 5e-45, 1e13, -3e38]), torch.tensor([0, 7], dtype=torch.int64)])
def test_plain_values_pass(value):
    from convlab.state import tensor_problem

    assert tensor_problem(value, "'x'", "running_var" if value.min() >= 0 else "weight") is None


def _bad_bn_file(path):
    """The issue's file: a conv whose weights reach past float32, a negative variance, a mean at 3e38."""
    model = nn.Sequential(nn.Conv2d(3, 6, 5), nn.BatchNorm2d(6))
    state = model.state_dict()
    state["0.weight"].fill_(1e37)
    state["1.running_var"].fill_(-1)
    state["1.running_mean"].fill_(3e38)
    torch.save(state, path)


def test_impossible_files_are_refused_before_the_run_naming_the_tensor(tmp_path, run_cli):
    _bad_bn_file(tmp_path / "bn.pt")
    r = run_cli("stack", "Conv2d(3,6,5)", "BatchNorm2d(6)", "ReLU()", "--weights", "bn.pt", *SHAPES)
    assert_user_error(r, "stage 2 BatchNorm2d(6): --weights bn.pt: '1.running_var' holds a negative variance (-1 in channel 0)")
    state = nn.Sequential(nn.Conv2d(3, 6, 5), nn.BatchNorm2d(6)).state_dict()
    state["0.weight"].fill_(1e37)
    torch.save(state, tmp_path / "reach.pt")
    r = run_cli("stack", "Conv2d(3,6,5)", "BatchNorm2d(6)", "--weights", "reach.pt", *SHAPES)
    assert_user_error(r, "stage 1 Conv2d(3, 6, 5): --weights reach.pt ('0.weight', '0.bias') holds weights so large that the "
                      "output would overflow float32: sum |weight| + |bias| is 7.5e+38 for output channel 0")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)).state_dict() | {"1.weight": torch.full((10, 3072), 1e36)},
               tmp_path / "linear.pt")
    r = run_cli("stack", "Flatten()", "Linear(3072,10)", "--weights", "linear.pt", *SHAPES)
    assert_user_error(r, "stage 2 Linear(3072, 10): --weights linear.pt ('1.weight', '1.bias') holds weights so large")
    state = nn.Sequential(nn.Conv2d(3, 6, 5), nn.BatchNorm2d(6)).state_dict()
    state["1.running_var"].fill_(1e-30)
    state["1.weight"].fill_(1e37)
    torch.save(state, tmp_path / "scale.pt")
    r = run_cli("stack", "Conv2d(3,6,5)", "BatchNorm2d(6)", "--weights", "scale.pt", *SHAPES)
    assert_user_error(r, "stage 2 BatchNorm2d(6): --weights scale.pt ('1.weight', '1.bias', '1.running_mean', '1.running_var', "
                      "'1.num_batches_tracked') holds weights so large that the output would overflow float32: (1 + |running_mean|)")
    r = run_cli("train", "Conv2d(3,6,5)", "BatchNorm2d(6)", "ReLU()", "Flatten()", "Linear(4704, 10)", "--init-weights", "bn.pt",
                "--dataset", "shapes", "--max-steps", "1", "--logdir", "logs")
    assert_user_error(r, "stage 2 BatchNorm2d(6): --init-weights bn.pt: '1.running_var' holds a negative variance")
    assert not (tmp_path / "logs").exists()


# ----------------------------------------------------------------------------- row 3: meta tensors


def test_meta_tensors_are_one_line_for_conv_stack_and_sweep(tmp_path, run_cli):
    torch.save({"weight": torch.randn(6, 3, 3, 3, device="meta"), "bias": torch.zeros(6)}, tmp_path / "conv.pt")
    assert_user_error(run_cli("conv", "--weights", "conv.pt", *SHAPES), "--weights conv.pt: its weight holds no data: it is a meta tensor")
    torch.save({"0.weight": torch.randn(6, 3, 3, 3, device="meta"), "0.bias": torch.zeros(6)}, tmp_path / "stack.pt")
    assert_user_error(run_cli("stack", "Conv2d(3, 6, 3)", "--weights", "stack.pt", *SHAPES),
                      "stage 1 Conv2d(3, 6, 3): --weights stack.pt: '0.weight' holds no data")
    assert_user_error(run_cli("sweep", "stack", "Conv2d(3, 6, 3)", "ReLU()", "--weights", "stack.pt", "--vary", "max_channels=1,2",
                              *SHAPES), "'0.weight' holds no data")
    assert not (tmp_path / "logs").exists()


# ----------------------------------------------------------------------------- row 11: the file's own messages


@pytest.mark.parametrize("command", ["conv", "stack"])
def test_files_torch_cannot_read_are_one_true_line(tmp_path, run_cli, command):
    layers = ["Conv2d(3, 6, 3)"] if command == "stack" else []
    (tmp_path / "dir.pt").mkdir()
    os.mkfifo(tmp_path / "fifo.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    cases = {
        "dir.pt": "--weights file is a directory: dir.pt",
        "fifo.pt": "--weights file fifo.pt is not a regular file (a device or a pipe)",
        "empty.pt": "cannot read --weights empty.pt: it is empty (0 bytes), not a file torch.save wrote",
        "random.pt": "cannot read --weights random.pt: not a file torch.save wrote (",
    }
    for name, message in cases.items():
        r = run_cli(command, *layers, "--weights", name, *SHAPES)
        assert_user_error(r, message)
        assert "weights_only" not in r.err and "not found" not in r.err


def _resnet18_file(path, *, batches_tracked: bool, fill: float | None = None) -> nn.Module:
    """resnet18's state_dict in torchvision's order, with or without the num_batches_tracked entries
    (the ImageNet file, saved before PyTorch 0.4 and re-saved in 2020 as it was, has none)."""
    torch.manual_seed(3)
    model = torchvision.models.resnet18()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
        if fill is not None:
            model.conv1.weight.fill_(fill)
    state = collections.OrderedDict(
        (k, v) for k, v in model.state_dict().items() if batches_tracked or not k.endswith("num_batches_tracked")
    )
    torch.save(state, path)
    return model.eval()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch's hub cache in tmp; no download."""
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return folder / PRETRAINED["resnet18"].file_name


@pytest.mark.parametrize("batches_tracked", [False, True], ids=["as-the-imagenet-file", "with-num-batches-tracked"])
def test_resnet18_loads_with_or_without_num_batches_tracked(hub, run_cli, tmp_path, batches_tracked):
    model = _resnet18_file(hub, batches_tracked=batches_tracked)
    assert len(read_state(hub)) == (122 if batches_tracked else 102)
    exp = resolve("stack", {"stack": {"pretrained": "resnet18", "upto": 4}, "data": {"dataset": "shapes"}})
    p = pipeline.plan(exp)
    reference = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool).eval()
    reference.load_state_dict(nn.Sequential(*(s.module for s in p.stages)).state_dict())  # what torch itself accepts
    for (k, ours), theirs in zip(nn.Sequential(*(s.module for s in p.stages)).state_dict().items(),
                                 nn.Sequential(model.conv1, model.bn1).state_dict().values()):
        assert torch.equal(ours, theirs), k
    if not batches_tracked:
        assert "no num_batches_tracked for stage 2 BatchNorm2d(64) (saved before PyTorch 0.4); it starts at 0" in p.notes[1]
    r = run_cli("stack", "--pretrained", "resnet18", "--upto", "2", *SHAPES, "--run-name", "r", "-q")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "logs" / "r" / "summary.json").read_text())["status"] == "complete"


def test_a_tampered_cached_download_says_to_delete_it(hub, run_cli, tmp_path):
    _resnet18_file(hub, batches_tracked=False, fill=1e37)
    r = run_cli("stack", "--pretrained", "resnet18", "--upto", "2", *SHAPES)
    assert_user_error(r, f"stage 1 Conv2d(3, 64, 7, stride=2, padding=3, bias=False): --pretrained resnet18 {hub} "
                      "('conv1.weight') holds weights so large")
    assert "it is the cached download of https://download.pytorch.org/models/resnet18-f37072fd.pth: delete it" in r.err
    hub.write_bytes(hub.read_bytes()[:1000])
    r = run_cli("stack", "--pretrained", "resnet18", "--upto", "2", *SHAPES)
    assert_user_error(r, f"cannot read --pretrained resnet18 {hub}: not a file torch.save wrote")
    assert "delete it and run again to download it afresh" in r.err and "--weights" not in r.err
    assert not (tmp_path / "logs").exists()


def test_values_that_fit_run_and_say_so(tmp_path, run_cli):
    """Row 1's files that are no error: a bias of 1e38, zero weights with a bias of 1e15 (a near-
    constant output past what 64 equal float64 bins can split): logged, the histogram read back."""
    for name, bias in (("big.pt", 1e38), ("flat.pt", 1e15)):
        conv = nn.Conv2d(3, 6, 3)
        with torch.no_grad():
            conv.bias.fill_(bias)
            if name == "flat.pt":
                conv.weight.zero_()
        torch.save(conv.state_dict(), tmp_path / name)
        r = run_cli("conv", "--weights", name, *SHAPES, "--run-name", name[:-3], "-q")
        assert r.code == 0, r.err
        acc = load_events(tmp_path / "logs" / name[:-3])
        (histogram,) = acc.Histograms("output/histogram")
        assert histogram.histogram_value.min == histogram.histogram_value.max == pytest.approx(bias, rel=1e-6)
        assert histogram.histogram_value.num == 2 * 6 * 30 * 30
