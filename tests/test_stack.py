"""stack.py: a stack's shapes, costs and receptive fields before anything runs, held against PyTorch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab.calls import parse_layer, parse_layers
from convlab.layers import ShapeError, build_layer
from convlab.stack import explain_stack, output_shapes

LESSON_MODEL = [
    "Conv2d(3, 32, 5, padding=2)", "MaxPool2d(2)", "Conv2d(32, 32, 5, padding=2)", "MaxPool2d(2)",
    "Conv2d(32, 64, 5, padding=2)", "MaxPool2d(2)", "Flatten()", "Linear(1024, 64)", "Linear(64, 10)",
]


def test_the_lesson_models_table():
    table = explain_stack(parse_layers(LESSON_MODEL), (3, 32, 32))
    rows = [(r.tag, r.output_shape, r.parameters, r.multiply_adds, r.field, r.jump) for r in table.rows]
    assert rows == [
        ("01-conv2d", (32, 32, 32), 2432, 32 * 32 * 32 * 75, (5, 5), (1, 1)),
        ("02-maxpool2d", (32, 16, 16), 0, 0, (6, 6), (2, 2)),
        ("03-conv2d", (32, 16, 16), 25632, 32 * 16 * 16 * 800, (14, 14), (2, 2)),
        ("04-maxpool2d", (32, 8, 8), 0, 0, (16, 16), (4, 4)),
        ("05-conv2d", (64, 8, 8), 51264, 64 * 8 * 8 * 800, (32, 32), (4, 4)),
        ("06-maxpool2d", (64, 4, 4), 0, 0, (36, 36), (8, 8)),
        ("07-flatten", (1024,), 0, 0, (36, 36), None),
        ("08-linear", (64,), 65600, 65536, None, None),
        ("09-linear", (10,), 650, 640, None, None),
    ]
    assert table.parameters == 145578 == sum(p.numel() for p in _sequential(LESSON_MODEL).parameters())
    text = table.text()
    assert "    8  Linear(1024, 64)" in text and "all 32x32" in text and "total" in text and "145,578" in text


def _sequential(texts):
    return nn.Sequential(*(build_layer(parse_layer(t), 3) for t in texts)).eval()


@pytest.mark.parametrize(
    "layers, message",
    [
        (LESSON_MODEL[:7] + ["Linear(512, 64)", "Linear(64, 10)"],
         "stage 8 Linear(512, 64): Flatten gives 1024 = 64x4x4 features per image; use Linear(1024, 64)"),
        (LESSON_MODEL[:6] + ["Linear(1024, 64)"],
         "stage 7 Linear(1024, 64): Linear takes feature vectors, but its input is a (64, 4, 4) map (C, H, W) per image; "
         "put Flatten() before it (it gives 1024 = 64x4x4 features)"),
        (["Flatten()", "Linear(3072, 64)", "Linear(32, 10)"],
         "stage 3 Linear(32, 10): stage 2 Linear(3072, 64) gives 64 features per image; use Linear(64, 10)"),
        (["Conv2d(1, 6, 5)"], "stage 1 Conv2d(1, 6, 5): the images have 3 channels; use Conv2d(3, 6, 5)"),
        (["Conv2d(3, 16, 3)", "ReLU()", "Conv2d(8, 4, 3)"],
         "stage 3 Conv2d(8, 4, 3): stage 2 ReLU() gives 16 channels: (16, 30, 30); use Conv2d(16, 4, 3)"),
        (["Conv2d(3, 16, 3)", "BatchNorm2d(3)"], "stage 2 BatchNorm2d(3): stage 1 Conv2d(3, 16, 3) gives 16 channels"),
        (["Flatten()", "BatchNorm2d(3)"], "stage 2 BatchNorm2d(3): BatchNorm2d works on (C, H, W) maps, but its input is 3072 features"),
        (["Flatten()", "Conv2d(3, 6, 3)"], "put it before Flatten()"),
        (["Flatten()", "Dropout2d()"], "on features use Dropout()"),
        (["Conv2d(3, 6, 5)", "MaxPool2d(2)", "Conv2d(6, 6, 5)", "MaxPool2d(2)", "Conv2d(6, 6, 7)"],
         "stage 5 Conv2d(6, 6, 7): kernel 7 does not fit the input's height: 5 + 2*0 padding = 5 < 7"),
        (["MaxPool2d(2)"] * 6, "stage 6 MaxPool2d(2): kernel 2 does not fit the input's height: 1 + 2*0 padding = 1 < 2; "
                               "use a smaller kernel_size or dilation, or more padding"),
        (["Conv2d(3, 6, 3, padding=40, padding_mode='reflect')"], "use less padding or padding_mode='zeros'"),
        (["Softmax(dim=0)"], "stage 1 Softmax(dim=0): Softmax(dim=0) would normalise across the images of a batch"),
        (["Softmax(dim=4)"], "Softmax dim=4: a batch of a (3, 32, 32) map (C, H, W) has dims 0..3"),
        (["Flatten(0)"], "would flatten the whole batch"),
        (["Flatten(2)"], "gives (3, 1024) per image, neither a (C, H, W) map nor a feature vector"),
        (["Conv2d(3, 6, 3, groups=3)"], None),
        (["Conv2d(3, 4, 3, groups=2)"], "stage 1 Conv2d(3, 4, 3, groups=2): groups=2 must divide in_channels=3"),
    ],
)
def test_a_stack_that_cannot_run_names_the_stage(layers, message):
    stages = parse_layers(layers)
    if message is None:
        output_shapes(stages, (3, 32, 32))
        return
    with pytest.raises(ShapeError) as info:
        output_shapes(stages, (3, 32, 32))
    assert message in str(info.value)


# ----------------------------------------------------------------------------- against PyTorch


def _map_layer(draw, channels: int) -> str:
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "relu", "bn", "tanh", "gelu", "softmax", "flatten"]))
    if kind == "conv":
        wrong = draw(st.integers(0, 12)) == 0  # now and then an in_channels that does not fit
        k, s, p, d = (draw(st.integers(lo, hi)) for lo, hi in ((1, 5), (1, 3), (0, 2), (1, 2)))
        bias = draw(st.booleans())
        return f"Conv2d({channels + wrong}, {draw(st.integers(1, 5))}, {k}, stride={s}, padding={p}, dilation={d}, bias={bias})"
    if kind in ("maxpool", "avgpool"):
        k = draw(st.integers(1, 4))
        s = draw(st.sampled_from([None, 1, 2, 3]))
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        if kind == "avgpool":
            return f"AvgPool2d({k}, stride={s}, padding={p}, ceil_mode={ceil})"
        return f"MaxPool2d({k}, stride={s}, padding={p}, dilation={draw(st.integers(1, 2))}, ceil_mode={ceil})"
    return {"relu": "ReLU()", "bn": f"BatchNorm2d({channels})", "tanh": "Tanh()", "gelu": "GELU()",
            "softmax": "Softmax(dim=1)", "flatten": "Flatten()"}[kind]


def _vector_layer(draw, features: int) -> str:
    kind = draw(st.sampled_from(["linear", "linear", "relu", "softmax", "dropout", "sigmoid"]))
    if kind == "linear":
        wrong = draw(st.integers(0, 12)) == 0
        return f"Linear({features + wrong}, {draw(st.integers(1, 12))}, bias={draw(st.booleans())})"
    return {"relu": "ReLU()", "softmax": "Softmax(dim=-1)", "dropout": "Dropout(0.3)", "sigmoid": "Sigmoid()"}[kind]


def _stage_flops(modules: list[nn.Module], x: torch.Tensor) -> list[int]:
    model = nn.Sequential(*modules)
    with FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()
    return [sum(counts.get(f"Sequential.{i}", {}).values()) for i in range(len(modules))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_stacks_agree_with_pytorch(data):
    """Shapes, parameters and multiply-adds (flop_counter's flops / 2) of every stage, and the
    first stage PyTorch refuses is the one the table names."""
    draw = data.draw
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(3, 20)), draw(st.integers(3, 20))
    x = torch.zeros(1, c, h, w)
    texts, modules, shapes, refused = [], [], [], None
    for index in range(1, draw(st.integers(1, 6)) + 1):
        text = _map_layer(draw, x.shape[1]) if x.dim() == 4 else _vector_layer(draw, x.shape[1])
        texts.append(text)
        try:
            module = build_layer(parse_layer(text), x.shape[1]).eval()
            with torch.no_grad():
                x = module(x)
        except (RuntimeError, ValueError):
            refused = index
            break
        if x.numel() == 0:
            refused = index
            break
        modules.append(module)
        shapes.append(tuple(x.shape[1:]))
    stages = parse_layers(texts)
    if refused is not None:
        with pytest.raises(ShapeError, match=f"^stage {refused} "):
            explain_stack(stages, (c, h, w))
        return
    table = explain_stack(stages, (c, h, w))
    assert [r.output_shape for r in table.rows] == shapes
    assert [r.parameters for r in table.rows] == [sum(p.numel() for p in m.parameters()) for m in modules]
    assert [2 * r.multiply_adds for r in table.rows] == _stage_flops(modules, torch.zeros(1, c, h, w))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_the_receptive_field_is_what_one_output_reads(data):
    """With all-positive weights every tap counts: the input pixels that move output (0, 0)
    span the receptive field, and output (0, 1)'s start one jump to the right."""
    draw = data.draw
    texts, channels = [], 1
    for _ in range(draw(st.integers(1, 4))):
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if draw(st.booleans()):
            out = draw(st.integers(1, 3))
            texts.append(f"Conv2d({channels}, {out}, ({k}, {draw(st.integers(1, 4))}), stride={s}, dilation={d})")
            channels = out
        else:
            texts.append(f"AvgPool2d({k}, stride={s})")
        if draw(st.booleans()):
            texts.append("ReLU()")
    stages = parse_layers(texts)
    try:
        table = explain_stack(stages, (1, 64, 64))
    except ShapeError:
        return
    last = table.rows[-1]
    model = nn.Sequential(*(build_layer(s, 1) for s in stages))
    for m in model:
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.zeros_(m.bias)
    x = torch.ones(1, 1, 64, 64, requires_grad=True)
    y = model(x)
    for col in (0, 1) if y.shape[-1] > 1 else (0,):
        (grad,) = torch.autograd.grad(y[0, 0, 0, col], x, retain_graph=True)
        rows, cols = grad[0, 0].nonzero(as_tuple=True)
        assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == last.field
        assert int(cols.min()) == col * last.jump[1] and int(rows.min()) == 0
