"""convlab demo and convlab.lessons: the lessons' numbers exactly, every result against torch.nn.functional, the CLI."""

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convlab.errors import ConfigError
from convlab.layers import ShapeError, UnreadWindow
from convlab.lessons import (
    CONV_INPUT,
    CONV_WEIGHT,
    MAX_SIDE,
    POOL_INPUT,
    back_to,
    check_drawable,
    conv_case,
    mac_terms,
    parse_matrix,
    pool_case,
    stamps,
    transposed_case,
)
from convlab.stages import ConvConfig, ConvTranspose2dConfig, PoolConfig

from conftest import assert_user_error


def t(matrix):
    return torch.tensor(matrix, dtype=torch.float64).reshape(1, 1, len(matrix), len(matrix[0]))


def test_the_pool_lesson_exactly():
    assert pool_case(PoolConfig(kernel_size=(3, 3)), POOL_INPUT).output == [[5]]
    ceil = pool_case(PoolConfig(kernel_size=(3, 3), ceil_mode=True), POOL_INPUT)
    assert ceil.output == [[5, 6], [6, 6]]
    assert [w.over_edge for w in ceil.windows] == [False, True, True, True]
    floor = pool_case(PoolConfig(kernel_size=(3, 3)), POOL_INPUT)
    assert [w.cell for w in floor.dropped] == [(0, 1), (1, 0), (1, 1)]
    for case, ceil_mode in ((floor, False), (ceil, True)):
        assert t(case.output).equal(F.max_pool2d(t(POOL_INPUT), 3, ceil_mode=ceil_mode))


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (ConvConfig(kernel_size=(3, 3)), [[10, 12, 12], [18, 16, 16], [13, 9, 3]]),
        (ConvConfig(kernel_size=(3, 3), stride=(2, 2)), [[10, 12], [13, 3]]),
        (ConvConfig(kernel_size=(3, 3), padding=(1, 1)),
         [[1, 3, 4, 10, 8], [5, 10, 12, 12, 6], [7, 18, 16, 16, 8], [11, 13, 9, 3, 4], [14, 13, 9, 7, 4]]),
    ],
)
def test_the_conv_lesson_exactly_and_as_torch(cfg, expected):
    case = conv_case(cfg, CONV_INPUT, CONV_WEIGHT)
    assert case.output == expected
    torch_out = F.conv2d(t(CONV_INPUT), t(CONV_WEIGHT), stride=cfg.stride, padding=cfg.padding)
    assert t(case.output).equal(torch_out)


def test_one_cells_multiply_accumulate_reads_padding_as_zero():
    case = conv_case(ConvConfig(kernel_size=(3, 3), padding=(1, 1)), CONV_INPUT, CONV_WEIGHT)
    terms = mac_terms(CONV_INPUT, CONV_WEIGHT, case.windows[0])
    assert [(x, w) for x, w, _ in terms] == [(0, 1), (0, 2), (0, 1), (0, 0), (1, 1), (2, 0), (0, 2), (0, 1), (1, 0)]
    assert [pad for _, _, pad in terms] == [True, True, True, True, False, False, True, False, False]
    assert sum(x * w for x, w, _ in terms) == case.output[0][0] == 1


matrices = st.integers(1, 7).flatmap(
    lambda h: st.integers(1, 7).flatmap(
        lambda w: st.lists(st.lists(st.integers(-9, 9), min_size=w, max_size=w), min_size=h, max_size=h)))
pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@settings(max_examples=100, deadline=None)
@given(matrix=matrices, kernel=pairs, stride=pairs, dilation=pairs,
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), data=st.data())
def test_conv_demo_is_torch_conv2d(matrix, kernel, stride, dilation, padding, data):
    weight = data.draw(st.lists(st.lists(st.integers(-3, 3), min_size=kernel[1], max_size=kernel[1]),
                                min_size=kernel[0], max_size=kernel[0]))
    cfg = ConvConfig(kernel_size=kernel, stride=stride, dilation=dilation, padding=padding, in_channels=1, out_channels=1)
    try:
        case = conv_case(cfg, matrix, weight)
    except ShapeError:
        with pytest.raises(RuntimeError):
            F.conv2d(t(matrix), t(weight), stride=stride, padding=padding, dilation=dilation)
        return
    assert t(case.output).equal(F.conv2d(t(matrix), t(weight), stride=stride, padding=padding, dilation=dilation))


@settings(max_examples=100, deadline=None)
@given(matrix=matrices, kernel=pairs, stride=pairs, dilation=pairs, ceil_mode=st.booleans(),
       padding=st.tuples(st.integers(0, 1), st.integers(0, 1)))
def test_pool_demo_is_torch_max_pool2d(matrix, kernel, stride, dilation, ceil_mode, padding):
    assume(padding[0] <= kernel[0] // 2 and padding[1] <= kernel[1] // 2)
    cfg = PoolConfig(kernel_size=kernel, stride=stride, dilation=dilation, padding=padding, ceil_mode=ceil_mode)
    try:
        case = pool_case(cfg, matrix)
    except UnreadWindow:  # a window of padding only: torch's forward gives it -inf (its backward would corrupt memory)
        assert bool(F.max_pool2d(t(matrix), kernel, stride, padding, dilation, ceil_mode=ceil_mode).isneginf().any())
        return
    except ShapeError:
        with pytest.raises(RuntimeError):
            F.max_pool2d(t(matrix), kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        return
    assert t(case.output).equal(F.max_pool2d(t(matrix), kernel, stride, padding, dilation, ceil_mode=ceil_mode))


@pytest.mark.parametrize("text", ["1 2 0; 3 2 4", "1,2,0/3,2,4", "1 2 0\n3 2 4", "[[1, 2, 0], [3, 2, 4]]", " [[1,2,0],[3,2,4],] "])
def test_parse_matrix_formats(text):
    assert parse_matrix(text, "--input") == [[1, 2, 0], [3, 2, 4]]


def test_parse_matrix_numbers():
    assert parse_matrix("0.5 -1", "--input") == [[0.5, -1]]
    assert parse_matrix("[1, 2, 3]", "--input") == [[1, 2, 3]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "--input is empty"),
        ("  ", "--input is empty"),
        ("[]", "--input is empty"),
        ("[[1], 2]", "--input: expected a list of rows"),
        ("1 2 3; 4 5", "--input is ragged: row 2 has 2 number(s) but row 1 has 3"),
        ("[[1, 2], [3]]", "--input is ragged: row 2 has 1 number(s) but row 1 has 2"),
        ("1 2;;3 4", "--input: row 2 is empty"),
        ("1 a", "--input: 'a' in row 1 is not a number"),
        ("1 nan", "not a finite number"),
        ("[[1, True]]", "True in row 1 is not a number"),
        ("[[1, 2]", "cannot read"),
    ],
)
def test_parse_matrix_errors(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_matrix(text, "--input")


# ----------------------------------------------------------------------------- CLI


def test_cli_demo_pool_prints_the_lesson(run_cli):
    r = run_cli("demo", "pool")
    assert r.code == 0, r.err
    assert "input = torch.reshape(input, (-1, 1, 5, 5))  # shape (1, 1, 5, 5)" in r.out
    floor, ceil = r.out.split("nn.MaxPool2d(kernel_size=3, ceil_mode=True)")
    assert "nn.MaxPool2d(kernel_size=3, ceil_mode=False)  ->  output shape (1, 1, 1, 1)" in floor
    assert "  [[5]]" in floor and "drops 3 window(s) that would hang over the edge: (0, 1), (1, 0), (1, 1)" in floor
    assert "output shape (1, 1, 2, 2)" in ceil and "  [[5, 6],\n   [6, 6]]" in ceil
    assert ceil.count("max 6 (over the edge)") == 3 and "(0, 0): max 5 " in ceil
    # The window (0, 1) of ceil mode: its cells, its max bracketed, the column past the edge as x.
    assert ".  .  .  5 [6] x" in ceil
    assert "\x1b" not in r.out  # plain text when not on a terminal


def test_cli_demo_conv_prints_three_lessons_and_one_multiply_accumulate(run_cli):
    r = run_cli("demo", "conv")
    assert r.code == 0, r.err
    assert [line for line in r.out.splitlines() if line.startswith("F.conv2d")] == [
        "F.conv2d(input, kernel, stride=1)  ->  output shape (1, 1, 3, 3)",
        "F.conv2d(input, kernel, stride=2)  ->  output shape (1, 1, 2, 2)",
        "F.conv2d(input, kernel, stride=1, padding=1)  ->  output shape (1, 1, 5, 5)",
    ]
    assert "out[0, 0] = 1*1 + 2*2 + 0*1" in r.out and "[[10, 12, 12]," in r.out and "[[10, 12],\n   [13,  3]]" in r.out
    assert "[[ 1,  3,  4, 10,  8]," in r.out


def test_cli_demo_takes_layer_options_and_matrices(run_cli):
    r = run_cli("demo", "conv", "--input", "1 2 3; 4 5 6; 7 8 9", "--weight", "1 0; 0 -1", "--stride", "1", "--cell", "1,1")
    assert r.code == 0, r.err
    words = " ".join(r.out.split())
    assert "out[1, 1] = 5*1 + 6*0" in words and "+ 8*0 + 9*(-1)" in words and "= -4" in words
    assert "[[-4, -4],\n   [-4, -4]]" in r.out
    r = run_cli("demo", "pool", "--input", "[[1, 2, 3], [4, 5, 6], [7, 8, 9]]", "-k", "2", "--no-ceil")
    assert r.code == 0, r.err
    assert "ceil_mode=True" not in r.out.split("legend")[0].split("drops")[0] and "[[5]]" in r.out


def test_cli_demo_kernel_alone_is_a_box_of_ones(run_cli):
    r = run_cli("demo", "conv", "--kernel", "2", "--stride", "2")
    assert r.code == 0, r.err
    assert "kernel = torch.tensor(...)  # 2x2" in r.out and "[[ 4,  8],\n   [10,  5]]" in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (("demo", "pool", "--input", "1 2 3; 4 5"), "--input is ragged: row 2 has 2 number(s) but row 1 has 3"),
        (("demo", "conv", "--input", ""), "--input is empty"),
        (("demo", "conv", "--weight", "1 2; x 3"), "--weight: 'x' in row 2 is not a number"),
        (("demo", "conv", "--kernel", "2", "--weight", "1 2 3"), "--kernel 2x2 does not match --weight, which is 1x3"),
        (("demo", "conv", "--cell", "2,2"), "--cell 2,2 is outside the 2x2 output of F.conv2d(input, kernel, stride=2)"),
        (("demo", "pool", "--input", "1 2; 3 4"), "kernel 3 does not fit the input's height: 2 + 2*0 padding = 2 < 3"),
        (("demo", "pool", "--padding", "2"), "pool padding 2x2 is too large for kernel 3x3"),
        (("demo", "conv", "--stride", "0"), "stride must be at least 1, got 0x0"),
    ],
)
def test_cli_demo_errors_are_one_line(run_cli, args, message):
    r = run_cli(*args)
    assert_user_error(r, message)
    assert r.out == ""


def test_cli_demo_is_coloured_on_a_terminal(run_cli, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    r = run_cli("demo", "pool")
    assert r.code == 0 and "\x1b[" in r.out


# ----------------------------------------------------------------------------- what a terminal shows


def spawn(*args: str):
    """``python -m convlab ...`` as a real process: a hang fails the test instead of stalling it."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "convlab", *args], capture_output=True, text=True, timeout=30)


def square(n: int) -> str:
    return "; ".join(" ".join(str((7 * i + j) % 10) for j in range(n)) for i in range(n))


@pytest.mark.parametrize("n", [100, 250])
def test_a_large_input_is_refused_at_once(n):
    r = spawn("demo", "pool", "--input", square(n))
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"convlab: error: --input is {n}x{n}, too large for a demo, which draws at most {MAX_SIDE}x{MAX_SIDE}; "
        f"convlab explain conv|pool --size {n}x{n} gives the arithmetic at any size"
    ]


def test_the_largest_demo_takes_seconds():
    import time

    # The most a demo draws: 2 x 64 panels of 24x24 cells, of 12-digit numbers.
    matrix = "; ".join(" ".join(str(-(10**11) - 7 * i - j) for j in range(24)) for i in range(24))
    start = time.perf_counter()
    r = spawn("demo", "pool", "--input", matrix)
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - start < 15
    assert r.stdout.count("): max -1") == 2 * 64


@pytest.mark.parametrize(
    "args",
    [("pool", "--input", square(24), "-k", "1", "--stride", "3"), ("conv", "--input", square(24), "-k", "12", "--stride", "1")],
)
def test_cli_demo_draws_up_to_the_limits(run_cli, args):
    r = run_cli("demo", *args)
    assert r.code == 0, r.err
    assert "legend" in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (("demo", "pool", "--input", square(25)), f"--input is 25x25, too large for a demo, which draws at most {MAX_SIDE}x{MAX_SIDE}"),
        (("demo", "conv", "--weight", square(30)), "--weight is 30x30, too large for a demo, which draws at most 24x24"),
        (("demo", "conv", "--kernel", "2147483647"), "--kernel is 2147483647x2147483647, too large for a demo"),
        (("demo", "pool", "--input", "1 2; 3 4", "-k", "1001", "--padding", "500"),
         "nn.MaxPool2d(kernel_size=1001, padding=500, ceil_mode=False) on a 2x2 input draws 1002x1002 cells"),
        (("demo", "conv", "--padding", "1000"),
         "F.conv2d(input, kernel, stride=1, padding=1000) on a 5x5 input draws 2005x2005 cells (with its padding and "
         "any window past the edge), too many for a demo, which draws at most 24x24; use less --padding or a smaller --input"),
        (("demo", "pool", "--input", square(24), "-k", "1", "--stride", "1"),
         "the demo draws every window, and nn.MaxPool2d(kernel_size=1, stride=1, ceil_mode=False) on a 24x24 input "
         "has 24x24 = 576 (at most 64); use a larger --stride or --kernel, or a smaller --input"),
        (("demo", "pool", "--input", "[[1234567890123, 1]]", "-k", "1"),
         "--input: a 13-digit number in row 1 is too large for a demo (at most 12 digits)"),
    ],
)
def test_cli_demo_refuses_what_a_terminal_cannot_show(run_cli, args, message):
    r = run_cli(*args)
    assert_user_error(r, message)
    assert r.out == ""


# ----------------------------------------------------------------------------- going back up


@settings(max_examples=120, deadline=None)
@given(matrix=matrices, kernel=pairs, stride=pairs, dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 3), st.integers(0, 3)), extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       data=st.data())
def test_transposed_demo_is_torch_conv_transpose2d(matrix, kernel, stride, dilation, padding, extra, data):
    """Worked by hand as its direct convolution (zeros inserted, padded, kernel flipped), and the
    other way round (each input value stamping the kernel): both are F.conv_transpose2d, exactly."""
    output_padding = tuple(min(e, max(s, d) - 1) for e, s, d in zip(extra, stride, dilation))
    cfg = ConvTranspose2dConfig(1, 1, kernel, stride, padding, output_padding, dilation=dilation, bias=False)
    weight = data.draw(st.lists(st.lists(st.integers(-3, 3), min_size=kernel[1], max_size=kernel[1]), min_size=kernel[0], max_size=kernel[0]))
    try:
        check_drawable(cfg, (len(matrix), len(matrix[0])), panels=False)
    except ShapeError:
        with pytest.raises(RuntimeError):
            F.conv_transpose2d(t(matrix), t(weight), stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
        return
    except ConfigError:
        assume(False)  # too large to draw
    case = transposed_case(cfg, matrix, weight)
    expected = F.conv_transpose2d(t(matrix), t(weight), stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    assert t(case.output).equal(expected)
    assert stamps(cfg, matrix, weight) == case.output
    assert case.stretched[:: stride[0]] and all(v == 0 for row in case.stretched for i, v in enumerate(row) if i % stride[1])


def test_the_conv_lessons_outputs_go_back_to_5x5():
    """The demo's default: each conv lesson's output, transposed with the same kernel and
    arguments, is 5x5 again (with the output_padding that takes it there), not the lesson's values."""
    for conv, cfg in [
        (ConvConfig(kernel_size=(3, 3)), ConvTranspose2dConfig(1, 1, (3, 3), bias=False)),
        (ConvConfig(kernel_size=(3, 3), stride=(2, 2)), ConvTranspose2dConfig(1, 1, (3, 3), (2, 2), bias=False)),
        (ConvConfig(kernel_size=(3, 3), stride=(3, 3)), ConvTranspose2dConfig(1, 1, (3, 3), (3, 3), bias=False)),
    ]:
        small = conv_case(conv, CONV_INPUT, CONV_WEIGHT).output
        back = back_to(cfg, (len(small), len(small[0])), (5, 5))
        case = transposed_case(back, small, CONV_WEIGHT)
        assert len(case.output) == len(case.output[0]) == 5 and case.output != CONV_INPUT
    assert back.output_padding == (2, 2)  # 5 -> 1 with stride 3; 1 -> 3, + 2


def test_cli_demo_convtranspose_goes_back_up_from_the_conv_lessons(run_cli):
    result = run_cli("demo", "convtranspose")
    assert result.code == 0, result.err
    out = result.out
    assert out.count("->  output shape (1, 1, 5, 5)") == 3
    assert "input = F.conv2d(lesson, kernel, stride=2)  # 2x2" in out and "[[10, 12]," in out
    assert "H_out = (2 - 1)*2 - 2*0 + 1*(3-1) + 0 + 1 = 5" in out
    assert "as a convolution: 1 zero(s) between input values (2x2 -> 3x3), padding 1*(3-1) - 0 = 2 on each side" in out
    assert "[[0, 1, 2]," in out  # the kernel flipped
    assert "[[10, 20, 22, 24, 12]," in out and "the lesson's size is back, not its values" in out


def test_cli_demo_convtranspose_takes_settings_and_matrices(run_cli):
    result = run_cli("demo", "convtranspose", "--stride", "2", "--padding", "1", "--input", "1 2; 3 4", "--weight", "1 1; 1 1",
                     "--output-padding", "1", "--cell", "1,1")
    assert result.code == 0, result.err
    expected = F.conv_transpose2d(t([[1, 2], [3, 4]]), t([[1, 1], [1, 1]]), stride=2, padding=1, output_padding=1)
    assert "->  output shape (1, 1, 3, 3)" in result.out and "output (1, 1) reads rows 1..2, cols 1..2" in result.out
    assert str(expected[0, 0].int().tolist()).replace("], [", "],\n   [") in result.out
    case = run_cli("demo", "convtranspose", "--case", "padding-strides-odd")
    assert case.code == 0 and "->  output shape (1, 1, 6, 6)" in case.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output-padding", "2", "--stride", "2"], "output_padding 2 on H must be smaller than the stride (2) or the dilation (1)"),
        (["--input", "1 2; 3 4", "--padding", "3"], "padding 3 crops more than"),
        (["--case", "diagonal"], "'diagonal' is not one of 'no-padding-no-strides', 'arbitrary-padding-no-strides'"),
        (["--case", "padding-strides", "--stride", "2"], "--case gives the layer; leave out --stride"),
        (["--input", "1 2; 3 4", "--cell", "5,5"], "--cell 5,5 is outside the 4x4 output"),
        (["--stride", "12", "--input", "1 2 3; 4 5 6; 7 8 9"], "too many for a demo"),
        (["--kernel", "0"], "kernel_size must be at least 1, got 0x0"),  # once an internal error (the fuzz test)
        (["--kernel", "2x0"], "kernel_size must be at least 1, got 2x0"),
    ],
)
def test_cli_demo_convtranspose_errors_are_one_line(run_cli, args, message):
    assert_user_error(run_cli("demo", "convtranspose", *args), message)
