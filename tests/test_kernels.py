"""Named kernels and --weights: what the layer computes with them, pixel by pixel."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convlab.config import dump_toml, resolve
from convlab.kernels import INIT_NAMES, KERNEL_NAMES, KernelError, kernel
from convlab.layers import build_layer
from convlab.stages import ConvConfig

from conftest import assert_user_error, images, load_events


def conv_for(init: str, in_channels: int = 3, **kw) -> torch.nn.Conv2d:
    out = len(init.split(","))
    return build_layer(ConvConfig(out_channels=out, init=init, **kw), in_channels)


def test_the_issue_asks_for_these_kernels():
    assert {"sobel-x", "sobel-y", "laplacian", "gaussian", "box", "sharpen", "emboss", "identity"} <= set(KERNEL_NAMES)
    assert INIT_NAMES[0] == "random"


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_named_kernels_sum_as_the_classics_do(name):
    k = torch.tensor(kernel(name))
    assert k.shape == (3, 3)
    expected_sum = 0.0 if name in ("sobel-x", "sobel-y", "laplacian") else 1.0
    assert k.sum().item() == pytest.approx(expected_sum)


def test_gaussian_and_box_fit_any_size():
    assert torch.allclose(torch.tensor(kernel("gaussian")), torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    g5 = torch.tensor(kernel("gaussian", (5, 3)))
    assert g5.shape == (5, 3) and g5.sum().item() == pytest.approx(1.0)
    assert torch.allclose(g5[:, 1] / g5[0, 1], torch.tensor([1.0, 4, 6, 4, 1]))
    assert torch.allclose(torch.tensor(kernel("box", (2, 4))), torch.full((2, 4), 1 / 8))
    assert torch.tensor(kernel("identity", (5, 5)))[2, 2] == 1 and torch.tensor(kernel("identity", (5, 5))).sum() == 1
    with pytest.raises(KernelError, match="odd kernel size"):
        kernel("identity", (4, 4))
    with pytest.raises(KernelError, match="sobel-x is a 3x3 filter"):
        kernel("sobel-x", (5, 5))
    with pytest.raises(KernelError, match="unknown kernel 'sobel'"):
        kernel("sobel")


def test_identity_reproduces_the_input():
    x = torch.rand(2, 3, 9, 7)
    conv = conv_for("identity,identity,identity", groups=3, padding=(1, 1))
    with torch.no_grad():
        assert torch.equal(conv(x), x)
    assert torch.equal(conv.bias, torch.zeros(3))
    # Without groups each named kernel sees the average of the input channels: the grey image.
    conv = conv_for("identity", padding=(1, 1))
    with torch.no_grad():
        assert torch.allclose(conv(x), x.mean(1, keepdim=True), atol=1e-6)


def test_sobel_x_responds_at_a_vertical_edge_and_nowhere_else():
    x = torch.zeros(1, 3, 8, 10)
    x[..., 5:] = 1.0  # dark left half, bright right half: one vertical edge between columns 4 and 5
    conv = conv_for("sobel-x,sobel-y")
    with torch.no_grad():
        y = conv(x)[0]
    # Output column j sees input columns j..j+2: the edge is inside for j = 3 and 4, where
    # sobel-x gives 1+2+1 = 4 (positive: brighter to the right). K/3 per channel rounds.
    edge = torch.zeros(6, 8)
    edge[:, 3:5] = 4.0
    assert torch.allclose(y[0], edge, atol=1e-6)
    assert torch.allclose(y[1], torch.zeros(6, 8), atol=1e-6)  # sobel-y: no horizontal edge
    # Transposed: a horizontal edge lights sobel-y and not sobel-x.
    with torch.no_grad():
        yt = conv(x.transpose(2, 3))[0]
    assert torch.allclose(yt[0], torch.zeros(8, 6), atol=1e-6) and torch.allclose(yt[1], edge.T, atol=1e-6)


def test_random_channels_in_a_list_keep_pytorchs_init():
    torch.manual_seed(5)
    mixed = conv_for("random,sobel-x,random")
    torch.manual_seed(5)
    plain = build_layer(ConvConfig(out_channels=3), 3)
    assert torch.equal(mixed.weight[[0, 2]], plain.weight[[0, 2]]) and torch.equal(mixed.bias[[0, 2]], plain.bias[[0, 2]])
    assert torch.equal(mixed.weight[1], torch.tensor(kernel("sobel-x")).expand(3, 3, 3) / 3)
    assert mixed.bias[1] == 0


def test_init_names_set_out_channels_and_round_trip(tmp_path: Path):
    exp = resolve("conv", {"conv": {"init": "Sobel-X, sobel-y,laplacian"}})
    assert exp.layer.out_channels == 3 and exp.layer.init == "sobel-x,sobel-y,laplacian"
    f = tmp_path / "c.toml"
    f.write_text(dump_toml(exp))
    assert resolve("conv", config_file=f) == exp
    f.write_text('[conv]\ninit = ["gaussian", "box"]\n')
    assert resolve("conv", config_file=f).layer.out_channels == 2


def test_identity_end_to_end_output_tag_equals_the_input(cifar, run_cli, tmp_path):
    r = run_cli("conv", "--init", "identity,identity,identity", "--groups", "3", "--padding", "1",
                "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "id", "-n", "1")
    assert r.code == 0, r.err
    assert "weights: identity, identity, identity" in r.out
    acc = load_events(tmp_path / "logs" / "id")
    assert images(acc, "output")[0].pixels.tolist() == images(acc, "input")[0].pixels.tolist()


def _cli_error(run_cli, tmp_path, *args):
    r = run_cli("conv", *args, "--dataset", "shapes", "--logdir", "logs", "-n", "1")
    assert_user_error(r, "")
    assert not (tmp_path / "logs").exists()
    return r.err


def test_weights_from_npy_and_pt(run_cli, tmp_path):
    w = torch.randn(4, 3, 3, 3)
    np.save(tmp_path / "w.npy", w.numpy())
    torch.save(w, tmp_path / "w.pt")
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.copy_(w)
    torch.save(conv.state_dict(), tmp_path / "sd.pt")
    for name in ("w.npy", "w.pt", "sd.pt"):
        layer = build_layer(ConvConfig(out_channels=4, weights=str(tmp_path / name)), 3)
        assert torch.equal(layer.weight, w)
        expect_bias = conv.bias if name == "sd.pt" else torch.zeros(4)
        assert torch.equal(layer.bias, expect_bias)
    r = run_cli("conv", "--weights", tmp_path / "w.npy", "-c", "4", "--dataset", "shapes", "--logdir", "logs",
                "-n", "1", "--run-name", "w")
    assert r.code == 0, r.err
    assert "weights: loaded from" in r.out


@pytest.mark.parametrize(
    "shape, args, message",
    [
        ((6, 3, 5, 5), [], "holds weights of shape (6, 3, 5, 5), but this layer's weight is (out_channels, in_channels/groups, kH, kW) = (6, 3, 3, 3)"),
        ((3, 3), [], "holds weights of shape (3, 3)"),
        ((6, 3, 3, 3), ["--groups", "3"], "= (6, 1, 3, 3)"),
    ],
)
def test_bad_weights_shapes_fail_cleanly(run_cli, tmp_path, shape, args, message):
    np.save(tmp_path / "bad.npy", np.zeros(shape, dtype=np.float32))
    assert message in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "bad.npy", *args)


def test_bad_weights_files_fail_cleanly(run_cli, tmp_path):
    assert "--weights file not found" in _cli_error(run_cli, tmp_path, "--weights", "nope.npy")
    (tmp_path / "w.txt").write_text("1 2 3")
    assert "expected a .npy or .pt file" in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "w.txt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert "cannot read --weights" in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "junk.pt")
    torch.save({"w": torch.zeros(6, 3, 3, 3)}, tmp_path / "nokey.pt")
    assert "without a 'weight' entry" in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "nokey.pt")
    nan = torch.zeros(6, 3, 3, 3)
    nan[0, 0, 0, 0] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    assert "NaN or infinite" in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "nan.pt")
    torch.save(torch.nn.Conv2d(3, 6, 3).state_dict(), tmp_path / "sd.pt")
    assert "--no-bias" in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "sd.pt", "--no-bias")


def _state(weight, bias=None):
    return {"weight": weight, "bias": bias if bias is not None else torch.zeros(6)}


@pytest.mark.parametrize(
    "saved, message",
    [
        (_state(torch.zeros(6, 3, 3, 3), torch.tensor([0, 0, float("nan"), 0, 0, 0])), "its bias holds NaN or infinite values (1 NaN of 6)"),
        (_state(torch.full((6, 3, 3, 3), 3e38)), "would overflow float32"),
        (_state(torch.full((6, 3, 3, 3), 2e37)), "would overflow float32"),  # each fits, their sum does not
        (torch.quantize_per_tensor(torch.zeros(6, 3, 3, 3), 0.1, 0, torch.qint8), "its weight is a quantized tensor"),
        (torch.zeros(6, 3, 3, 3).to_sparse(), "its weight is a sparse tensor (sparse_coo)"),
        (_state(torch.zeros(6, 3, 3, 3), torch.zeros(6).to_sparse()), "its bias is a sparse tensor (sparse_coo)"),
        ({"weight": [1, 2, 3]}, "holds a list as its weight, not a tensor"),
    ],
)
def test_weights_that_would_fail_mid_run_are_refused_before_it(run_cli, tmp_path, saved, message):
    torch.save(saved, tmp_path / "w.pt")
    assert message in _cli_error(run_cli, tmp_path, "--weights", tmp_path / "w.pt")
    assert not (tmp_path / "logs").exists()


def test_large_finite_weights_that_fit_still_run(run_cli, tmp_path):
    torch.save(_state(torch.full((6, 3, 3, 3), 1e36)), tmp_path / "w.pt")
    r = run_cli("conv", "--dataset", "shapes", "-n", "1", "-b", "2", "--weights", tmp_path / "w.pt", "-q")
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "sobel-x", "-c", "6"], "--init names 1 kernel(s) (sobel-x) but out_channels=6"),
        (["--init", "sobel-z"], "unknown kernel 'sobel-z'"),
        (["--init", "laplacian", "-k", "5"], "laplacian is a 3x3 filter"),
        (["--init", "sobel-x", "--weights", "w.npy"], "use one of them"),
    ],
)
def test_bad_init_is_one_line(run_cli, tmp_path, args, message):
    assert message in _cli_error(run_cli, tmp_path, *args)


def test_gaussian_blurs_like_its_formula():
    x = torch.rand(1, 3, 6, 6)
    conv = conv_for("gaussian")
    g = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    with torch.no_grad():
        assert torch.allclose(conv(x), F.conv2d(x.mean(1, keepdim=True), g.view(1, 1, 3, 3)), atol=1e-6)
