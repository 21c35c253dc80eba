from pathlib import Path

import numpy as np
import pytest
import torch

from convlab.pictures import (
    LABEL_TOP,
    SEPARATOR,
    auto_zoom,
    channel_view,
    display_scale,
    kernel_view,
    label_left,
    reshape_view,
    tiles_per_image,
    upscale,
)

from conftest import assert_user_error, images, load_events


def test_multiple_of_three_is_exactly_the_tutorials_reshape():
    out = torch.randn(64, 6, 30, 30)
    view = reshape_view(out)
    assert view.shape == (128, 3, 30, 30)
    assert torch.equal(view, torch.reshape(out, (-1, 3, 30, 30)))


@pytest.mark.parametrize("channels, tiles", [(1, 1), (2, 2), (3, 1), (4, 2), (5, 3), (7, 3), (8, 4), (9, 3)])
def test_any_channel_count(channels, tiles):
    out = torch.randn(5, channels, 7, 4)
    view = reshape_view(out)
    assert tiles_per_image(channels) == tiles
    assert view.shape == (5 * tiles, 3, 7, 4)


def test_remainder_channels_become_grey_tiles_in_order():
    out = torch.randn(2, 5, 3, 3)
    view = reshape_view(out).reshape(2, 3, 3, 3, 3)  # image, tile, rgb, h, w
    for i in range(2):
        assert torch.equal(view[i, 0], out[i, 0:3])  # channels 0,1,2 as RGB
        for tile, ch in ((1, 3), (2, 4)):
            for rgb in range(3):
                assert torch.equal(view[i, tile, rgb], out[i, ch])  # grey: same value in R, G, B


def test_partial_batch():
    assert reshape_view(torch.randn(16, 6, 30, 30)).shape == (32, 3, 30, 30)


# ----------------------------------------------------------------------------- honest views


def test_symmetric_scale_maps_zero_to_mid_grey_and_keeps_the_sign():
    tile = torch.tensor([[[[-2.0, 0.0, 1.0, 2.0]]]])
    assert display_scale(tile, "symmetric").flatten().tolist() == [0.0, 0.5, 0.75, 1.0]
    # Largest |value| is negative: it goes to black, and +1 sits between grey and white.
    assert display_scale(torch.tensor([[[[-4.0, 0.0, 1.0]]]]), "symmetric").flatten().tolist() == [0.0, 0.5, 0.625]


def test_minmax_and_raw_scales():
    tile = torch.tensor([[[[-2.0, 0.0, 2.0, 6.0]]]])
    assert display_scale(tile, "minmax").flatten().tolist() == [0.0, 0.25, 0.5, 1.0]
    # raw: as TensorBoard shows floats, negatives black and values over 1 white.
    assert display_scale(torch.tensor([[[[-2.0, 0.25, 6.0]]]]), "raw").flatten().tolist() == [0.0, 0.25, 1.0]


def test_each_tile_is_scaled_on_its_own_and_flat_tiles_are_grey():
    tiles = torch.stack([torch.full((1, 2, 2), 0.0), torch.tensor([[[0.0, 1.0], [2.0, 4.0]]]), torch.full((1, 2, 2), 3.0)])
    sym, mm = display_scale(tiles, "symmetric"), display_scale(tiles, "minmax")
    assert torch.equal(sym[0], torch.full((1, 2, 2), 0.5))  # all zero: mid-grey, no division by zero
    assert sym[1].flatten().tolist() == [0.5, 0.625, 0.75, 1.0]
    assert torch.equal(sym[2], torch.ones(1, 2, 2))
    assert mm[1].flatten().tolist() == [0.0, 0.25, 0.5, 1.0]
    assert torch.equal(mm[2], torch.full((1, 2, 2), 0.5))  # no contrast


def test_upscale_is_nearest_neighbour_blocks():
    t = torch.arange(6.0).reshape(1, 1, 2, 3)
    up = upscale(t, 3)
    assert up.shape == (1, 1, 6, 9)
    for i in range(6):
        for j in range(9):
            assert up[0, 0, i, j] == t[0, 0, i // 3, j // 3]
    assert auto_zoom(30, 30, 6) == 3 and auto_zoom(3, 3, 6) == 22 and auto_zoom(64, 64, 1) == 1
    assert auto_zoom(30, 30, 64) == 1  # 64 channels of 30x30 already make a wide picture


def _tile(grid: torch.Tensor, row: int, col: int, h: int, w: int, pad: int = 2) -> torch.Tensor:
    top, left = pad + row * (h + pad), pad + col * (w + pad)
    return grid[0, :, top : top + h, left : left + w]


def test_channel_view_rows_are_images_columns_are_channels():
    torch.manual_seed(0)
    y = torch.randn(10, 5, 7, 6)
    grid = channel_view(y, images=3, scale="symmetric", zoom=2)
    assert grid.shape == (1, 3, 2 + 3 * (14 + 2), 2 + 5 * (12 + 2))
    for r in range(3):
        for c in range(5):
            expect = upscale(display_scale(y[r : r + 1, c : c + 1], "symmetric"), 2)[0, 0]
            tile = _tile(grid, r, c, 14, 12)
            for rgb in range(3):  # grey: the same value in R, G and B
                assert torch.equal(tile[rgb], expect)
    # The separator is the separator colour, which is not grey.
    assert grid[0, :, 0, 0].tolist() == pytest.approx(list(SEPARATOR))
    assert len(set(SEPARATOR)) == 3


@pytest.mark.parametrize("pixels", [False, True])
def test_labelled_channel_view_is_the_grid_with_numbers_around_it(pixels):
    torch.manual_seed(1)
    y = torch.randn(3, 12, 8, 8)
    plain = channel_view(y, images=3, zoom=4, pixels=pixels)
    labelled = channel_view(y, images=3, zoom=4, pixels=pixels, labels=True)
    top, left = LABEL_TOP, label_left(3)
    assert labelled.dtype == plain.dtype and labelled.shape == (1, 3, top + plain.shape[2], left + plain.shape[3])
    assert torch.equal(labelled[..., top:, left:], plain)
    margin = labelled if pixels else (labelled * 255).round()
    white = 255
    # Ink above each column (its channel number) and left of each row (its image number), white elsewhere.
    for c in range(12):
        x = left + 2 + c * 34
        assert (margin[0, 0, :top, x : x + 32] < white).any(), c
    for r in range(3):
        y0 = top + 2 + r * 34
        assert (margin[0, 0, y0 : y0 + 32, :left] < white).any(), r
    # Small numbers on white: most of each margin is paper.
    assert (margin[0, 0, :top] == white).float().mean() > 0.7 and (margin[0, 0, top:, :left] == white).float().mean() > 0.7


def test_channel_view_of_fewer_images_than_asked():
    assert channel_view(torch.randn(2, 3, 4, 4), images=4, zoom=1).shape == (1, 3, 2 + 2 * 6, 2 + 3 * 6)


@pytest.mark.parametrize("out, cin, kh, kw", [(6, 3, 3, 3), (4, 2, 5, 3), (1, 1, 3, 3), (2, 3, 1, 1)])
def test_kernel_images_have_the_layers_shape(out, cin, kh, kw):
    weight = torch.randn(out, cin, kh, kw)
    grid = kernel_view(weight, "symmetric", zoom=4)
    tiles, columns = (out, out) if cin == 3 else (out * cin, cin)
    rows = tiles // columns
    if tiles == 1:
        assert grid.shape == (1, 3, 4 * kh, 4 * kw)
        return
    assert grid.shape == (1, 3, 2 + rows * (4 * kh + 2), 2 + columns * (4 * kw + 2))
    if cin == 3:
        # RGB tile per output channel, scaled as one image: R, G, B = weights on R, G, B input.
        for o in range(out):
            expect = upscale(display_scale(weight[o : o + 1], "symmetric"), 4)[0]
            assert torch.equal(_tile(grid, 0, o, 4 * kh, 4 * kw), expect)
    else:
        for o in range(out):
            scaled = display_scale(weight[o : o + 1], "symmetric")[0]  # one scale per output channel
            for i in range(cin):
                assert torch.equal(_tile(grid, o, i, 4 * kh, 4 * kw)[0], upscale(scaled[i], 4))


def test_symmetric_mid_grey_survives_tensorboard(cifar, run_cli, tmp_path):
    """End to end: a zero response is mid-grey in the logged PNG; the channels grid has its shape."""
    r = run_cli("conv", "--init", "sobel-x,sobel-y", "--data-dir", cifar.root, "--logdir", "logs",
                "--run-name", "z", "--max-batches", "2", "--zoom", "2", "--view-images", "3")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "z")
    views = images(acc, "channels")
    assert [v.step for v in views] == [0, 1]
    # Numbered: channels above, images on the left, in margins outside the grid.
    top, left = LABEL_TOP, label_left(3)
    assert (views[0].height, views[0].width) == (top + 2 + 3 * 62, left + 2 + 2 * 62)
    # The fixture's images are flat 4x4 blocks: inside a block the gradient is exactly 0.
    x = torch.from_numpy(cifar.test_images[:1]).permute(0, 3, 1, 2).float() / 255
    y = torch.nn.functional.conv2d(x, torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).expand(1, 3, 3, 3) / 3)[0, 0]
    flat = (y == 0).nonzero()
    assert len(flat) > 50
    tile = views[0].pixels[top + 2 : top + 2 + 60, left + 2 : left + 2 + 60]
    for i, j in flat[:50].tolist():
        assert tile[2 * i, 2 * j].tolist() in ([127] * 3, [128] * 3)
    kernels = images(acc, "kernels")
    assert [k.step for k in kernels] == [0]  # logged once
    assert (kernels[0].height, kernels[0].width) == (2 + 6 + 2, 2 + 2 * (6 + 2))  # 2 RGB tiles of 3x3, zoom 2


def test_views_none_logs_only_the_tutorial_tags(cifar, run_cli, tmp_path):
    r = run_cli("conv", "--views", "none", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "n", "-n", "1")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "n")
    assert set(acc.Tags()["images"]) == {"input", "output"}
    assert acc.Tags()["histograms"] == []
    assert "logged 1 step(s) of input, output to" in r.out


def test_views_from_a_config_file(cifar, run_cli, tmp_path):
    (tmp_path / "v.toml").write_text('[views]\nshow = ["stats", "kernels"]\nscale = "raw"\n')
    r = run_cli("conv", "--config", "v.toml", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "v", "-n", "1")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "v")
    assert set(acc.Tags()["images"]) == {"input", "output", "kernels"}
    saved = (tmp_path / "logs" / "v" / "config.toml").read_text()
    assert '[views]\nshow = "stats,kernels"\nscale = "raw"' in saved


def test_pool_views_default_to_channels_and_stats(cifar, run_cli, tmp_path):
    r = run_cli("pool", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "p", "-n", "1")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "p")
    assert set(acc.Tags()["images"]) == {"input", "maxpool", "channels"}
    assert acc.Tags()["histograms"] == ["output/histogram"]


def test_activation_statistics_per_step(cifar, run_cli, tmp_path):
    r = run_cli("conv", "--seed", "3", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "s")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "s")
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(3, 6, 3)
    x = torch.from_numpy(cifar.test_images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ys = [conv(x[:64]), conv(x[64:])]
    hist = acc.Histograms("output/histogram")
    assert [h.step for h in hist] == [0, 1]
    for h, y in zip(hist, ys):
        assert h.histogram_value.num == y.numel()
        assert sum(h.histogram_value.bucket) == y.numel()
        assert h.histogram_value.min == pytest.approx(y.min().item(), abs=1e-5)
        assert h.histogram_value.max == pytest.approx(y.max().item(), abs=1e-5)
    for tag, fn in (("output/max", torch.max), ("output/min", torch.min)):
        got = [e.value for e in acc.Scalars(tag)]
        assert got == pytest.approx([fn(y).item() for y in ys], abs=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["conv", "--views", "channels,bogus"], "unknown view 'bogus'"),
        (["pool", "--views", "kernels"], "view 'kernels' does not apply to 'convlab pool'"),
        (["conv", "--views", "none,stats"], "'none' cannot be combined"),
        (["conv", "--views", "channels,,stats"], "empty name"),
        (["conv", "--scale", "log"], "log"),
        (["conv", "--zoom", "0"], "zoom must be at least 1"),
        (["conv", "--view-images", "0"], "views.images must be at least 1"),
    ],
)
def test_bad_view_options_are_one_line(run_cli, tmp_path, args, message):
    r = run_cli(*args, "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_ready_experiment_plans(path):
    from convlab.config import read_config_file, resolve
    from convlab.planning import plan

    text = path.read_text()
    command = "train" if 'command = "train"' in text else "stack" if "[stack]" in text else "pool" if "[pool]" in text else "conv"
    sweep = "[sweep]" in text
    assert read_config_file(path, command, sweep=sweep)
    if sweep:  # a sweep: every combination resolved and planned
        from convlab.sweep import prepare

        assert len(prepare(command, {command: {}}, path, []).runs) > 1
    elif command == "train":  # a training file (configs/edges-emerge.toml): planned as convlab train plans it
        from convlab.train.plan import plan_training

        assert plan_training(resolve(command, config_file=path)).stack.stages
    else:
        plan(resolve(command, config_file=path))


@pytest.mark.realdata
def test_sobel_x_lights_up_vertical_edges_on_real_images(shared_cifar, run_cli, tmp_path):
    r = run_cli("conv", "--config", Path(__file__).parents[1] / "configs" / "edges.toml", "--data-dir", shared_cifar,
                "--logdir", "logs", "--run-name", "edges", "-n", "1", "--view-images", "16", "--zoom", "1")
    assert r.code == 0, r.err
    labelled = images(load_events(tmp_path / "logs" / "edges"), "channels")[0].pixels[..., 0].astype(float)
    grid = labelled[LABEL_TOP:, label_left(16):]  # without the channel and image numbers
    # Columns: identity, sobel-x, sobel-y, laplacian; 16 rows of 32x32 tiles, 2-pixel separators.
    def tiles(col):
        return [grid[2 + r * 34 : 34 + r * 34, 2 + col * 34 : 34 + col * 34] for r in range(16)]

    def across_and_along(t):  # change across columns vs down rows
        return np.abs(np.diff(t, axis=1)).mean(), np.abs(np.diff(t, axis=0)).mean()

    # A vertical edge's response is a vertical streak: it changes across columns, not down them.
    sx = [across_and_along(t) for t in tiles(1)]
    sy = [across_and_along(t) for t in tiles(2)]
    assert sum(a > b for a, b in sx) >= 12 and sum(b > a for a, b in sy) >= 12


@pytest.mark.parametrize("n, c, h, w, columns, padding", [
    (1, 1, 5, 7, 4, 2), (1, 3, 4, 4, 1, 2), (2, 1, 3, 3, 8, 2), (6, 3, 4, 5, 4, 2), (7, 1, 2, 9, 3, 1), (12, 3, 6, 6, 12, 0),
])
def test_tile_grid_lays_tiles_out_as_make_grid(n, c, h, w, columns, padding):
    from torchvision.utils import make_grid

    from convlab.pictures import SEPARATOR, tile_grid

    tiles = torch.rand(n, c, h, w)
    expected = make_grid(tiles, nrow=columns, padding=padding, pad_value=float("nan"))
    colour = torch.tensor(SEPARATOR).view(3, 1, 1)
    expected = torch.where(expected.isnan(), colour, expected).unsqueeze(0)
    got = tile_grid(tiles, columns, padding)
    assert got.shape == expected.shape and torch.equal(got, expected)


def test_a_run_imports_no_torchvision_for_its_views():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from convlab.pictures import channel_view, kernel_view\n"
        "channel_view(torch.rand(4, 6, 30, 30)); kernel_view(torch.rand(6, 3, 3, 3))\n"
        "print('torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("n, c, images, scale, zoom", [(4, 6, 4, "symmetric", None), (3, 5, 2, "minmax", 2), (1, 1, 4, "raw", 3), (7, 4, 7, "symmetric", 1)])
def test_the_channels_picture_in_pixels_is_what_the_writer_makes_of_the_floats(n, c, images, scale, zoom):
    from convlab.pictures import to_pixels
    from convlab.writer import image_grid

    y = torch.randn(n, c, 9, 11)
    floats = channel_view(y, images, scale, zoom)
    pixels = channel_view(y, images, scale, zoom, pixels=True)
    assert pixels.dtype == torch.uint8 and pixels.shape == floats.shape
    assert torch.equal(pixels, to_pixels(floats))
    assert torch.equal(image_grid(pixels), image_grid(floats))  # the same PNG either way


def test_a_convtranspose2ds_kernels_are_its_stamps_one_row_per_input_channel(run_cli, tmp_path):
    """ConvTranspose2d's weight is (in, out/groups, kH, kW): each input channel's row is the stamp one of its
    values adds to each output channel of its group, drawn as stored (an RGB tile per input channel where it
    gives 3 channels), as the logged picture, read back, shows. Its kernels are shown where a Conv2d's are:
    by default the first of these stages' only, every one's when --views names them."""
    from convlab.config import overrides, resolve
    from convlab.pictures import as_pixels
    from convlab.planning import plan

    layers = ["Conv2d(3, 4, 3, stride=2)", "ConvTranspose2d(4, 3, 2, stride=2)", "ConvTranspose2d(3, 4, 3, groups=1)",
              "ConvTranspose2d(4, 4, 3, groups=2)"]
    settings = dict(dataset="shapes", max_batches=1, batch_size=4, logdir="logs")
    assert run_cli("stack", *layers, "--dataset", "shapes", "-n", "1", "-b", "4", "--logdir", "logs", "--run-name", "d").code == 0
    assert [t for t in load_events(tmp_path / "logs" / "d").Tags()["images"] if t.endswith("/kernels")] == ["01-conv2d/kernels"]
    r = run_cli("stack", *layers, "--views", "kernels,channels", "--dataset", "shapes", "-n", "1", "-b", "4", "--logdir", "logs",
                "--run-name", "k")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "k")
    stages = plan(resolve("stack", overrides("stack", {**settings, "layers": layers, "show": "kernels,channels"}))).stages
    for stage in stages[1:]:
        weight = stage.module.weight.detach()
        (logged,) = images(acc, f"{stage.prefix}/kernels")
        assert np.array_equal(logged.pixels, as_pixels(kernel_view(weight)))
        rows, tiles, kh, kw = weight.shape
        zoom = auto_zoom(kh, kw, rows if tiles == 3 else tiles)
        if tiles == 3:  # 4 input channels, 3 outputs: one RGB tile per input channel, in a row
            assert (logged.height, logged.width) == (2 + kh * zoom + 2, 2 + rows * (kw * zoom + 2))
            assert len({tuple(p) for p in logged.pixels[2 + kh * zoom // 2, 2 : 2 + kw * zoom].tolist()}) > 1
        else:  # one row per input channel, a grey tile per output channel of its group
            assert (logged.height, logged.width) == (2 + rows * (kh * zoom + 2), 2 + tiles * (kw * zoom + 2))
    assert tuple(stages[3].module.weight.shape) == (4, 2, 3, 3)  # groups=2: 4 rows of 2 tiles
    # A Conv2d's kernels: rows are output channels (its weight is (out, in/groups, kH, kW)), unchanged.
    (first,) = images(acc, "01-conv2d/kernels")
    assert np.array_equal(first.pixels, as_pixels(kernel_view(stages[0].module.weight.detach())))
