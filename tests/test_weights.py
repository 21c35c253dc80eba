"""weights.py: a saved model's parameters into a stack, by order and shape; nothing from a file runs."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from convlab import pipeline
from convlab.config import resolve
from convlab.weights import WeightsError, read_state

from conftest import assert_user_error, load_events

LAYERS = ["Conv2d(3, 8, 3, padding=1)", "BatchNorm2d(8)", "ReLU()", "MaxPool2d(2)", "Flatten()", "Linear(2048, 10)"]


def _model() -> nn.Sequential:
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(2048, 10))
    with torch.no_grad():  # running statistics that are not 0 and 1, as a trained model has
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].num_batches_tracked.fill_(7)
    return model.eval()


class Wrapper(nn.Module):
    """A learner's own model class, as in the lesson: the layers inside an attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.model1 = _model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model1(x)


def _stack(path, seed: int = 0):
    exp = resolve("stack", {"stack": {"layers": LAYERS, "weights": str(path)}, "data": {"dataset": "shapes"}, "run": {"seed": seed}})
    return pipeline.plan(exp)


def _assert_same_stages(p, model: nn.Sequential) -> None:
    x = torch.rand(4, 3, 32, 32)
    ours = pipeline.forward([s.module.eval() for s in p.stages], x)
    with torch.no_grad():
        for i, y in enumerate(ours):
            x = model[i](x)
            assert torch.equal(y, x), i


@pytest.mark.parametrize("saved", ["state_dict", "wrapper_state_dict", "whole_sequential", "checkpoint"])
def test_weights_round_trip(tmp_path, saved):
    model = _model()
    path = tmp_path / "model.pth"
    obj = {
        "state_dict": model.state_dict(),
        "wrapper_state_dict": Wrapper().state_dict(),
        "whole_sequential": model,
        "checkpoint": {"epoch": 3, "model_state_dict": model.state_dict()},
    }[saved]
    torch.save(obj, path)
    p = _stack(path)
    _assert_same_stages(p, model)
    assert p.notes[0] == f"weights: 9 tensor(s) from {path}, matched by order and shape"


def test_the_weights_reach_the_logged_stages(cifar, run_cli, tmp_path):
    model = _model()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    r = run_cli("stack", *LAYERS, "--weights", "m.pt", "--data-dir", cifar.root, "-b", "16", "-n", "1", "--logdir", "logs", "--run-name", "w")
    assert r.code == 0, r.err
    assert "weights: 9 tensor(s) from m.pt, matched by order and shape" in r.out
    x = torch.from_numpy(cifar.test_images[:16]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = model(x)
    acc = load_events(tmp_path / "logs" / "w")
    assert acc.Scalars("06-linear/max")[0].value == pytest.approx(expected.max().item(), rel=1e-5)
    assert 'weights = "m.pt"' in (tmp_path / "logs" / "w" / "config.toml").read_text()
    assert (tmp_path / "logs" / "w").name == "w"


def test_a_longer_model_gives_its_first_layers(tmp_path):
    model = _model()
    bigger = nn.Sequential(*model, nn.ReLU(), nn.Linear(10, 5))
    torch.save(bigger.state_dict(), tmp_path / "big.pt")
    p = _stack(tmp_path / "big.pt")
    _assert_same_stages(p, model)
    assert "the file's last 2 tensor(s) (from '7.weight') are not used: the stack is its first layers" in p.notes[1]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), *list(m)[1:]),
         "stage 1 Conv2d(3, 8, 3, padding=1): its weight is (8, 3, 3, 3) but the file's tensor 1, '0.weight', is (4, 3, 3, 3)"),
        (lambda m: nn.Sequential(*list(m)[:4]),
         "model.pt has no tensor left for its weight (10, 2048); the file holds 7 tensor(s), the stack needs 9"),
        (lambda m: nn.Sequential(m[0], *list(m)[2:]),
         "stage 2 BatchNorm2d(8): its weight is (8,) but the file's tensor 3, '4.weight', is (10, 2048)"),
    ],
)
def test_a_mismatch_is_named_by_stage(tmp_path, change, message):
    torch.save(change(_model()).state_dict(), tmp_path / "model.pt")
    with pytest.raises(WeightsError) as info:
        _stack(tmp_path / "model.pt")
    assert message in str(info.value)
    assert str(info.value).startswith("stage ")


def test_a_whole_model_of_a_custom_class_is_refused(tmp_path, run_cli):
    torch.save(Wrapper(), tmp_path / "whole.pt")
    r = run_cli("stack", *LAYERS, "--weights", "whole.pt", "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, "whole.pt holds test_weights.Wrapper, which convlab does not load (unpickling it could run its code); "
                      "save its parameters instead: torch.save(model.state_dict(), 'whole.pt')")
    assert not (tmp_path / "logs").exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("legacy", [False, True])
def test_nothing_in_a_file_is_executed(tmp_path, run_cli, legacy):
    torch.save({"0.weight": Payload()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=not legacy)
    r = run_cli("stack", "Conv2d(3, 8, 3)", "--weights", "evil.pt", "--dataset", "shapes")
    assert_user_error(r, "evil.pt holds posix.system, which convlab does not load")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "logs").exists()


def test_a_plain_pickle_is_not_run_either(tmp_path, run_cli):
    with (tmp_path / "evil.pth").open("wb") as f:
        pickle.dump(Payload(), f)
    assert_user_error(run_cli("stack", "ReLU()", "--weights", "evil.pth", "--dataset", "shapes"), "evil.pth")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "bad.pt: not a file torch.save wrote"),
        (None, "bad.pt holds a Tensor; expected a state_dict"),
        ({}, "bad.pt holds a dict that is not a state_dict"),
        ({"a": 1}, "bad.pt holds a dict that is not a state_dict"),
        ({"0.weight": torch.full((8, 3, 3, 3), float("nan")), "0.bias": torch.zeros(8)}, "'0.weight' holds NaN or infinite values"),
    ],
)
def test_files_that_are_no_state_dict(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(torch.zeros(3) if content is None else content, path)
    with pytest.raises(WeightsError) as info:
        _stack_or_read(path)
    assert message in str(info.value)


def _stack_or_read(path):
    read_state(path)
    exp = resolve("stack", {"stack": {"layers": ["Conv2d(3, 8, 3)"], "weights": str(path)}, "data": {"dataset": "shapes"}})
    pipeline.plan(exp)


def test_a_truncated_file_is_one_line(tmp_path, run_cli):
    torch.save(_model().state_dict(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert zipfile.is_zipfile(tmp_path / "m.pt")
    assert_user_error(run_cli("stack", *LAYERS, "--weights", "cut.pt", "--dataset", "shapes"), "cannot read --weights cut.pt: not a file")


def test_weights_and_pretrained_are_one_or_the_other(run_cli):
    assert_user_error(run_cli("stack", "--pretrained", "resnet18", "--weights", "m.pt", "--dataset", "shapes"),
                      "--weights and --pretrained both set the stack's weights")
