"""pretrained.py: the first stages of torchvision models, with their weights file, offline."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.modules.utils import _pair

from convlab import pipeline
from convlab.calls import parse_layers
from convlab.config import resolve
from convlab.layers import build_layer
from convlab.pretrained import PRETRAINED, pretrained_layers

from conftest import assert_user_error, load_events


def _torchvision_stages(name: str) -> list[nn.Module]:
    with torch.device("meta"):  # the architecture only: no memory, no init
        model = getattr(torchvision.models, name)()
    if name == "resnet18":
        return [model.conv1, model.bn1, model.relu, model.maxpool]
    return list(model.features)


def _settings(m: nn.Module) -> str:
    """What a module does; a pool's sizes as pairs (it keeps them as typed: 3 or (3, 3)),
    and no inplace (convlab never runs a layer in place: each stage's input is shown after it ran)."""
    if isinstance(m, nn.MaxPool2d):
        return repr((_pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.dilation), m.ceil_mode))
    return repr(m).replace("inplace=True", "")


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_the_layers_are_torchvisions(name):
    theirs = _torchvision_stages(name)
    ours = [build_layer(s, 3) for s in parse_layers(PRETRAINED[name].layers)]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert type(a) is type(b) and _settings(a) == _settings(b)
        assert [(k, tuple(v.shape)) for k, v in a.state_dict().items()] == [(k, tuple(v.shape)) for k, v in b.state_dict().items()]
    weights = getattr(torchvision.models, {"vgg16": "VGG16_Weights", "alexnet": "AlexNet_Weights",
                                          "resnet18": "ResNet18_Weights"}[name]).IMAGENET1K_V1
    assert weights.url == PRETRAINED[name].url
    assert list(weights.transforms().mean) == list(PRETRAINED[name].mean)
    assert list(weights.transforms().std) == list(PRETRAINED[name].std)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """torch's hub cache in tmp, holding resnet18's file with randomly initialised weights."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    torch.manual_seed(1)
    model = torchvision.models.resnet18()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(model.state_dict(), home / "hub" / "checkpoints" / PRETRAINED["resnet18"].file_name)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return model.eval()


def test_pretrained_stages_equal_torchvisions_model(torch_home, cifar, run_cli, tmp_path):
    exp = resolve("stack", {"stack": {"pretrained": "resnet18", "upto": 4}, "data": {"data_dir": str(cifar.root)}})
    p = pipeline.plan(exp)
    assert p.normalize == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = torch.rand(4, 3, 32, 32)
    normalised = (x - torch.tensor(p.normalize[0]).view(1, 3, 1, 1)) / torch.tensor(p.normalize[1]).view(1, 3, 1, 1)
    ours = pipeline.forward([s.module.eval() for s in p.stages], p.model_input(x))
    m = torch_home
    with torch.no_grad():
        expected = [m.conv1(normalised)]
        expected += [m.bn1(expected[-1])]
        expected += [m.relu(expected[-1].clone())]
        expected += [m.maxpool(expected[-1])]
    for a, b in zip(ours, expected):
        assert torch.equal(a, b)
    assert "the file's last" in p.notes[1] and "resnet18's ImageNet weights" in p.notes[0]

    r = run_cli("stack", "--pretrained", "resnet18", "--upto", "2", "--data-dir", cifar.root, "-n", "1", "--logdir", "logs",
                "--run-name", "r", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "r")
    assert sorted(acc.Tags()["images"]) == ["00-input", "01-conv2d", "01-conv2d/kernels", "02-batchnorm2d"]
    saved = (tmp_path / "logs" / "r" / "config.toml").read_text()
    assert 'pretrained = "resnet18"' in saved and "upto = 2" in saved and "layers = []" in saved
    r = run_cli("stack", "--config", tmp_path / "logs" / "r" / "config.toml", "--run-name", "r2", "-q")
    assert r.code == 0, r.err


def test_offline_without_the_file_says_where_to_put_it(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    r = run_cli("stack", "--pretrained", "alexnet", "--upto", "3", "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, "cannot download alexnet's ImageNet weights ([Errno -3] Temporary failure in name resolution); "
                      "download https://download.pytorch.org/models/alexnet-owt-7be5be79.pth and put it at "
                      f"{tmp_path / 'empty-home' / 'hub' / 'checkpoints' / 'alexnet-owt-7be5be79.pth'}")
    assert not (tmp_path / "logs").exists()


def test_upto_takes_the_first_stages():
    assert pretrained_layers("vgg16", 3) == ("Conv2d(3, 64, kernel_size=3, padding=1)", "ReLU(inplace=True)",
                                             "Conv2d(64, 64, kernel_size=3, padding=1)")
    assert len(pretrained_layers("vgg16", None)) == 31
