"""convlab explain --animate: frame count and size, what each frame shows (against PyTorch), GIF, TensorBoard."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convlab import animate
from convlab.config import resolve
from convlab.lessons import TRANSPOSED_CASES, transposed_case_layer
from convlab.upsampling import layer_windows

from conftest import assert_user_error, images, load_events, only_run


def _layout(cfg, size):
    return animate._layout(layer_windows(cfg, *size))


def _centre(origin, cell, r, c):
    return origin[1] + r * cell + cell // 2, origin[0] + c * cell + cell // 2


@pytest.mark.parametrize(
    "layer",
    [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, dilation=2, padding=1), dict(kernel_size=(2, 3), stride=(1, 2))],
    ids=repr,
)
def test_each_frame_shows_exactly_the_inputs_pytorch_reads(layer):
    cfg = resolve("conv", {"conv": layer}).layer
    size = animate.default_size(cfg)
    frames = animate.frames(cfg, size)
    conv = nn.Conv2d(1, 1, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation, bias=False)
    nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, *size, requires_grad=True)
    y = conv(x)
    out_h, out_w = y.shape[-2:]
    assert len(frames) == animate.INTRO_FRAMES + out_h * out_w
    lay = _layout(cfg, size)
    assert {f.size for f in frames} == {frames[0].size} and frames[0].size[0] % 2 == 0 == frames[0].size[1] % 2
    for n in range(out_h * out_w):
        i, j = divmod(n, out_w)
        (grad,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
        pixels = np.asarray(frames[animate.INTRO_FRAMES + n])
        for r in range(size[0]):
            for c in range(size[1]):
                colour = tuple(pixels[_centre(lay.origin, lay.cell, r - lay.rows.start, c - lay.cols.start)])
                assert colour == (animate.TAP_INPUT if grad[0, 0, r, c] else animate.INPUT_FILL), (n, r, c)
        # The output cell being filled, the earlier ones done.
        out = [tuple(pixels[_centre(lay.out_origin, lay.cell, a, b)]) for a in range(out_h) for b in range(out_w)]
        assert out == [animate.OUTPUT_DONE] * n + [animate.FOOTPRINT] + [animate.OUTPUT_EMPTY] * (out_h * out_w - n - 1)


def test_padding_is_drawn_apart_and_ceil_taps_past_the_edge_in_red():
    cfg = resolve("pool", {"pool": dict(kernel_size=3, ceil_mode=True)}).layer
    size = animate.default_size(cfg)
    assert size == (7, 7)  # 6 would tile evenly and hide ceil_mode's window
    frames = animate.frames(cfg, size)
    assert len(frames) == 1 + 3 * 3
    lay = _layout(cfg, size)
    last = np.asarray(frames[-1])
    # Window (2, 2) covers rows/cols 6..8 of a 7x7 input: 7 and 8 are past the edge.
    y, x = _centre(lay.origin, lay.cell, 6, 6)
    assert tuple(last[y, x]) == animate.TAP_INPUT
    top, left = lay.origin[1] + 7 * lay.cell, lay.origin[0] + 7 * lay.cell
    assert tuple(last[top, left + lay.cell // 2]) == animate.EDGE_LINE

    padded = resolve("conv", {"conv": dict(kernel_size=3, padding=1)}).layer
    intro = np.asarray(animate.frames(padded, (5, 5))[0])
    lay = _layout(padded, (5, 5))
    assert tuple(intro[_centre(lay.origin, lay.cell, 0, 0)]) == animate.PADDING_FILL
    assert tuple(intro[_centre(lay.origin, lay.cell, 1, 1)]) == animate.INPUT_FILL


def test_cli_animate_writes_a_small_gif_and_the_frames_to_tensorboard(run_cli, tmp_path: Path):
    r = run_cli("explain", "conv", "--stride", "2", "--padding", "1", "--animate", "conv.gif", "--logdir", "logs")
    assert r.code == 0, r.err
    gif = Image.open(tmp_path / "conv.gif")
    assert gif.format == "GIF" and gif.n_frames == 1 + 3 * 3 and gif.info.get("loop") == 0
    assert (tmp_path / "conv.gif").stat().st_size < 1_000_000
    assert "animation: 10 frames" in r.out and "of a 5x5 input -> conv.gif" in r.out
    # The explanation is still printed for the full-size input.
    assert "input (3, 32, 32) -> output (6, 16, 16)" in r.out

    run_dir = only_run(tmp_path / "logs")
    assert run_dir.name.startswith("animate-conv-c6-k3-s2-p1-")
    logged = images(load_events(run_dir), "animation")
    assert [im.step for im in logged] == list(range(10))
    cfg = resolve("conv", {"conv": dict(stride=2, padding=1)}).layer
    drawn = animate.frames(cfg, (5, 5))
    assert all((im.width, im.height) == gif.size for im in logged)
    for step in (0, 4, 9):
        assert np.array_equal(logged[step].pixels, np.asarray(drawn[step]))
        gif.seek(step)
        assert np.array_equal(np.asarray(gif.convert("RGB")), np.asarray(drawn[step]))


def test_cli_animate_pool_with_size(run_cli, tmp_path):
    r = run_cli("explain", "pool", "--ceil", "--size", "8x5", "--animate", "p.gif")
    assert r.code == 0, r.err
    gif = Image.open(tmp_path / "p.gif")
    assert gif.n_frames == 1 + 3 * 2  # ceil((8-3)/3)+1 = 3 rows, ceil((5-3)/3)+1 = 2 columns


def test_a_typical_larger_animation_stays_under_a_megabyte(tmp_path):
    exp = resolve("conv", {"conv": dict(kernel_size=3)})
    report = animate.animate(exp, tmp_path / "big.gif", size=(12, 12))
    assert report["frames"] == 1 + 10 * 10 and report["bytes"] < 1_000_000


@pytest.mark.parametrize(
    "args, message",
    [
        (("--animate", "out.png"), "--animate writes a GIF; give a file name ending in .gif"),
        (("--animate", "missing/out.gif"), "folder missing does not exist"),
        (("--animate", "a.gif", "--size", "32x32"), "a 32x32 input gives 30x30 = 900 (at most 400); use a smaller --size"),
        (("--logdir", "logs"), "--logdir logs the animation's frames; give --animate FILE.gif too"),
        (("--animate", "a.gif", "--logdir", "afile"), "is a file, not a directory"),
    ],
)
def test_cli_animate_errors_are_one_line_and_write_nothing(run_cli, tmp_path, args, message):
    (tmp_path / "afile").write_text("x")
    r = run_cli("explain", "conv", *args)
    assert_user_error(r, message)
    assert not list(tmp_path.glob("*.gif")) and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("name", sorted(TRANSPOSED_CASES))
def test_a_transposed_frame_shows_the_inputs_its_output_reads_among_the_zeros(name):
    """conv_arithmetic's seven transposed cases: one frame per output cell; in each, the input
    values the kernel covers are exactly those nn.ConvTranspose2d's output reads (non-zero
    gradient), the zeros between them are drawn white, and the output has the GIF's size."""
    cfg, size = transposed_case_layer(name)
    frames = animate.frames(cfg, size)
    module = nn.ConvTranspose2d(1, 1, cfg.kernel_size, cfg.stride, cfg.padding, cfg.output_padding, bias=False)
    nn.init.ones_(module.weight)
    x = torch.zeros(1, 1, *size, requires_grad=True)
    y = module(x)
    out_h, out_w = y.shape[-2:]
    assert len(frames) == animate.INTRO_FRAMES + out_h * out_w
    lay = _layout(cfg, size)
    s = cfg.stride[0]
    for n in range(out_h * out_w):
        i, j = divmod(n, out_w)
        (grad,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
        pixels = np.asarray(frames[animate.INTRO_FRAMES + n])
        for r in range((size[0] - 1) * s + 1):
            for c in range((size[1] - 1) * s + 1):
                colour = tuple(pixels[_centre(lay.origin, lay.cell, r - lay.rows.start, c - lay.cols.start)])
                if r % s or c % s:  # a zero put between input values
                    assert colour in (animate.ZERO_FILL, animate.TAP_PADDING), (n, r, c)
                else:
                    assert colour == (animate.TAP_INPUT if grad[0, 0, r // s, c // s] else animate.INPUT_FILL), (n, r, c)


def test_cli_animate_a_conv_arithmetic_case_with_its_frames_in_tensorboard(run_cli, tmp_path):
    r = run_cli("explain", "convtranspose", "--case", "padding-strides-odd", "--animate", "up.gif", "--logdir", "logs")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "ConvTranspose2d(1, 1, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1), bias=False)"
    assert "input (1, 3, 3) -> output (1, 6, 6)" in r.out and "animation: 37 frames" in r.out and "of a 3x3 input -> up.gif" in r.out
    gif = Image.open(tmp_path / "up.gif")
    assert gif.n_frames == 1 + 6 * 6
    run_dir = only_run(tmp_path / "logs")
    assert run_dir.name.startswith("animate-convtranspose-k3-s2-p1-op1-")
    logged = images(load_events(run_dir), "animation")
    cfg, size = transposed_case_layer("padding-strides-odd")
    drawn = animate.frames(cfg, size)
    assert len(logged) == 37 and np.array_equal(logged[5].pixels, np.asarray(drawn[5]))


def test_cli_animate_a_transposed_layer_on_its_default_input(run_cli, tmp_path):
    r = run_cli("explain", "convtranspose", "-k", "4", "-s", "2", "-p", "1", "--animate", "up.gif")
    assert r.code == 0, r.err
    assert "input (6, 16, 16) -> output (3, 32, 32)" in r.out  # explained on what the Conv2d makes of 32x32
    assert "of a 3x3 input -> up.gif" in r.out and Image.open(tmp_path / "up.gif").n_frames == 1 + 6 * 6


@pytest.mark.parametrize(
    "args, message",
    [
        (("--animate", "a.gif", "--size", "4x4", "-s", "40", "-p", "60"), "--animate draws the input with its padding (and any zeros"),
        (("--case", "padding-strides", "--size", "4x4"), "--case gives the input's size; leave out --size"),
        (("--case", "padding-strides", "-k", "5"), "--case gives the layer; leave out --kernel"),
        (("-s", "2", "--output-padding", "3"), "output_padding 3 on H must be smaller than the stride (2) or the dilation (1)"),
        (("--padding", "same"), "--padding: cannot read 'same'"),
        (("-k", "40"), "cannot take a 32x32 image"),
        (("--groups", "4"), "groups=4 must divide in_channels=6"),
    ],
)
def test_cli_explain_convtranspose_errors_are_one_line_and_write_nothing(run_cli, tmp_path, args, message):
    assert_user_error(run_cli("explain", "convtranspose", *args), message)
    assert not list(tmp_path.glob("*.gif"))
