"""stack.py: a stack's shapes, costs and receptive fields before anything runs, held against PyTorch."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab import fields
from convlab.calls import parse_layer, parse_layers
from convlab.layers import ShapeError, build_layer
from convlab.stack import explain_stack, output_shapes, receptive_window

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


def _map_layer(draw, channels: int, size: tuple[int, int] = (8, 8)) -> str:
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "relu", "bn", "tanh", "gelu", "softmax", "flatten",
                                 "convtranspose", "upsample"]))
    if kind == "convtranspose":
        return _transposed_layer(draw, channels + (draw(st.integers(0, 12)) == 0))
    if kind == "upsample":
        return _upsample_layer(draw, size)
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


def _transposed_layer(draw, channels: int, *, dilation: int = 2) -> str:
    """A ConvTranspose2d convlab accepts (groups dividing both, output_padding below stride or dilation)."""
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    k, s, p, d = (draw(st.integers(lo, hi)) for lo, hi in ((1, 4), (1, 3), (0, 3), (1, dilation)))
    op = draw(st.integers(0, max(s, d) - 1))
    out = groups * draw(st.integers(1, 3))
    return f"ConvTranspose2d({channels}, {out}, {k}, stride={s}, padding={p}, output_padding={op}, groups={groups}, dilation={d}, bias={draw(st.booleans())})"


def _upsample_layer(draw, size: tuple[int, int]) -> str:
    """An Upsample that keeps maps small: scale factors up to 2, sizes up to 12."""
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    corners = f", align_corners={draw(st.booleans())}" if mode == "bilinear" and draw(st.booleans()) else ""
    if draw(st.booleans()):
        return f"Upsample(size=({draw(st.integers(1, 12))}, {draw(st.integers(1, 12))}), mode={mode!r}{corners})"
    factors = [0.5, 0.75, 1.0] + ([1.5, 2.0] if max(size) <= 16 else [])
    factor = draw(st.sampled_from(factors)) if draw(st.booleans()) else (draw(st.sampled_from(factors)), draw(st.sampled_from(factors)))
    recompute = ", recompute_scale_factor=True" if draw(st.integers(0, 4)) == 0 else ""
    return f"Upsample(scale_factor={factor}, mode={mode!r}{corners}{recompute})"


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
        text = _map_layer(draw, x.shape[1], tuple(x.shape[2:])) if x.dim() == 4 else _vector_layer(draw, x.shape[1])
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


# ----------------------------------------------------------------------------- receptive fields of every kind
# The field is held to autograd: the input pixels with a non-zero gradient for one output value.
# With positive weights and inputs every tap moves the output, so without max pooling (which
# passes one pixel on) and Softmax (whose gradients can cancel) the gradient spans exactly the
# window of pixels convlab says the output reads.


def _field_layer(draw, shape: tuple[int, ...], tight: bool) -> str:
    """One layer of any kind convlab builds that takes ``shape``; ``tight``: no max pooling or Softmax."""
    if len(shape) == 1:
        kinds = ["linear", "relu", "leakyrelu", "sigmoid", "tanh", "gelu", "elu", "dropout", "identity", "flatten"]
        kind = draw(st.sampled_from(kinds + ([] if tight else ["softmax"])))
        if kind == "linear":
            return f"Linear({shape[0]}, {draw(st.integers(1, 8))})"
        return {"relu": "ReLU()", "leakyrelu": "LeakyReLU(0.1)", "sigmoid": "Sigmoid()", "tanh": "Tanh()", "gelu": "GELU()",
                "elu": "ELU()", "dropout": "Dropout(0.5)", "identity": "Identity()", "flatten": "Flatten()",
                "softmax": "Softmax(dim=1)"}[kind]
    c, h, w = shape
    kinds = ["conv", "conv", "avgpool", "convtranspose", "convtranspose", "upsample", "upsample", "relu", "leakyrelu",
             "sigmoid", "tanh", "gelu", "elu", "bn", "dropout", "dropout2d", "identity", "flatten"]
    kind = draw(st.sampled_from(kinds + ([] if tight else ["maxpool", "softmax", "softmax"])))
    if kind in ("conv", "avgpool", "maxpool"):
        k, s = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        d = 1 if kind == "avgpool" else draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2 if kind != "conv" else 2))
        if kind == "conv":
            return f"Conv2d({c}, {draw(st.integers(1, 3))}, {k}, stride={s}, padding={p}, dilation={d})"
        ceil = draw(st.booleans())
        return f"AvgPool2d({k}, {s}, {p}, ceil_mode={ceil})" if kind == "avgpool" else f"MaxPool2d({k}, {s}, {p}, {d}, ceil_mode={ceil})"
    if kind == "convtranspose":
        return _transposed_layer(draw, c)
    if kind == "upsample":
        return _upsample_layer(draw, (h, w))
    if kind == "softmax":
        return f"Softmax(dim={draw(st.sampled_from([None, 1, 2, 3, -1, -2]))})"
    return {"relu": "ReLU()", "leakyrelu": "LeakyReLU(0.1)", "sigmoid": "Sigmoid()", "tanh": "Tanh()", "gelu": "GELU()",
            "elu": "ELU()", "bn": f"BatchNorm2d({c})", "dropout": "Dropout(0.5)", "dropout2d": "Dropout2d(0.5)",
            "identity": "Identity()", "flatten": "Flatten()"}[kind]


def _positive(model: nn.Module, seed: int) -> nn.Module:
    """Weights in [0.5, 1.5] over the taps summed, biases 0: every tap counts with the same sign, and
    values stay near 1, where no activation saturates into a zero gradient."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                taps = m.weight[0].numel() if not isinstance(m, nn.ConvTranspose2d) else m.weight.shape[0] * m.weight[0, 0].numel()
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) + 0.5) / taps)
                if m.bias is not None:
                    m.bias.zero_()
    return model.eval()


def _whole_map(stages, shape, table) -> tuple[range, range] | None:
    """The input pixels every position of the stack's last map (before Flatten) reads, end to end."""
    maps = [r.index for r in table.rows if len(r.output_shape) == 3]
    last = max(maps, default=0)
    if last == 0:
        return range(shape[1]), range(shape[2])
    h, w = table.rows[last - 1].output_shape[1:]
    rows = {r for i in range(h) for r in receptive_window(stages, shape, last, (i, 0), padding=False)[0]}
    cols = {c for j in range(w) for c in receptive_window(stages, shape, last, (0, j), padding=False)[1]}
    return (range(min(rows), max(rows) + 1), range(min(cols), max(cols) + 1)) if rows and cols else None


def _read(grad: torch.Tensor) -> tuple[range, range] | None:
    """The rows and columns from the first to the last pixel with a non-zero gradient (any channel).
    Bilinear's float32 arithmetic gives a neighbour a weight of ~1e-8 where the exact one is 0:
    a gradient 1e-5 of the largest or less is taken as none."""
    magnitude = grad[0].abs().sum(0)
    rows, cols = (magnitude > 1e-5 * magnitude.max()).nonzero(as_tuple=True)
    if len(rows) == 0:
        return None
    return range(int(rows.min()), int(rows.max()) + 1), range(int(cols.min()), int(cols.max()) + 1)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_kinds_receptive_field_holds_what_one_output_reads(data):
    """For one output value of every stage of a random stack of every kind: every input pixel it
    depends on lies in the window convlab predicts (padding left out, or counted as the table
    counts it), which the table's field bounds; where windows are exact the gradient fills it."""
    draw = data.draw
    tight = draw(st.booleans())
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 14)), draw(st.integers(4, 14))
    texts, shape = [], (c, h, w)
    for _ in range(draw(st.integers(1, 5))):
        text = _field_layer(draw, shape, tight)
        try:
            shapes = output_shapes(parse_layers([*texts, text]), (c, h, w))
        except ShapeError:
            continue
        texts.append(text)
        shape = shapes[-1]
    assume(texts)
    stages = parse_layers(texts)
    table = explain_stack(stages, (c, h, w))
    model = _positive(nn.Sequential(*(build_layer(s, c) for s in stages)), draw(st.integers(0, 99)))
    x = (torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(1)) + 0.5).requires_grad_()
    y, outputs = x, []
    for m in model:
        y = m(y)
        outputs.append(y)
        # A max pool window wholly in padding (dilation straddling a 1-pixel axis) gives -inf with an index
        # past the input, and PyTorch's backward writes there: heap corruption. Not a field to test.
        assume(not isinstance(m, nn.MaxPool2d) or bool(torch.isfinite(y).all()))
    for index, (row, out) in enumerate(zip(table.rows, outputs), 1):
        if out.dim() == 4:
            position = (draw(st.integers(0, out.shape[2] - 1)), draw(st.integers(0, out.shape[3] - 1)))
            value = out[0, draw(st.integers(0, out.shape[1] - 1)), position[0], position[1]]
        else:
            position = draw(st.integers(0, out.shape[1] - 1))
            value = out[0, position]
        (grad,) = torch.autograd.grad(value, x, retain_graph=True)
        read = _read(grad)
        window = receptive_window(stages, (c, h, w), index, position, padding=False)
        counted = receptive_window(stages, (c, h, w), index, position)
        if window is None:  # every value of its input: every pixel that reaches the last map
            assert row.field is None and counted is None
            if tight:
                assert read == _whole_map(stages, (c, h, w), table), texts[:index]
            continue
        assert all(len(r) <= f and set(r) <= set(q) for r, f, q in zip(window, row.field, counted)), texts[:index]
        if row.exact:
            assert tuple(map(len, counted)) == row.field, texts[:index]
        if read is not None:
            assert all(set(r) <= set(q) for r, q in zip(read, window)), (texts[:index], read, window)
        if tight:  # an output that reads only padding depends on no input pixel
            assert read == (None if not all(window) else window), (texts[:index], read, window)


def test_the_field_bound_for_large_outputs_holds_every_window(monkeypatch):
    """Past COUNTED_OUTPUTS the field after going back up is bounded from the strides: never below
    what the outputs read, worked out one by one."""
    layers = ["Conv2d(3, 4, 3)", "MaxPool2d(2)", "ConvTranspose2d(4, 4, 3, stride=2)", "Upsample(scale_factor=1.5)",
              "Conv2d(4, 2, 3, padding=1)", "Upsample(scale_factor=2, mode='bilinear')", "AvgPool2d(2)", "Conv2d(2, 2, 3)"]
    stages = parse_layers(layers)
    counted = explain_stack(stages, (3, 21, 17))
    monkeypatch.setattr(fields, "COUNTED_OUTPUTS", 0)
    bounded = explain_stack(stages, (3, 21, 17))
    for a, b in zip(counted.rows, bounded.rows):
        assert all(x <= y for x, y in zip(a.field, b.field)) and a.jump == b.jump
    assert [r.field for r in counted.rows] != [r.field for r in bounded.rows]  # the count is tighter


@pytest.mark.parametrize(
    "layers, field, jump",
    [
        # issue 25, row 10: layers that mix positions read the whole extent along what they mix
        (["Softmax(dim=2)"], (32, 1), (0, 1)),
        (["Softmax(dim=-1)"], (1, 32), (1, 0)),
        (["Softmax(dim=1)"], (1, 1), (1, 1)),
        (["Conv2d(3, 6, 3)", "Softmax(dim=3)"], (3, 32), (1, 0)),
        (["Conv2d(3, 6, 3)", "Softmax(dim=3)", "Conv2d(6, 6, 3)"], (5, 32), (1, 0)),
        (["Flatten()", "Softmax(dim=1)"], None, None),
        (["Conv2d(3, 6, 3, padding=1)", "Softmax(dim=2)"], (34, 3), (0, 1)),
        # going back up
        (["ConvTranspose2d(3, 3, 3, stride=2)"], (2, 2), (Fraction(1, 2), Fraction(1, 2))),
        (["ConvTranspose2d(3, 3, 4, stride=2, padding=1)"], (2, 2), (Fraction(1, 2), Fraction(1, 2))),
        (["ConvTranspose2d(3, 3, 2, stride=2)"], (1, 1), (Fraction(1, 2), Fraction(1, 2))),
        (["Conv2d(3, 3, 3, stride=2)", "ConvTranspose2d(3, 3, 3, stride=2)"], (5, 5), (1, 1)),
        (["Upsample(scale_factor=2)"], (1, 1), (Fraction(1, 2), Fraction(1, 2))),
        (["Upsample(scale_factor=2, mode='bilinear')"], (2, 2), (Fraction(1, 2), Fraction(1, 2))),
        (["Upsample(scale_factor=(1.5, 0.5))"], (1, 1), (Fraction(2, 3), 2)),
        (["Upsample(size=(8, 64))"], (1, 1), (4, Fraction(1, 2))),
        (["Upsample(size=(8, 64), mode='bilinear')"], (2, 2), (4, Fraction(1, 2))),
        (["Upsample(scale_factor=2)", "AvgPool2d(2)"], (1, 1), (1, 1)),
    ],
)
def test_fields_of_layers_that_mix_or_go_back_up(layers, field, jump):
    stages = parse_layers(layers)
    last = explain_stack(stages, (3, 32, 32)).rows[-1]
    assert (last.field, last.jump) == (field, jump)
    model = _positive(nn.Sequential(*(build_layer(s, 3) for s in stages)), 0)
    x = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
    y = model(x)
    widest = [0, 0]
    # each axis on its own: a diagonal meets every row and every column of the output
    for i in range(max(y.shape[2:])) if y.dim() == 4 else [0]:
        value = y[0, 0, i % y.shape[2], i % y.shape[3]] if y.dim() == 4 else y[0, 0]
        rows, cols = _read(torch.autograd.grad(value, x, retain_graph=True)[0])
        widest = [max(widest[0], len(rows)), max(widest[1], len(cols))]
    # the most any output reads is the field, less any padding (all: the whole image)
    assert tuple(widest) == tuple(min(f, 32) for f in field or (32, 32))


def test_the_table_says_where_outputs_differ_and_shows_fractions():
    text = explain_stack(parse_layers(["Conv2d(3, 8, 3, stride=2)", "ConvTranspose2d(8, 3, 3, stride=2)", "Upsample(scale_factor=2)"]),
                         (3, 32, 32)).text()
    assert "(3, 31, 31)  " in text and "<=5  " in text and " 1/2\n" in text
    assert "Softmax" in explain_stack(parse_layers(["Softmax(dim=2)"]), (3, 32, 32)).text().splitlines()[2]
    assert "32x1   0x1" in explain_stack(parse_layers(["Softmax(dim=2)"]), (3, 32, 32)).text()
