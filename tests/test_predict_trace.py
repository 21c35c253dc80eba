"""--trace STAGE:CHANNEL:Y:X: the value worked out is the model's own, from the window and kernel
torch used (held to F.unfold), and what the next activation and pool made of it."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from convlab import planning
from convlab.config import resolve
from convlab.errors import ConfigError
from convlab.pipeline import forward
from convlab.predict.trace import TracePoint, parse_trace, trace, trace_lines


def _plan(layers: list[str], dataset: str = "shapes"):
    exp = resolve("stack", {"stack": {"layers": layers}, "data": {"dataset": dataset}, "run": {"device": "cpu", "seed": 3}})
    return planning.plan(exp)


def _run(p, seed: int = 0):
    c, h, w = p.input_shape
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))
    return x, forward([s.module for s in p.stages], x)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # PyTorch pads a copy: the case wanted
@pytest.mark.parametrize("layers", [
    ["Conv2d(3, 4, 3)"],
    ["Conv2d(3, 6, 5, stride=2, padding=2)", "ReLU()", "MaxPool2d(2)"],
    ["Conv2d(3, 4, 3, dilation=2, padding=1, bias=False)", "Tanh()"],
    ["Conv2d(3, 6, (3, 5), stride=(2, 1), padding=(1, 2), groups=3)"],
    ["Conv2d(3, 4, 4, padding='same')", "LeakyReLU(0.1)", "AvgPool2d(3, stride=2, padding=1)"],
])
def test_the_traced_value_is_the_model_s_from_the_window_and_kernel_torch_used(layers):
    p = _plan(layers)
    conv = p.stages[0].module
    x, outputs = _run(p)
    _, c_out, h_out, w_out = outputs[0].shape
    cfg = p.stages[0].cfg
    if cfg.padding == "same":  # F.unfold pads evenly: pad as the conv does, then unfold unpadded
        (top, bottom), (left, right) = ((1, 2), (1, 2))
        columns = F.unfold(F.pad(x, (left, right, top, bottom)), cfg.kernel_size, dilation=cfg.dilation, stride=cfg.stride)
    else:
        columns = F.unfold(x, cfg.kernel_size, dilation=cfg.dilation, padding=cfg.padding, stride=cfg.stride)
    kh, kw = cfg.kernel_size
    per_group = 3 // cfg.groups
    points = [(0, 0, 0), (c_out - 1, h_out - 1, w_out - 1), (c_out // 2, h_out // 2, 1)]
    for channel, y, xx in points:
        t = trace(TracePoint(1, channel, y, xx), p, x, outputs)
        assert t.value == pytest.approx(float(outputs[0][0, channel, y, xx]), abs=1e-5)
        assert t.model_value == float(outputs[0][0, channel, y, xx])
        column = columns[0, :, y * w_out + xx].view(3, kh, kw)
        group = channel // (c_out // cfg.groups)
        assert [term.channel for term in t.terms] == list(range(group * per_group, (group + 1) * per_group))
        for j, term in enumerate(t.terms):
            assert torch.allclose(torch.tensor(term.window, dtype=torch.float64), column[term.channel].double(), atol=1e-7)
            assert torch.allclose(torch.tensor(term.kernel, dtype=torch.float64), conv.weight[channel, j].detach().double())
        assert t.bias == (None if conv.bias is None else pytest.approx(float(conv.bias.detach()[channel])))


def test_what_the_activation_and_the_pool_made_of_it():
    p = _plan(["Conv2d(3, 4, 3, padding=1)", "ReLU()", "MaxPool2d(2)"])
    x, outputs = _run(p)
    relu, pooled = outputs[1][0, 0], outputs[2][0, 0]
    # A place whose ReLU output is the max of its 2x2 window, and one in the same window that is not.
    i, j = 3, 5
    window = relu[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
    r, c = divmod(int(window.argmax()), 2)
    kept = trace(TracePoint(1, 0, 2 * i + r, 2 * j + c), p, x, outputs)
    assert kept.after[0].startswith("stage 2 ReLU(): ")
    assert kept.after[1] == (f"stage 3 MaxPool2d(2): out[0, {i}, {j}] = max of rows {2 * i}..{2 * i + 1}, columns "
                             f"{2 * j}..{2 * j + 1} = {kept.after[1].split(' = ')[-1].split(';')[0]}; this value is the max: it goes on")
    assert float(pooled[i, j]) == float(window.max())
    other = trace(TracePoint(1, 0, 2 * i + 1 - r, 2 * j + c), p, x, outputs)
    assert other.after[-1].endswith("this value is not the max: it is dropped here") or float(window.min()) == float(window.max())


def test_a_pool_and_an_activation_can_be_traced_too():
    p = _plan(["Conv2d(3, 4, 3)", "Sigmoid()", "MaxPool2d(3, stride=2)"])
    x, outputs = _run(p, seed=1)
    t = trace(TracePoint(3, 2, 4, 6), p, x, outputs)
    assert t.value == pytest.approx(float(outputs[2][0, 2, 4, 6])) and t.rows == [8, 9, 10] and t.cols == [12, 13, 14]
    assert "the largest of the 9 input values in its window" in t.how[0]
    s = trace(TracePoint(2, 1, 0, 0), p, x, outputs)
    assert s.value == pytest.approx(float(outputs[1][0, 1, 0, 0])) and "1 / (1 + exp(-x))" in s.how[0]


def test_the_printed_trace_shows_the_arithmetic_and_the_model_s_value():
    p = _plan(["Conv2d(3, 2, 3, padding=1)", "ReLU()"])
    x, outputs = _run(p)
    t = trace(TracePoint(1, 1, 0, 0), p, x, outputs)
    text = "\n".join(trace_lines(t, "cat.png"))
    assert text.startswith("trace 1:1:0:0: stage 1 Conv2d(3, 2, 3, padding=1), channel 1, row 0, column 0 of cat.png")
    assert "rows -1 and columns -1 are padding (0)" in text
    assert "input channel 0 (red):" in text and "input channel 2 (blue):" in text
    assert f"+ bias {float(p.stages[0].module.bias.detach()[1]):.4g}"[:12] in text
    assert text.count("sum of products = ") == 3 and "then stage 2 ReLU(): " in text
    assert "(the model's own value: " in text


def test_a_trace_of_many_input_channels_shows_the_first_in_full_and_sums_the_rest():
    p = _plan(["Conv2d(3, 8, 3)", "Conv2d(8, 4, 3)"])
    x, outputs = _run(p)
    t = trace(TracePoint(2, 0, 0, 0), p, x, outputs)
    short = "\n".join(trace_lines(t, "x"))
    assert short.count("sum of products = ") == 3 and "input channels 3..7, their sums of products" in short
    full = "\n".join(trace_lines(t, "x", channels=None))
    assert full.count("sum of products = ") == 8


@pytest.mark.parametrize("text, message", [
    ("1:0:5", "--trace takes STAGE:CHANNEL:Y:X"),
    ("9:0:0:0", "--trace 9:0:0:0: the stack has stages 1 to 4"),
    ("3:0:0:0", r"stage 3 Flatten\(\) gives 1024 features per image; --trace follows one value of a map stage: stage 1, 2"),
    ("1:4:0:0", r"gives maps of \(C, H, W\) = \(4, 16, 16\): its channel runs from 0 to 3, not 4"),
    ("2:0:0:16", "its column X runs from 0 to 15, not 16"),
])
def test_a_trace_outside_the_stage_is_one_line(text, message):
    p = _plan(["Conv2d(3, 4, 3, stride=2, padding=1)", "ReLU()", "Flatten()", "Linear(1024, 10)"])
    with pytest.raises(ConfigError, match=message):
        parse_trace(text, p)
