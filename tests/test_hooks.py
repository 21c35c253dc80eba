"""Any nn.Module through forward hooks (convlab.hooks) and logged call by call (convlab.modelrun):
each call once and in order, its table held to torch (shapes, parameters, flop_counter's
multiply-adds) and to the stack's own table, and the run read back with TensorBoard's loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab.calls import parse_layers
from convlab.config import overrides, resolve
from convlab.errors import ConfigError
from convlab.hooks import ALL, ModelError, trace
from convlab.modelrun import plan_model
from convlab.modelrun import run as run_model
from convlab.pictures import channel_view
from convlab.stack import explain_stack

from conftest import images, load_events


class Block(nn.Module):
    """A residual block: relu(conv(x) + x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) + x)


class Net(nn.Module):
    """A stem, a residual block, and `act` and `pool` each called twice."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.block = Block(6)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.stem(x)))
        x = self.pool(self.act(self.block(x)))
        return self.fc(self.flat(x))


CALLS = ["stem", "act", "pool", "block.conv", "block.relu", "act", "pool", "flat", "fc"]


def _by_hand(net: Net, x: torch.Tensor) -> list[torch.Tensor]:
    """Each call's output, computed with torch step by step, in the order forward calls them."""
    a = net.stem(x)
    b = net.act(a)
    c = net.pool(b)
    d = net.block.conv(c)
    e = net.block.relu(d + c)
    f = net.act(e)
    g = net.pool(f)
    h = net.flat(g)
    return [a, b, c, d, e, f, g, h, net.fc(h)]


@pytest.fixture(scope="module")
def net() -> Net:
    torch.manual_seed(1)
    return Net()


def test_each_call_once_in_order_with_torchs_shapes_parameters_and_flops(net):
    table = trace(net, (3, 32, 32))
    assert [c.name for c in table.calls] == CALLS
    assert [c.index for c in table.calls] == list(range(1, 10))
    with torch.no_grad():
        outputs = _by_hand(net, torch.rand(2, 3, 32, 32))
    assert [c.output_shape for c in table.calls] == [tuple(y.shape[1:]) for y in outputs]
    assert [c.tag for c in table.calls] == ["01-conv2d", "02-relu", "03-maxpool2d", "04-conv2d", "05-relu", "06-relu",
                                            "07-maxpool2d", "08-flatten", "09-linear"]
    # Parameters: each module's own at its first call, none again; the total is torch's.
    own = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_modules()}
    assert [c.parameters for c in table.calls] == [own[n] if i == CALLS.index(n) else 0 for i, n in enumerate(CALLS)]
    assert [c.shared_with for c in table.calls] == [None, None, None, None, None, 2, 3, None, None]
    assert table.parameters == table.model_parameters == sum(p.numel() for p in net.parameters())
    # Multiply-adds: what torch's flop counter counts for the whole model, 2 flops each, per image.
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(4, 3, 32, 32))
    assert table.multiply_adds * 2 * 4 == counter.get_total_flops()
    assert table.output_shape == (10,)


def test_the_receptive_field_stops_where_the_chain_is_no_longer_sequential(net):
    calls = trace(net, (3, 32, 32)).calls
    # stem 3x3, relu, pool 2: then the block's conv takes the pool's output (still a chain) ...
    assert [c.field for c in calls[:4]] == [(3, 3), (3, 3), (4, 4), (8, 8)]
    assert [c.jump for c in calls[:4]] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    # ... but its relu takes conv(x) + x, which no call gave: from there on it is not shown.
    assert all(c.field is None and c.jump is None for c in calls[4:])
    text = trace(net, (3, 32, 32)).text()
    assert "call 2's" in text and "call 3's" in text  # the second calls of act and pool share their parameters


def test_a_sequential_models_table_is_the_stacks_own():
    layers = ["Conv2d(3, 8, 5, padding=2)", "ReLU()", "MaxPool2d(2)", "Conv2d(8, 16, 3, stride=2)", "MaxPool2d(3, stride=1)",
              "Flatten()", "Linear(400, 20)", "Linear(20, 10)"]
    stages = parse_layers(layers)
    expected = explain_stack(stages, (3, 32, 32))
    from convlab.layers import build_layer

    model = nn.Sequential(*(build_layer(s, 3 if i == 0 else 8) for i, s in enumerate(stages)))
    table = trace(model, (3, 32, 32))
    assert [c.output_shape for c in table.calls] == [r.output_shape for r in expected.rows]
    assert [c.parameters for c in table.calls] == [r.parameters for r in expected.rows]
    assert [c.multiply_adds for c in table.calls] == [r.multiply_adds for r in expected.rows]
    assert [c.field if c.field != ALL else None for c in table.calls] == [r.field for r in expected.rows]
    assert [c.jump for c in table.calls] == [r.jump for r in expected.rows]


def test_a_model_that_cannot_take_the_images_is_one_line_naming_the_call():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(ModelError, match=r"model Sequential cannot run on the images \(3, 32, 32\) .* in call 3, 2 Linear"
                                         r"\(in_features=100, out_features=10, bias=True\): RuntimeError: mat1 and mat2"):
        trace(model, (3, 32, 32))


def _exp(tmp_path: Path, **settings) -> object:
    return resolve("stack", overrides("stack", {"dataset": "shapes", "batch_size": 8, "max_batches": 2,
                                                "logdir": str(tmp_path / "logs"), **settings}), model=True)


@pytest.fixture(scope="module")
def logged(net, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    summary = run_model(_exp(tmp), net)
    return Path(summary["run_dir"]), summary, before


def test_a_models_run_logs_each_call_in_call_order(net, logged):
    run_dir, summary, before = logged
    acc = load_events(run_dir)
    tags = ["01-conv2d", "02-relu", "03-maxpool2d", "04-conv2d", "05-relu", "06-relu", "07-maxpool2d", "08-flatten", "09-linear"]
    # As a stack's: the first Conv2d's kernels; a deeper one's when --views names kernels.
    assert summary["tags"] == ["input", "01-conv2d", "01-conv2d/kernels", *tags[1:]]
    assert sorted(acc.Tags()["images"]) == sorted(summary["tags"])
    for tag in ["input", *tags]:
        assert [i.step for i in images(acc, tag)] == [0, 1]
    assert [i.step for i in images(acc, "01-conv2d/kernels")] == [0]  # once; a module's second call logs no kernels again
    assert {f"{t}/mean" for t in tags} <= set(acc.Tags()["scalars"])
    assert summary["status"] == "complete" and summary["model"] == "Net" and summary["output_shape"] == [10]
    # The model is left as it was: in train mode, its weights untouched.
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert (run_dir / "config.toml").read_text().startswith("# model: Net, a Python torch.nn.Module")
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2


def test_each_calls_picture_is_that_calls_output(net, logged):
    """The 6th call (act, a second time) after the residual sum: its logged channels view is the
    view of relu(block(x)) computed by hand with torch, for the first batch."""
    run_dir, _, _ = logged
    from convlab import data as datasets

    exp = _exp(run_dir.parent)
    x = datasets.load(exp.data, exp.run.seed).batch(0, 8).float().div_(255)
    net.eval()
    with torch.no_grad():
        outputs = _by_hand(net, x)
    net.train()
    acc = load_events(run_dir)
    for index in (1, 6):
        tag = trace(net, (3, 32, 32)).calls[index - 1].tag
        expected = channel_view(outputs[index - 1][:, :16], 4, "symmetric", None, pixels=True, labels=True)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(images(acc, tag)[0].pixels, expected), tag


def test_model_runs_are_checked_before_anything_is_written(net, tmp_path):
    with pytest.raises(ConfigError, match="model= is the whole network"):
        resolve("stack", overrides("stack", {"layers": ["ReLU()"]}), model=True)
    with pytest.raises(ConfigError, match="view 'kernels' applies to no call of model Sequential"):
        plan_model(_exp(tmp_path, show="kernels"), nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="model= takes a torch.nn.Module"):
        plan_model(_exp(tmp_path), "Net()")
    with pytest.raises(ModelError):
        run_model(_exp(tmp_path), nn.Sequential(nn.Linear(3, 3)))
    assert not (tmp_path / "logs").exists()


def test_a_models_dry_run_and_explain_show_its_table_and_write_nothing(net, tmp_path, monkeypatch):
    import convlab

    monkeypatch.chdir(tmp_path)
    table = trace(net, (3, 32, 32)).text()
    assert str(convlab.explain("stack", model=net, dataset="shapes")) == table
    text = str(convlab.stack(model=net, dataset="shapes", dry_run=True))
    assert text.startswith("# model: Net") and table in text and text.endswith("dry run: nothing was loaded or written")
    trained = str(convlab.train(model=net, dataset="shapes", max_steps=2, dry_run=True))
    assert table in trained and "training: 2 step(s)" in trained
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_a_model_on_the_gpu_runs_and_trains_there(tmp_path, monkeypatch):
    import convlab

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    net = Net().to("cuda")
    run = convlab.stack(model=net, dataset="shapes", batch_size=8, max_batches=2, quiet=True)
    assert run.summary["device"] == "cuda:0" and run.steps("06-relu") == [0, 1]
    trained = convlab.train(model=net, dataset="shapes", batch_size=8, max_steps=3, eval_batches=1, quiet=True)
    assert trained.summary["steps"] == 3 and next(net.parameters()).device.type == "cuda"
    with pytest.raises(ConfigError, match="parameters are on cuda:0; convlab runs your model where it is"):
        convlab.stack(model=net, dataset="shapes", device="cpu")
