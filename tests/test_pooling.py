"""--mode avg and --unpool: AvgPool2d, and MaxUnpool2d at exactly the input's size."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from convlab.layers import ShapeError, build_layer, max_unpool, output_shape
from convlab.stages import PoolConfig

from conftest import assert_user_error, grid_size, images, load_events


def reference_unpool(x: torch.Tensor, k, s, p, d, out_hw) -> torch.Tensor:
    """Loops, no torch pooling: each window's maximum (first on ties) kept at its place."""
    out = torch.zeros_like(x)
    n, c, h, w = x.shape
    for i in range(out_hw[0]):
        rows = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
        for j in range(out_hw[1]):
            cols = [j * s[1] - p[1] + b * d[1] for b in range(k[1])]
            cells = [(r, q) for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            for b_, ch in itertools.product(range(n), range(c)):
                r, q = max(cells, key=lambda rc: x[b_, ch, rc[0], rc[1]].item())
                out[b_, ch, r, q] = x[b_, ch, r, q]
    return out


CASES = [
    PoolConfig(kernel_size=k, stride=s, padding=pd, dilation=d, ceil_mode=ceil)
    for k, s, pd, d, ceil in itertools.product(
        [(2, 2), (3, 3), (3, 2)], [None, (1, 1), (2, 3)], [(0, 0), (1, 1)], [(1, 1), (2, 1)], [False, True]
    )
]


@pytest.mark.parametrize("cfg", CASES, ids=repr)
@pytest.mark.parametrize("size", [(7, 9), (8, 8)])
def test_unpool_is_the_input_at_the_maxima_and_zero_elsewhere(cfg, size):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, *size, generator=g) + 0.1  # no zeros, no ties
    try:
        _, oh, ow = output_shape(cfg, (2, *size))
    except ShapeError:
        pytest.skip("the kernel does not fit this size")
    u = max_unpool(x, cfg)
    assert u.shape == x.shape
    stride = cfg.stride or cfg.kernel_size
    expect = reference_unpool(x, cfg.kernel_size, stride, cfg.padding, cfg.dilation, (oh, ow))
    assert torch.equal(u, expect)


def test_without_output_size_pytorch_gets_the_size_wrong():
    """Why max_unpool passes output_size: left out, the size is not the input's."""
    x = torch.rand(1, 1, 32, 32)
    pooled, idx = nn.MaxPool2d(3, ceil_mode=True, return_indices=True)(x)
    assert nn.MaxUnpool2d(3)(pooled, idx).shape[-2:] == (33, 33)
    assert max_unpool(x, PoolConfig(kernel_size=(3, 3), ceil_mode=True)).shape == x.shape


def test_avg_mode_is_a_real_avgpool2d():
    m = build_layer(PoolConfig(kernel_size=(3, 3), padding=(1, 1), ceil_mode=True, mode="avg"), 3)
    assert type(m) is nn.AvgPool2d and m.stride == 3 and m.ceil_mode and m.padding == 1  # as AvgPool2d(3, padding=1) keeps them


@pytest.mark.parametrize(
    "cfg",
    [PoolConfig(kernel_size=k, stride=s, padding=p, ceil_mode=c, mode="avg")
     for k, s, p, c in itertools.product([(2, 2), (3, 3), (3, 4)], [None, (1, 1), (2, 2)], [(0, 0), (1, 1)], [False, True])],
    ids=repr,
)
@pytest.mark.parametrize("size", [(32, 32), (7, 9)])
def test_avg_predicted_shape_agrees_with_pytorch(cfg, size):
    real = tuple(build_layer(cfg, 3)(torch.zeros(1, 3, *size)).shape[1:])
    assert output_shape(cfg, (3, *size)) == real


def test_unpool_end_to_end(cifar, run_cli, tmp_path):
    r = run_cli("pool", "--kernel", "3", "--ceil", "--padding", "1", "--unpool", "--data-dir", cifar.root,
                "--logdir", "logs")
    assert r.code == 0, r.err
    run_dir = next((tmp_path / "logs").iterdir())
    assert run_dir.name.startswith("maxpool-k3-s3-p1-ceil-unpool-")
    acc = load_events(run_dir)
    un, inp = images(acc, "unpool"), images(acc, "input")
    assert [u.step for u in un] == [0, 1]
    assert [(u.height, u.width) for u in un] == [grid_size(64, 32, 32), grid_size(16, 32, 32)]  # the input's size
    # Every pixel is either the input's or 0, and each 3x3 window's maximum (per channel) is there.
    for u, i in zip(un, inp):
        kept = u.pixels != 0
        assert np.array_equal(u.pixels[kept], i.pixels[kept])
    x = torch.from_numpy(cifar.test_images[:1]).permute(0, 3, 1, 2).float()
    expect = max_unpool(x, PoolConfig(kernel_size=(3, 3), padding=(1, 1), ceil_mode=True))[0].permute(1, 2, 0)
    assert np.array_equal(un[0].pixels[:32, :32], expect.numpy().astype(np.uint8))


def test_avgpool_end_to_end(cifar, run_cli, tmp_path):
    r = run_cli("pool", "--mode", "avg", "--kernel", "2", "--data-dir", cifar.root, "--logdir", "logs", "-n", "1")
    assert r.code == 0, r.err
    run_dir = next((tmp_path / "logs").iterdir())
    assert run_dir.name.startswith("avgpool-k2-s2-p0-")
    assert "AvgPool2d(kernel_size=2, stride=2, padding=0)" in r.out
    acc = load_events(run_dir)
    assert "maxpool" not in acc.Tags()["images"]
    out = images(acc, "avgpool")[0]
    assert (out.height, out.width) == grid_size(64, 16, 16)
    window = cifar.test_images[0, :2, :2].astype(float).reshape(-1, 3).mean(0)
    assert np.abs(out.pixels[0, 0] - window).max() <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--unpool", "--mode", "avg"], "--unpool needs --mode max"),
        (["--mode", "avg", "--dilation", "2"], "--mode avg has no dilation"),
        (["--mode", "median"], "median"),
    ],
)
def test_bad_pool_modes_are_one_line(run_cli, tmp_path, args, message):
    r = run_cli("pool", *args, "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists()


# A MaxPool2d window that reads only padding (dilation 33 steps over the 32 pixels of shapes, or 2 over
# one pixel): refused in every command that can hold one, before anything runs (PyTorch's backward
# would write outside the input). What would fit is said in the command's own words.
SHAPES = ("--dataset", "shapes")
UNREAD = {
    "pool": (["pool", "-k", "2", "-p", "1", "-d", "33", *SHAPES], "use --dilation 32"),
    "pool --unpool": (["pool", "-k", "2", "-p", "1", "-d", "33", "--unpool", *SHAPES], "reads only padding (rows -1, 32;"),
    "stack": (["stack", "Conv2d(3, 4, 3)", "MaxPool2d(2, 1, 1, 31)", *SHAPES],
              "stage 2 MaxPool2d(2, stride=1, padding=1, dilation=31): window 0 on the input's height of 30 reads only padding"),
    "train": (["train", "Conv2d(3, 4, 3)", "MaxPool2d(2, 1, 1, 31)", "Flatten()", "Linear(4, 10)", *SHAPES],
              "use MaxPool2d(2, stride=1, padding=1, dilation=30)"),
    "sweep": (["sweep", "pool", "-k", "2", "-p", "1", "--vary", "dilation=1,33", *SHAPES], "reads only padding"),
    "top": (["top", "Conv2d(3, 4, 3)", "MaxPool2d(2, 1, 1, 31)", *SHAPES], "stage 2 MaxPool2d"),
    "explain pool": (["explain", "pool", "-k", "2", "-s", "1", "-p", "1", "-d", "2", "--size", "1x5"],
                     "window 0 on the input's height of 1 reads only padding (rows -1, 1; the input is row 0)"),
    "explain stack": (["explain", "stack", "MaxPool2d(2, 1, 1, 2)", "--size", "5x1"], "the input's width of 1"),
    "demo pool": (["demo", "pool", "-k", "2", "-s", "1", "-p", "1", "-d", "2", "--input", "1 2 3"], "use --dilation 1"),
}


@pytest.mark.parametrize("command", UNREAD)
def test_a_max_pool_window_of_padding_only_is_refused_in_every_command(command, run_cli, tmp_path):
    argv, message = UNREAD[command]
    r = run_cli(*argv)
    assert_user_error(r, message)
    assert "no input value: PyTorch's MaxPool2d gives -inf there" in r.err
    assert not (tmp_path / "logs").exists()


def test_the_refusal_names_both_fixes_and_each_fits():
    cfg = PoolConfig(kernel_size=(2, 2), stride=(1, 3), padding=(0, 1), dilation=(1, 2), ceil_mode=True)
    with pytest.raises(ShapeError) as caught:
        output_shape(cfg, (1, 5, 1))
    assert "window 0 on the input's width of 1 reads only padding (columns -1, 1; the input is column 0)" in str(caught.value)
    assert str(caught.value).endswith("use --padding 0 or --dilation 1")
    assert [(f.padding, f.dilation) for f in caught.value.fits] == [((0, 0), (1, 2)), ((0, 1), (1, 1))]
    for fits in caught.value.fits:  # each fix fits: PyTorch's forward reads an input value in every window
        y = nn.MaxPool2d(2, (1, 3), fits.padding, fits.dilation, ceil_mode=True)(torch.rand(1, 1, 5, 1))
        assert output_shape(fits, (1, 5, 1)) == tuple(y.shape[1:]) and bool(torch.isfinite(y).all())
    # The same window in an AvgPool2d reads zeros of the padding: an average, no memory error, not refused.
    assert output_shape(PoolConfig(kernel_size=(2, 2), stride=(1, 1), padding=(1, 1), mode="avg"), (1, 1, 1)) == (1, 2, 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_unpool_and_views_on_cuda_match_cpu():
    from convlab.pictures import channel_view

    x = torch.rand(4, 3, 31, 33)
    cfg = PoolConfig(kernel_size=(3, 3), padding=(1, 1), ceil_mode=True)
    assert torch.equal(max_unpool(x.cuda(), cfg).cpu(), max_unpool(x, cfg))
    y = torch.randn(4, 6, 30, 30)
    assert torch.allclose(channel_view(y.cuda()).cpu(), channel_view(y))
