"""modules.py: layers written as PyTorch code, parsed without running anything."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convlab.calls import parse_layer, parse_layers
from convlab.errors import ConfigError
from convlab.fields import FIELDS
from convlab.geometry import pool_stride
from convlab.layers import FACTORIES, SHAPE_RULES, build_layer
from convlab.modules import KIND_SIGNATURES, REQUIRED, SIGNATURES, LayerError, call_text, stage_of, stage_tag
from convlab.stack import COSTS
from convlab.stages import STAGE_KINDS, STAGE_VALIDATORS, PoolConfig
from convlab.views import VIEWS


def test_every_registry_covers_every_stage_kind():
    kinds = set(STAGE_KINDS)
    assert set(STAGE_VALIDATORS) == kinds and set(FACTORIES) == kinds and set(SHAPE_RULES) == kinds
    assert set(COSTS) == kinds and set(FIELDS) == kinds and set(KIND_SIGNATURES) == kinds
    assert {s.build(_defaults(s)).kind for s in SIGNATURES.values() if s.name not in ("Conv2d", "Linear", "BatchNorm2d")} | {
        "conv", "linear", "batchnorm2d"} == kinds
    assert all(set(v.kinds) <= kinds for v in VIEWS.values())


def _defaults(sig):
    return {p.name: p.default for p in sig.params if p.default is not REQUIRED} | {
        p.name: 3 for p in sig.params if p.default is REQUIRED and p.kind == "int"} | {
        p.name: (2, 2) for p in sig.params if p.default is REQUIRED and p.kind == "pair"}


@pytest.mark.parametrize("name", sorted(n for n in SIGNATURES if n != "Identity"))
def test_signatures_are_pytorchs_own(name):
    """Names, order and defaults as PyTorch declares them (a pair default is PyTorch's int, twice)."""
    real = [p for p in inspect.signature(getattr(nn, name)).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    ours = SIGNATURES[name].params
    assert [p.name for p in real] == [p.name for p in ours]
    for r, o in zip(real, ours):
        if r.default is inspect.Parameter.empty:
            assert o.default is REQUIRED, r.name
        elif o.kind in ("pair", "padding") and isinstance(r.default, int):
            assert o.default == (r.default, r.default), r.name
        else:
            assert o.default == r.default, r.name


CASES = [
    ("Conv2d(3, 32, 5, padding=2)", nn.Conv2d(3, 32, 5, padding=2)),
    ("nn.Conv2d(3, 6, (3, 5), stride=2, dilation=(1, 2), bias=False, padding_mode='reflect', padding=1)",
     nn.Conv2d(3, 6, (3, 5), stride=2, dilation=(1, 2), bias=False, padding_mode="reflect", padding=1)),
    ("torch.nn.Conv2d(in_channels=3, out_channels=6, kernel_size=3, padding='same')", nn.Conv2d(3, 6, 3, padding="same")),
    ("Conv2d(3, 6, 3, groups=3)", nn.Conv2d(3, 6, 3, groups=3)),
    ("MaxPool2d(2)", nn.MaxPool2d(2)),
    ("MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)", nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)),
    ("AvgPool2d(3, stride=(1, 2), ceil_mode=True)", nn.AvgPool2d(3, stride=(1, 2), ceil_mode=True)),
    ("ReLU()", nn.ReLU()),
    ("LeakyReLU(0.2)", nn.LeakyReLU(0.2)),
    ("Sigmoid()", nn.Sigmoid()),
    ("Tanh()", nn.Tanh()),
    ("GELU(approximate='tanh')", nn.GELU(approximate="tanh")),
    ("ELU(alpha=0.5)", nn.ELU(alpha=0.5)),
    ("BatchNorm2d(3, eps=0.001, momentum=None, affine=False)", nn.BatchNorm2d(3, eps=0.001, momentum=None, affine=False)),
    ("Dropout(p=0.25)", nn.Dropout(p=0.25)),
    ("Dropout2d(0.1)", nn.Dropout2d(0.1)),
    ("Flatten()", nn.Flatten()),
    ("Flatten(1, -1)", nn.Flatten(1, -1)),
    ("Linear(12, 4, bias=False)", nn.Linear(12, 4, bias=False)),
    ("Softmax(dim=1)", nn.Softmax(dim=1)),
    ("Identity(54, unused_argument1=0.1)", nn.Identity(54, unused_argument1=0.1)),
    ("ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1)", nn.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1)),
    ("nn.ConvTranspose2d(3, 4, (2, 3), (2, 1), (0, 1), (1, 0), 1, False, (1, 2))",
     nn.ConvTranspose2d(3, 4, (2, 3), (2, 1), (0, 1), (1, 0), 1, False, (1, 2))),
    ("ConvTranspose2d(3, 6, 3, groups=3, dilation=2, padding_mode='zeros')", nn.ConvTranspose2d(3, 6, 3, groups=3, dilation=2)),
    ("Upsample(scale_factor=2)", nn.Upsample(scale_factor=2)),
    ("Upsample(None, (2, 1.5), 'bilinear', True)", nn.Upsample(None, (2, 1.5), "bilinear", True)),
    ("Upsample(size=(20, 9), mode='bilinear')", nn.Upsample(size=(20, 9), mode="bilinear")),
    ("Upsample(size=7)", nn.Upsample(size=7)),
    ("Upsample(scale_factor=1.5, recompute_scale_factor=True)", nn.Upsample(scale_factor=1.5, recompute_scale_factor=True)),
]


@pytest.mark.parametrize("text, module", CASES, ids=[c[0] for c in CASES])
def test_a_layer_builds_the_module_pytorch_builds(text, module):
    cfg = parse_layer(text)
    built = build_layer(cfg, 3)
    assert type(built) is type(module)
    if not isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):  # a pool keeps its sizes as typed: 2 or (2, 2)
        assert repr(built) == repr(module)
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == {k: tuple(v.shape) for k, v in module.state_dict().items()}
    built.load_state_dict(module.state_dict())
    x = torch.randn(2, 12) if isinstance(module, nn.Linear) else torch.randn(2, 3, 12, 12)
    assert torch.equal(built.eval()(x), module.eval()(x))
    assert parse_layer(call_text(cfg)) == cfg  # written back, it reads as the same layer


@pytest.mark.parametrize("text, module", CASES, ids=[c[0] for c in CASES])
def test_a_pytorch_module_reads_back_as_the_stage_that_builds_it(text, module):
    """modules.stage_of (the notebook's model=, read by the stack's rules): the module PyTorch built from
    the same call gives the stage parsed from it (inplace, never used, aside; a pool's stride as the module holds it)."""
    cfg = parse_layer(text)
    expected = dataclasses.replace(cfg, inplace=False) if hasattr(cfg, "inplace") else cfg
    if isinstance(cfg, PoolConfig):
        expected = dataclasses.replace(cfg, stride=pool_stride(cfg))
    assert stage_of(module) == expected


def test_what_convlab_does_not_build_reads_back_as_no_stage():
    class MyConv(nn.Conv2d):
        pass

    for module in (nn.SiLU(), nn.Upsample(scale_factor=2, mode="bicubic"), MyConv(3, 4, 3), nn.Sequential(nn.ReLU()),
                   nn.LazyConv2d(4, 3)):
        assert stage_of(module) is None, module
    # return_indices is refused in a stack (its output is a tuple); read back, the window is the same one.
    assert stage_of(nn.MaxPool2d(2, return_indices=True)) == parse_layer("MaxPool2d(2, stride=2)")


@pytest.mark.parametrize(
    "text",
    ["Conv2d(3, 32, 5, padding=2)", "MaxPool2d(2)", "Flatten()", "Linear(1024, 64)", "ReLU()", "Sigmoid()",
     "AvgPool2d(3, stride=2)", "LeakyReLU(negative_slope=0.2)", "BatchNorm2d(32)", "Softmax(dim=1)",
     "ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)", "Upsample(scale_factor=2.0)",
     "Upsample(size=(16, 8), mode='bilinear', align_corners=False)", "Upsample(scale_factor=(2.0, 1.5))"],
)
def test_a_plain_call_is_written_back_as_typed(text):
    assert call_text(parse_layer(text)) == text


def test_inplace_is_kept_in_the_config_but_never_used():
    cfg = parse_layer("ReLU(inplace=True)")
    assert cfg.inplace is True and call_text(cfg) == "ReLU(inplace=True)"
    assert build_layer(cfg, 3).inplace is False  # the stage's input is still shown after it ran


def test_softmax_without_dim_is_pytorchs_implicit_dim_1():
    x = torch.randn(2, 5)
    with pytest.warns(UserWarning):
        expected = nn.Softmax()(x)
    assert torch.equal(build_layer(parse_layer("Softmax()"), 1)(x), expected)


def test_pasting_from_a_sequential_keeps_its_trailing_comma():
    assert parse_layer("nn.MaxPool2d(2),") == parse_layer("MaxPool2d(2)")


@pytest.mark.parametrize(
    "text, message",
    [
        ("Relu()", "unknown layer 'Relu'; did you mean ReLU?"),
        ("Conv2D(3, 6, 3)", "did you mean Conv2d?"),
        ("Maxpool2d(2)", "did you mean MaxPool2d?"),
        ("Frobnicate()", "unknown layer 'Frobnicate'; convlab builds: Conv2d, MaxPool2d"),
        ("ReLU", "ReLU names the class; call it to make a layer: ReLU()"),
        ("Conv2d(3, 6)", "Conv2d needs kernel_size (its required arguments: in_channels, out_channels, kernel_size)"),
        ("Conv2d(3, 6, 3, kernal_size=3)", "Conv2d has no argument 'kernal_size'; did you mean 'kernel_size'?"),
        ("Conv2d(3, 6, 3, kernel_size=3)", "Conv2d got 'kernel_size' twice"),
        ("Conv2d(3, 6, 3, 1, 0, 1, 1, True, 'zeros', None, None, 5)", "Conv2d takes at most 11 positional argument(s)"),
        ("Conv2d(3, 6, 2.5)", "Conv2d kernel_size: expected an integer or a pair (h, w), got 2.5"),
        ("Conv2d(3, 6, (1, 2, 3))", "expected an integer or a pair (h, w), got (1, 2, 3)"),
        ("Conv2d(3, 6, 3, padding='SAME')", "or 'same'/'valid', got 'SAME'"),
        ("Conv2d(3, 6, 3, bias=1)", "Conv2d bias: expected True or False, got 1"),
        ("Conv2d(3, 6, 3, padding_mode='wrap')", "expected one of 'zeros', 'reflect', 'replicate', 'circular'"),
        ("Conv2d(3, 6, 3, device='cuda')", "convlab puts every layer on --device"),
        ("Linear(3, 4, dtype=None, device=None)", None),
        ("MaxPool2d(2, return_indices=True)", "which no next stage takes"),
        ("AvgPool2d(2, count_include_pad=False)", "leave count_include_pad out"),
        ("AvgPool2d(2, divisor_override=3)", "leave divisor_override out"),
        ("Conv2d(99999999999, 6, 3)", "far too large; PyTorch takes at most 2147483647"),
        ("Conv2d(3, 6, 0)", "kernel_size must be at least 1"),
        ("Conv2d(3, 6, 3, groups=4)", "groups=4 must divide out_channels=6"),
        ("Linear(0, 4)", "in_features must be at least 1"),
        ("Dropout(1.5)", "dropout probability p must be between 0 and 1, got 1.5"),
        ("LeakyReLU(1e999)", "expected a finite number, got inf"),
        ("BatchNorm2d(3, eps=0)", "eps must be above 0"),
        ("GELU(approximate='fast')", "expected one of 'none', 'tanh'"),
        ("Sequential(ReLU(), Tanh())", "give each layer of the Sequential as its own argument"),
        ("Conv2d(3, 32, 5), ReLU()", '2 layers separated by commas in one argument; give each layer as its own argument: '
                                    '"Conv2d(3, 32, 5)" "ReLU()"'),
        ('nn.Conv2d(3, 8, 3, padding="same"), nn.ReLU(), Flatten(),',
         "3 layers separated by commas in one argument; give each layer as its own argument: "
         "'nn.Conv2d(3, 8, 3, padding=\"same\")' \"nn.ReLU()\" \"Flatten()\""),
        ("Conv2d(*sizes)", "*args and **kwargs are not allowed"),
        ("Conv2d(3, 6, **kw)", "*args and **kwargs are not allowed"),
        ("x = ReLU()", "not a layer call (invalid syntax)"),
        ("ReLU(); Tanh()", "not a layer call"),
        ("", "not a layer call"),
        ("3", "'3' is not a layer"),
        ("ConvTranspose2d(3, 6, 3, stride=2, output_padding=2)", "output_padding 2 on H must be smaller than the stride (2) or the dilation (1)"),
        ("ConvTranspose2d(3, 6, 3, padding_mode='reflect')", "PyTorch's ConvTranspose2d pads with zeros only"),
        ("ConvTranspose2d(3, 6, 3, padding='same')", "ConvTranspose2d padding: expected an integer or a pair (h, w), got 'same'"),
        ("ConvTranspose2d(3, 6, 3, output_padding=-1)", "output_padding must be 0 or more"),
        ("ConvTranspose2d(3, 4, 3, groups=3)", "groups=3 must divide out_channels=4"),
        ("ConvTranspose2d(4, 3, 3, groups=3)", "groups=3 must divide in_channels=4"),
        ("Upsample()", "Upsample takes size or scale_factor, one of them; neither given"),
        ("Upsample(4, 2)", "one of them; both given"),
        ("Upsample(scale_factor=0)", "Upsample takes size or scale_factor, one of them; neither given"),
        ("Upsample(scale_factor=-2)", "scale_factor must be above 0, got -2.0"),
        ("Upsample(scale_factor=(2, -1))", "scale_factor must be above 0, got (2.0, -1.0)"),
        ("Upsample(size=0)", "size must be at least 1"),
        ("Upsample(scale_factor=2, mode='bicubic')", "Upsample mode: expected one of 'nearest', 'bilinear', got 'bicubic'"),
        ("Upsample(scale_factor=2, align_corners=False)", "align_corners is for mode='bilinear' only"),
        ("Upsample(size=4, recompute_scale_factor=True)", "recompute_scale_factor=True needs scale_factor"),
        ("Upsample(scale_factor='2')", "expected a finite number or a pair (h, w) of them, got '2'"),
        ("Upsample(size=(2, 3, 4))", "expected an integer or a pair (h, w)"),
    ],
)
def test_bad_layers_say_what_is_wrong(text, message):
    if message is None:
        parse_layer(text)
        return
    with pytest.raises(ConfigError) as info:
        parse_layer(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# Strings that would do something if evaluated: each is refused before anything runs.
INJECTIONS = [
    "__import__('os').system('touch pwned')",
    "eval(\"__import__('os').system('touch pwned')\")",
    "exec('import os')",
    "open('pwned', 'w')",
    "Conv2d(3, 6, __import__('os').system('touch pwned'))",
    "Conv2d(3, 6, 3, padding=open('pwned', 'w'))",
    "(lambda: __import__('os').system('touch pwned'))()",
    "lambda: 0",
    "os.system('touch pwned')",
    "torch.load('x.pt')",
    "nn.Module.__subclasses__()",
    "ReLU().__class__.__base__",
    "Conv2d(3, 6, [c for c in ()])",
    "Conv2d(3, 6, 3, stride=2**64)",
    "Conv2d(3, 6, 3).forward",
    "getattr(nn, 'ReLU')()",
    "ReLU(inplace=True if True else False)",
    "Linear(x, y)",
    "Conv2d(3, 6, f'{3}')",
    "Conv2d(3, 6, 3)\nimport os",
    "\x00",
    "(" * 500 + ")" * 500,
    "ReLU(" + "1," * 2000 + ")",
]


@pytest.mark.parametrize("text", INJECTIONS, ids=range(len(INJECTIONS)))
def test_anything_but_a_literal_call_is_refused(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LayerError) as info:
        parse_layer(text)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_names_attributes_and_calls_say_what_they_are():
    cases = {
        "Conv2d(3, x, 3)": "the name 'x' is not allowed in a layer's arguments; write literal values only",
        "Conv2d(3, 6, 3, padding=foo())": "the call 'foo()' is not allowed",
        "Conv2d(3, 6, 3, stride=math.pi)": "the attribute 'math.pi' is not allowed",
        "Conv2d(3, 6, 3, stride=2*2)": "the expression '2 * 2' (write the value it gives)",
        "__import__('os').system('ls')": "only a torch.nn class can be called",
        "lambda: 0": "a lambda is not a layer",
    }
    for text, message in cases.items():
        with pytest.raises(LayerError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            parse_layer(text)


def test_a_stack_error_names_the_stage():
    with pytest.raises(LayerError, match=r"^stage 2 Relu\(\): unknown layer 'Relu'; did you mean ReLU\?"):
        parse_layers(["Conv2d(3, 6, 3)", "Relu()"])
    with pytest.raises(LayerError, match="a stack of 101 layers is too long"):
        parse_layers(["ReLU()"] * 101)


def test_stage_tags_sort_in_stage_order():
    stages = parse_layers(["Conv2d(3, 6, 3)", "ReLU()", "MaxPool2d(2)"])
    assert [stage_tag(i, s, 3) for i, s in enumerate(stages, 1)] == ["01-conv2d", "02-relu", "03-maxpool2d"]
    assert stage_tag(7, stages[0], 100) == "007-conv2d"
    tags = [stage_tag(i, stages[1], 12) for i in range(1, 13)]
    assert sorted(tags) == tags


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(nn\.)?[A-Z][a-z]+[0-9]?d?\(([0-9, =a-z'()]|True|None){0,30}\)", fullmatch=True))
def test_any_text_is_a_layer_or_one_line_error(text):
    try:
        parse_layer(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
