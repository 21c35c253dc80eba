"""convlab.explain against real PyTorch modules: shapes, rejections, reprs, counts, coverage."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab.config import resolve
from convlab.errors import ConfigError
from convlab.explain.explanation import spans
from convlab.explain.transposed import convtranspose_input, explain_convtranspose
from convlab.explain.unpooling import explain_unpool, pooled_size, unpool_output_shape
from convlab.explain.windows import explain
from convlab.geometry import layer_call
from convlab.layers import ShapeError, UnreadWindow
from convlab.stages import ConvConfig, ConvTranspose2dConfig, PoolConfig
from convlab.upsampling import transposed_axes

from conftest import assert_user_error

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small = st.integers(0, 5)
pairs = st.tuples(small, small)


def torch_verdict(build, x):
    """The module's output shape, or None where PyTorch refuses (at construction or on the call)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = build()
            with torch.no_grad():
                return module, module(x)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None, None


UNREAD = "a window of padding only"


def convlab_verdict(command, layer, shape, **kwargs):
    """What convlab says of the same raw values: the explanation, or None for a one-line error
    (UNREAD where the error is a max pool window that reads no input value)."""
    try:
        exp = resolve(command, {command: layer})
        return exp.layer, explain(exp.layer, shape, **kwargs)
    except UnreadWindow:
        return None, UNREAD
    except ConfigError:
        return None, None


def expected_read_map(never_read, h, w):
    """Axes are independent: position (r, c) is read iff row r and column c both are."""
    rows = torch.tensor([r not in never_read[0] for r in range(h)])
    cols = torch.tensor([c not in never_read[1] for c in range(w)])
    return rows[:, None] & cols[None, :]


@PROPERTY
@given(
    kernel=pairs, stride=pairs, dilation=pairs,
    padding=st.one_of(st.tuples(st.integers(-1, 4), st.integers(-1, 4)), st.sampled_from(["same", "valid"])),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    groups=st.integers(0, 3), in_channels=st.integers(1, 4), out_channels=st.integers(1, 6), bias=st.booleans(),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
)
def test_conv_explanation_agrees_with_pytorch(kernel, stride, dilation, padding, padding_mode, groups, in_channels,
                                              out_channels, bias, size):
    layer = dict(kernel_size=list(kernel), stride=list(stride), dilation=list(dilation),
                 padding=padding if isinstance(padding, str) else list(padding), padding_mode=padding_mode,
                 groups=groups, in_channels=in_channels, out_channels=out_channels, bias=bias)
    shape = (in_channels, *size)
    module, y = torch_verdict(
        lambda: nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups, bias, padding_mode),
        torch.zeros(1, *shape),
    )
    cfg, ex = convlab_verdict("conv", layer, shape)
    if padding_mode != "zeros" and not isinstance(padding, str) and min(padding) < 0:
        # The one deliberate difference: PyTorch's F.pad crops for negative padding in the other
        # modes, so nn.Conv2d runs; convlab refuses negative padding in every mode.
        assert ex is None
        return
    assert (ex is None) == (y is None), f"convlab {'rejects' if ex is None else 'accepts'}, PyTorch does not"
    if ex is None:
        return
    assert ex.output_shape == tuple(y.shape[1:])
    assert ex.module == repr(module)
    assert ex.parameters == sum(p.numel() for p in module.parameters())

    # Which input positions any output reads: one-hot inputs through the real layer (ones as weights).
    with torch.no_grad():
        module.weight.fill_(1)
        if module.bias is not None:
            module.bias.zero_()
        h, w = size
        onehots = torch.eye(h * w).reshape(h * w, 1, h, w).expand(h * w, in_channels, h, w)
        read = (module(onehots).flatten(1) != 0).any(1).reshape(h, w)
    assert torch.equal(read, expected_read_map(ex.never_read, h, w))


@PROPERTY
@given(
    kernel=pairs, stride=st.one_of(st.none(), pairs), dilation=pairs,
    padding=st.tuples(st.integers(-1, 3), st.integers(-1, 3)), ceil_mode=st.booleans(),
    channels=st.integers(1, 3), size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
)
def test_pool_explanation_agrees_with_pytorch(kernel, stride, dilation, padding, ceil_mode, channels, size):
    layer = dict(kernel_size=list(kernel), stride=None if stride is None else list(stride), dilation=list(dilation),
                 padding=list(padding), ceil_mode=ceil_mode)
    shape = (channels, *size)
    # As a learner writes it: one number for a square size (PyTorch prints what it was given).
    written = [p[0] if p[0] == p[1] else p for p in (kernel, stride or kernel, padding, dilation)]
    module, y = torch_verdict(lambda: nn.MaxPool2d(*written, ceil_mode=ceil_mode), torch.zeros(1, *shape))
    cfg, ex = convlab_verdict("pool", layer, shape)
    if ex == UNREAD:  # refused up front: PyTorch's forward gives such a window -inf, its backward corrupts memory
        assert y is not None and bool(y.isneginf().any())
        return
    assert (ex is None) == (y is None), f"convlab {'rejects' if ex is None else 'accepts'}, PyTorch does not"
    if ex is None:
        return
    assert ex.output_shape == tuple(y.shape[1:])
    assert ex.module == repr(module)
    assert ex.parameters == 0

    # Position p is read iff some output is finite when the input is 0 at p and -inf elsewhere.
    h, w = size
    x = torch.full((h * w, 1, h, w), float("-inf"))
    x.view(h * w, -1)[torch.arange(h * w), torch.arange(h * w)] = 0
    with torch.no_grad():
        read = module(x).flatten(1).isfinite().any(1).reshape(h, w)
    assert torch.equal(read, expected_read_map(ex.never_read, h, w))


@PROPERTY
@given(
    kernel=st.integers(1, 4), stride=st.one_of(st.none(), st.integers(1, 4)), pad=st.integers(0, 2),
    size=st.integers(1, 8), output_size=st.one_of(st.none(), st.integers(-2, 30)),
)
def test_unpool_explanation_agrees_with_pytorch(kernel, stride, pad, size, output_size):
    """MaxUnpool2d of a MaxPool2d our config accepts: shapes, and output_size refused exactly where PyTorch refuses."""
    assume(pad <= kernel // 2)  # what PyTorch's MaxPool2d (and so our config) accepts
    cfg = resolve("pool", {"pool": dict(kernel_size=kernel, stride=stride, padding=pad)}).layer
    shape = (2, size, size)
    wanted = None if output_size is None else (output_size, output_size)
    s = stride or kernel
    unpool = nn.MaxUnpool2d(kernel, s, pad)
    try:
        y = unpool(torch.zeros(1, *shape), torch.zeros(1, *shape, dtype=torch.long), output_size=wanted)
    except (RuntimeError, ValueError):
        y = None
    try:
        ours = unpool_output_shape(cfg, shape, wanted)
    except ShapeError:
        ours = None
    assert (ours is None) == (y is None)
    if y is not None:
        assert ours == tuple(y.shape[1:])
        assert layer_call(cfg, unpool=True) == repr(unpool)


@PROPERTY
@given(kernel=st.integers(1, 4), stride=st.integers(1, 4), pad=st.integers(0, 2), length=st.integers(1, 14))
def test_unpool_never_written_matches_pool_then_unpool(kernel, stride, pad, length):
    """Output rows called 'never written' are exactly those no pooled maximum can be unpooled to."""
    assume(pad <= kernel // 2 and length + 2 * pad >= kernel)
    cfg = PoolConfig(kernel_size=(kernel, kernel), stride=(stride, stride), padding=(pad, pad))
    pool = nn.MaxPool2d(kernel, stride, pad, return_indices=True)
    # One-hot rows: position r holds the only finite value, so it is every covering window's maximum.
    x = torch.full((length, 1, 1, length), float("-inf"))
    x[torch.arange(length), 0, 0, torch.arange(length)] = 1.0
    pooled, indices = F.max_pool2d(x, (1, kernel), (1, stride), (0, pad), return_indices=True)
    back = F.max_unpool2d(pooled, indices, (1, kernel), (1, stride), (0, pad), output_size=(1, length))
    reached = [r for r in range(length) if back[r, 0, 0, r] == 1]
    ex = explain_unpool(cfg, (1, pooled.shape[-1], pooled.shape[-1]), (length, length))
    assert ex.output_shape == (1, length, length)
    assert ex.never_read[1] == tuple(r for r in range(length) if r not in reached)
    assert pool(torch.zeros(1, 1, length, length))[0].shape[-1] == pooled.shape[-1]


@pytest.mark.parametrize(
    "cfg",
    [
        ConvConfig(),
        ConvConfig(out_channels=8, kernel_size=(5, 3), stride=(2, 1), padding=(2, 1), dilation=(1, 2)),
        ConvConfig(out_channels=6, groups=3, bias=False, padding="same"),
    ],
    ids=repr,
)
def test_multiply_adds_match_pytorchs_flop_counter(cfg):
    module = nn.Conv2d(3, cfg.out_channels, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation, cfg.groups, cfg.bias)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(1, 3, 32, 32))
    # PyTorch counts a multiply-add as 2 flops.
    assert explain(cfg, (3, 32, 32)).multiply_adds * 2 == counter.get_total_flops()


def test_the_lesson_pool_explains_why_ceil_mode_changes_the_answer():
    floor = explain(PoolConfig(), (1, 5, 5))
    assert floor.output_shape == (1, 1, 1) and floor.never_read == ((3, 4), (3, 4))
    assert floor.formulas[0] == "H_out = floor((5 + 2*0 - 1*(3-1) - 1) / 3 + 1) = 1"
    assert "input rows/columns 3-4 are never read" in floor.warnings[0]
    assert "--ceil keeps a last window over the edge (2 outputs instead of 1)" in floor.warnings[0]

    ceil = explain(PoolConfig(ceil_mode=True), (1, 5, 5))
    assert ceil.output_shape == (1, 2, 2) and ceil.never_read == ((), ()) and not ceil.warnings
    assert "the last starts at row/column 3 and reaches 1 row/column past the edge" in ceil.notes[0]
    assert "(out-1)*stride = 1*3 = 3 < in + padding = 5 + 0" in ceil.notes[0]


def test_ceil_mode_drops_a_last_window_that_starts_in_the_padding():
    # 4 + 2*1 - 2 = 4, stride 3: rounding up gives 3 windows, but the third starts at row 5 (> 3).
    ex = explain(PoolConfig(kernel_size=(2, 2), stride=(3, 3), padding=(1, 1), ceil_mode=True), (1, 4, 4))
    got = nn.MaxPool2d(2, 3, 1, ceil_mode=True)(torch.zeros(1, 1, 4, 4)).shape[-2:]
    assert ex.output_shape[1:] == tuple(got) == (2, 2)
    assert "would add a window starting at row/column 5" in ex.notes[0] and "PyTorch drops" in ex.notes[0]


def test_strided_conv_warns_about_uneven_tiling_and_gaps():
    ex = explain(ConvConfig(kernel_size=(3, 3), stride=(2, 2)), (3, 32, 32))
    assert ex.output_shape == (6, 15, 15) and ex.never_read == ((31,), (31,))
    assert ex.warnings == [
        "stride 2 does not tile the height/width evenly: 32 + 2*0 - 3 = 29 leaves 1 after 14 stride(s), so input "
        "row/column 31 is never read; an input height/width of 31 or 33 would tile evenly"
    ]
    gaps = explain(ConvConfig(kernel_size=(2, 1), stride=(3, 1)), (1, 8, 4))
    assert gaps.never_read == ((2, 5), ())
    assert "stride 3 is larger than the window (2): a gap of 1 row between windows on H; rows 2, 5 are never read" in gaps.warnings


def test_same_padding_says_where_the_odd_pad_goes():
    ex = explain(ConvConfig(kernel_size=(4, 4), padding="same"), (3, 8, 8))
    assert ex.output_shape == (6, 8, 8)
    assert "3 padding, 1 before and 2 after (PyTorch puts the odd one after)" in ex.notes[0]


def test_unpool_says_which_output_size_undoes_the_pool():
    cfg = PoolConfig(kernel_size=(3, 3))
    assert pooled_size(cfg, 32, 32) == (10, 10)
    ex = explain_unpool(cfg, (3, 10, 10), pooled_from=(32, 32))
    assert ex.output_shape == (3, 30, 30)
    assert ex.formulas[0] == "H_out = (10 - 1)*3 - 2*0 + 3 = 30"
    assert "--output-size 32x32" in ex.warnings[0]
    assert explain_unpool(cfg, (3, 10, 10), (32, 32)).output_shape == (3, 32, 32)
    with pytest.raises(ShapeError, match=r"output_size 33 for the height is out of range.*accepts 28\.\.32"):
        unpool_output_shape(cfg, (3, 10, 10), (33, 32))


def test_module_repr_without_torch_matches_print():
    cfg = ConvConfig(in_channels=3, out_channels=4, kernel_size=(3, 5), padding="valid", padding_mode="circular")
    assert layer_call(cfg, 3) == repr(nn.Conv2d(3, 4, (3, 5), padding="valid", padding_mode="circular"))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("ceil", [False, True])
def test_pool_repr_and_wording_follow_the_mode(mode, ceil):
    from convlab.layers import build_layer

    cfg = PoolConfig(kernel_size=(3, 3), padding=(1, 1), ceil_mode=ceil, mode=mode)
    module = build_layer(cfg, 3)
    ex = explain(cfg, (3, 32, 32))
    assert ex.text().splitlines()[0] == layer_call(cfg, 3)
    assert layer_call(cfg, 3) == repr(module)
    assert ("average of" in ex.text()) == (mode == "avg")
    assert tuple(module(torch.zeros(1, 3, 32, 32)).shape[1:]) == ex.output_shape


def test_spans_compresses_runs():
    assert spans([0, 1, 2, 5, 9, 10]) == "0-2, 5, 9-10"
    assert spans(list(range(0, 40, 3))) == "0, 3, 6, 9, 12, 15, ..., 39"


def test_text_is_plain_and_complete():
    text = explain(ConvConfig(), (3, 32, 32)).text()
    assert text.splitlines()[0] == "Conv2d(3, 6, kernel_size=(3, 3), stride=(1, 1))"
    assert "parameters       168 = weight 6x3x3x3 (162) + bias 6" in text
    assert "multiply-adds    145,800 per image = 6x30x30 outputs x 27 each" in text
    assert "\x1b" not in text


# ----------------------------------------------------------------------------- CLI


def test_cli_explain_conv(run_cli):
    r = run_cli("explain", "conv", "-k", "5", "--stride", "2", "--size", "28x28", "--channels", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "Conv2d(1, 6, kernel_size=(5, 5), stride=(2, 2))"
    assert "H_out = floor((28 + 2*0 - 1*(5-1) - 1) / 2 + 1) = 12" in r.out
    assert "parameters       156 = weight 6x1x5x5 (150) + bias 6" in r.out
    assert "warning: stride 2 does not tile the height/width evenly" in r.out and "\x1b" not in r.out


def test_cli_explain_takes_an_experiment_file(run_cli, tmp_path):
    (tmp_path / "e.toml").write_text('[pool]\nkernel_size = 2\nceil_mode = true\n[data]\ndataset = "shapes"\n')
    r = run_cli("explain", "pool", "--config", "e.toml", "--stride", "3")
    assert r.code == 0, r.err
    assert "MaxPool2d(kernel_size=2, stride=3, padding=0, dilation=1, ceil_mode=True)" in r.out
    assert "input (3, 32, 32) -> output (3, 11, 11)" in r.out


def test_cli_explain_unpool(run_cli):
    r = run_cli("explain", "unpool", "-k", "3")
    assert r.code == 0, r.err
    assert "input (3, 10, 10) -> output (3, 30, 30)" in r.out and "--output-size 32x32" in r.out
    r = run_cli("explain", "unpool", "-k", "3", "--size", "10x10", "--output-size", "32x31")
    assert r.code == 0 and "output (3, 32, 31)" in r.out
    r = run_cli("explain", "unpool", "-k", "3", "--size", "10", "--output-size", "40")
    assert r.code == 2 and "output_size 40 for the height is out of range" in r.err


@pytest.mark.parametrize(
    "command, args",
    [
        ("conv", ["--stride", "0"]),
        ("conv", ["--kernel", "40"]),
        ("conv", ["--padding", "same", "--stride", "2"]),
        ("conv", ["--groups", "4"]),
        ("conv", ["--padding-mode", "mirror"]),
        ("conv", ["--kernel", "3x"]),
        ("pool", ["--padding", "2"]),
        ("pool", ["--dilation", "0"]),
        ("pool", ["--kernel", "33"]),
    ],
)
def test_cli_explain_errors_are_the_experiment_commands_errors(run_cli, command, args):
    run = run_cli(command, *args, "--dataset", "shapes", "--logdir", "logs")
    told = run_cli("explain", command, *args)
    assert run.code == told.code == 2
    # Usage errors point at the command's own --help; the message itself is the same.
    assert told.err.replace(f"convlab explain {command} --help", f"convlab {command} --help") == run.err
    assert len(told.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["conv", "--size", "0x4"], "--size must be at least 1x1, got 0x4"),
        (["conv", "--size", "big"], "--size: cannot read 'big'"),
        (["pool", "--channels", "0"], "--channels"),
        (["unpool", "--output-size", "-1"], "--output-size must be 0 or more"),
    ],
)
def test_cli_explain_input_errors(run_cli, args, message):
    r = run_cli("explain", *args)
    assert_user_error(r, message)


def test_explain_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; from convlab.__main__ import main\ntry: main(['explain', 'conv', '-k', '5'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "multiply-adds" in out and out.strip().endswith("False")


def test_runs_log_the_explanation_as_layer_text(cifar, run_cli, tmp_path):
    from conftest import load_events

    r = run_cli("pool", "--kernel", "3", "--ceil", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "p", "-n", "1")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "p")
    text = acc.Tensors("layer/text_summary")[0].tensor_proto.string_val[0].decode()
    assert explain(PoolConfig(ceil_mode=True), (3, 32, 32)).text().splitlines()[0] in text
    assert "ceil_mode on H and W: one more window than floor rounding (11 outputs instead of 10)" in text


# ----------------------------------------------------------------------------- any size, in seconds


def spawn(*args: str):
    """``python -m convlab ...`` as a real process: a hang fails the test instead of stalling it."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "convlab", *args], capture_output=True, text=True, timeout=30)


def test_the_largest_input_is_explained_in_seconds_and_a_larger_one_refused():
    r = spawn("explain", "conv", "--size", "2147483647x2147483647")
    assert r.returncode == 0, r.stderr
    assert "never read       none: every input row and column is read" in r.stdout
    r = spawn("explain", "conv", "--size", "99999999999x5")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == ["convlab: error: --size: 99999999999 is far too large; PyTorch takes at most 2147483647"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["conv", "-k", "1", "--stride", "3", "--size", "2147483647"],
         "never read       rows/columns 1-2, 4-5, 7-8, 10-11, 13-14, 16-17, ..., 2147483644-2147483645 (1431655764 of 2147483647)"),
        (["pool", "-k", "2", "--stride", "3", "--padding", "1", "--ceil", "--size", "2147483647x5"],
         "never read       rows 1, 4, 7, 10, 13, 16, ..., 2147483644 (715827882 of 2147483647); columns 1, 4 (2 of 5)"),
        (["conv", "-k", "3", "--dilation", "3", "--stride", "4", "--padding", "5", "--padding-mode", "reflect",
          "--size", "2147483647"],
         "never read       rows/columns 0, 4, 8, 12, 16, 20, ..., 2147483644 (536870912 of 2147483647)"),
        (["unpool", "-k", "2", "--stride", "5", "--size", "2147483647x3"],
         "never written    rows 2-4, 7-9, 12-14, 17-19, 22-24, 27-29, ..., 10737418227-10737418229 (6442450938 of 10737418232)"),
        (["conv", "-k", "1000", "--dilation", "1000", "--stride", "999", "--size", "2147483647x999001"],
         "never read       rows not listed: windows spanning 999001 with stride 999 over 2147483647 rows would take "
         "tracing more than 131,072 of them one by one"),
    ],
)
def test_cli_explain_lists_what_the_largest_sizes_never_read(run_cli, args, expected):
    r = run_cli("explain", *args)
    assert r.code == 0, r.err
    assert expected in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["pool", "--size", "2147483648"], "--size: 2147483648 is far too large"),
        (["unpool", "--size", "5x2147483648"], "--size: 2147483648 is far too large"),
        (["unpool", "--output-size", "99999999999"], "--output-size: 99999999999 is far too large"),
    ],
)
def test_cli_explain_refuses_sizes_pytorch_cannot_hold(run_cli, args, message):
    assert_user_error(run_cli("explain", *args), message)


# ----------------------------------------------------------------------------- ConvTranspose2d


@PROPERTY
@given(
    per_group=st.tuples(st.integers(1, 3), st.integers(1, 3)), groups=st.integers(1, 2),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    extra=st.tuples(st.integers(0, 2), st.integers(0, 2)), bias=st.booleans(), size=st.tuples(st.integers(1, 8), st.integers(1, 8)),
)
def test_convtranspose_explanation_agrees_with_pytorch(per_group, groups, kernel, stride, padding, dilation, extra, bias, size):
    """Shape, parameters and multiply-adds (flop_counter's flops / 2) of nn.ConvTranspose2d, and a
    ShapeError exactly where it refuses the input (or, grouped, gives an empty output)."""
    output_padding = tuple(min(e, max(s, d) - 1) for e, s, d in zip(extra, stride, dilation))
    cin, cout = groups * per_group[0], groups * per_group[1]
    cfg = ConvTranspose2dConfig(cin, cout, kernel, stride, padding, output_padding, groups, bias, dilation)
    module, y = torch_verdict(lambda: nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, groups, bias, dilation),
                              torch.zeros(1, cin, *size))
    if y is None or y.numel() == 0:
        with pytest.raises(ShapeError):
            explain_convtranspose(cfg, (cin, *size))
        return
    ex = explain_convtranspose(cfg, (cin, *size))
    assert ex.output_shape == tuple(y.shape[1:])
    assert ex.parameters == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, cin, *size))
    assert 2 * ex.multiply_adds == counter.get_total_flops()
    assert ex.module == repr(module)


@PROPERTY
@given(kernel=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 3), padding=st.integers(0, 2))
def test_what_each_transposed_output_reads_is_what_autograd_sees(kernel, stride, dilation, padding):
    """'reads 1 to 2 input positions': over the outputs away from the edges, the fewest and the
    most input positions with a non-zero gradient along one axis."""
    module = nn.ConvTranspose2d(1, 1, (1, kernel), (1, stride), (0, padding), dilation=(1, dilation), bias=False)
    nn.init.ones_(module.weight)
    n = 12
    x = torch.ones(1, 1, 1, n, requires_grad=True)
    y = module(x)[0, 0, 0]
    span_ = dilation * (kernel - 1) + 1
    counts = []
    for o in range(y.shape[0]):
        if span_ <= o + padding < (n - 1) * stride:  # every tap lands inside the stretched input
            (grad,) = torch.autograd.grad(y[o], x, retain_graph=True)
            counts.append(int((grad != 0).sum()))
    assume(len(counts) >= stride)
    axis = transposed_axes(ConvTranspose2dConfig(1, 1, (1, kernel), (1, stride), (0, padding), dilation=(1, dilation)), 1, n)[1]
    assert (min(counts), max(counts)) == axis.taps_read


def test_the_lesson_cases_going_back_up_to_32():
    cfg = ConvTranspose2dConfig(6, 3, (3, 3), (2, 2), (1, 1))
    shape, source = convtranspose_input(cfg, (3, 32, 32), None)
    assert shape == (6, 16, 16) and source == (32, 32)
    ex = explain_convtranspose(cfg, shape, conv_from=source)
    assert ex.output_shape == (3, 31, 31)
    assert ex.formulas[0] == "H_out = (16 - 1)*2 - 2*1 + 1*(3-1) + 0 + 1 = 31"
    facts = dict(ex.facts)
    assert "Conv2d(3, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)), which takes 3x31x31 or 3x32x32 to 6x16x16" in facts["gradient of"]
    assert facts["as a convolution"].startswith("1 zero(s) between input values (16 -> 31), padding 1*(3-1) - 1 = 1 on each side")
    assert facts["receptive field"].startswith("each output reads 1x1 to 2x2 input positions in 6 input channels")
    assert facts["output_padding"] == "the Conv2d maps any of 31..32 to 16; output_padding 0 gives 31, 1 gives 32"
    assert ex.warnings == ["this input is what that Conv2d makes of 32x32, but ConvTranspose2d gives 31x31; pass output_padding=1 "
                           "(--output-padding 1) to get 32x32 back"]
    assert "checkerboard" in ex.notes[0]
    even = explain_convtranspose(ConvTranspose2dConfig(6, 3, (4, 4), (2, 2), (1, 1)), shape, conv_from=source)
    assert even.output_shape == (3, 32, 32) and not even.warnings and not even.notes
    gaps = explain_convtranspose(ConvTranspose2dConfig(1, 1, (1, 1), (3, 3)), (1, 4, 4))
    assert "some output rows/columns read no input value at all, only the bias" in gaps.warnings[0]
    crop = explain_convtranspose(ConvTranspose2dConfig(1, 1, (3, 3), padding=(3, 3)), (1, 8, 8))
    assert "crops 1 from each side of the stretched input instead of padding it" in crop.notes[0]


def test_cli_explain_convtranspose(run_cli):
    r = run_cli("explain", "convtranspose", "-k", "3", "-s", "2", "-p", "1", "--output-padding", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "ConvTranspose2d(6, 3, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))"
    assert "input (6, 16, 16) -> output (3, 32, 32)" in r.out and "warning" not in r.out
    assert "H_out = (16 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 32" in r.out
    sized = run_cli("explain", "convtranspose", "-k", "2", "-s", "2", "--size", "5x7", "--channels", "4", "-c", "2", "--groups", "2")
    assert sized.code == 0, sized.err
    assert "ConvTranspose2d(4, 2, kernel_size=(2, 2), stride=(2, 2), groups=2)" in sized.out
    assert "input (4, 5, 7) -> output (2, 10, 14)" in sized.out and "each output reads 1x1 input positions in 2 input channels" in sized.out


def test_explain_and_demo_convtranspose_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; from convlab.__main__ import main\n"
            "for argv in (['explain', 'convtranspose', '-s', '2'], ['demo', 'convtranspose']):\n"
            "    try: main(argv)\n    except SystemExit: pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "gradient of" in out and "F.conv_transpose2d(input, kernel, stride=2)" in out and out.strip().endswith("False")
