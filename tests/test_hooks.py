"""Any nn.Module through forward hooks (convlab.hooks) and logged call by call (convlab.modelrun):
each call once and in order, its table held to torch (shapes, parameters, flop_counter's
multiply-adds) and to the stack's own table, and the run read back with TensorBoard's loader."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab.calls import parse_layers
from convlab.config import overrides, resolve
from convlab.errors import ConfigError
from convlab.hooks import ALL, ModelError, trace
from convlab.layers import ShapeError, build_layer
from convlab.modelrun import plan_model
from convlab.modelrun import run as run_model
from convlab.pictures import channel_view
from convlab.stack import explain_stack, output_shapes
from test_stack import _field_layer

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
    model = nn.Sequential(*(build_layer(s, 3 if i == 0 else 8) for i, s in enumerate(stages)))
    table = trace(model, (3, 32, 32))
    assert [c.output_shape for c in table.calls] == [r.output_shape for r in expected.rows]
    assert [c.parameters for c in table.calls] == [r.parameters for r in expected.rows]
    assert [c.multiply_adds for c in table.calls] == [r.multiply_adds for r in expected.rows]
    assert [c.field if c.field != ALL else None for c in table.calls] == [r.field for r in expected.rows]
    assert [c.jump for c in table.calls] == [r.jump for r in expected.rows]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_sequential_model_of_every_kind_has_the_stacks_fields_and_costs(data):
    """A random stack of every stage kind (test_stack's), built as torch modules and traced through its
    hooks: each call's receptive field, jump, '<=' and multiply-adds are the stack table's, worked out by
    the same rules (fields.FIELDS, stack.COSTS) from the modules themselves."""
    draw = data.draw
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 12)), draw(st.integers(4, 12))
    texts, shape = [], (c, h, w)
    for _ in range(draw(st.integers(1, 5))):
        text = _field_layer(draw, shape, tight=False)
        try:
            shape = output_shapes(parse_layers([*texts, text]), (c, h, w))[-1]
        except ShapeError:
            continue
        texts.append(text)
    assume(texts)
    stages = parse_layers(texts)
    expected = explain_stack(stages, (c, h, w))
    table = trace(nn.Sequential(*(build_layer(s, c) for s in stages)), (c, h, w))
    assert [x.output_shape for x in table.calls] == [r.output_shape for r in expected.rows], texts
    assert [x.multiply_adds for x in table.calls] == [r.multiply_adds for r in expected.rows], texts
    assert [x.field if x.field != ALL else None for x in table.calls] == [r.field for r in expected.rows], texts
    assert [x.jump for x in table.calls] == [r.jump for r in expected.rows], texts
    assert [x.exact for x in table.calls] == [r.exact for r in expected.rows], texts


class Decoder(nn.Module):
    """Down and back up, not an nn.Sequential: a ConvTranspose2d, an Upsample, and Softmax over a spatial
    dim and over features, each a call of forward."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=2)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.grow = nn.Upsample(scale_factor=2)
        self.column = nn.Softmax(dim=2)
        self.row = nn.LogSoftmax(dim=-1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(2 * 28 * 28, 5)
        self.classes = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.grow(self.up(self.down(x)))
        return self.classes(self.fc(self.flat(self.row(self.column(x)))))


def test_going_back_up_and_mixing_an_axis_are_read_by_the_stacks_rules():
    model = Decoder()
    table = trace(model, (3, 15, 15))
    # The same layers as a stack (LogSoftmax mixes what Softmax over its dim mixes): the same table.
    stack = explain_stack(parse_layers([
        "Conv2d(3, 4, 3, stride=2)", "ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2)",
        "Upsample(scale_factor=2)", "Softmax(dim=2)", "Softmax(dim=-1)", "Flatten()", "Linear(1568, 5)", "Softmax(dim=1)"]), (3, 15, 15))
    for call, row in zip(table.calls, stack.rows, strict=True):
        assert (call.output_shape, call.multiply_adds, call.field if call.field != ALL else None, call.jump, call.exact) == (
            row.output_shape, row.multiply_adds, row.field, row.jump, row.exact), call.name
    calls = {c.name: c for c in table.calls}
    # Back up by stride 2 from a stride-2 conv: outputs read 1 or 2 of its inputs by turns ('<='), moving 2 x 1/2 a step;
    # the Upsample halves it again.
    assert calls["up"].field == (5, 5) and calls["up"].jump == (1, 1) and not calls["up"].exact
    assert calls["grow"].jump == (Fraction(1, 2), Fraction(1, 2))
    # Softmax over H: every output reads the whole column, jump 0 down it (it was 1 in the old arithmetic, which let Softmax
    # keep the field); LogSoftmax over W then the whole row; Linear, and a Softmax over its features, every input value.
    assert calls["column"].field == (17, 5) and calls["column"].jump == (0, Fraction(1, 2))
    assert calls["row"].field == (17, 17) and calls["row"].jump == (0, 0) and calls["row"].exact
    assert calls["fc"].field == ALL and calls["classes"].field == ALL
    assert "<=17x5" in table.text() and "0x1/2" in table.text()
    # Multiply-adds of the transposed convolution as the stack counts them (every input value times its group's taps),
    # and flop_counter's for the whole model.
    assert calls["up"].multiply_adds == 4 * 7 * 7 * 1 * 3 * 3
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(2, 3, 15, 15))
    assert table.multiply_adds * 2 * 2 == counter.get_total_flops()


def test_a_models_max_pool_window_of_padding_only_is_refused_before_it_runs(tmp_path, monkeypatch):
    import convlab

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, 1, 1, 31))
    with pytest.raises(ModelError, match=r"model Sequential, call 2 1 MaxPool2d\(2, stride=1, padding=1, dilation=31\): window 0 "
                                         r"on the input's height of 30 reads only padding .*; use MaxPool2d\(2, stride=1, padding=1, dilation=30\)"):
        trace(model, (3, 32, 32))
    monkeypatch.chdir(tmp_path)
    for call in (lambda: convlab.stack(model=model, dataset="shapes"), lambda: convlab.explain("stack", model=model, dataset="shapes"),
                 lambda: convlab.train(model=nn.Sequential(*model, nn.Flatten(), nn.Linear(4, 10)), dataset="shapes")):
        with pytest.raises(ModelError, match="reads only padding"):
            call()
    assert list(tmp_path.iterdir()) == []


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
