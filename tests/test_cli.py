"""The real CLI, end to end: event files read back with TensorBoard's own loader."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_user_error, grid_size, images, load_events, only_run

SHARED = ("--batch-size", "64")


def test_conv_logs_every_batch_with_tutorial_shapes(cifar, run_cli, tmp_path: Path):
    r = run_cli("conv", "--out-channels", "6", "--data-dir", cifar.root, "--logdir", tmp_path / "logs", "--run-name", "t")
    assert r.code == 0, r.err
    run_dir = tmp_path / "logs" / "t"
    acc = load_events(run_dir)
    assert {"input", "output"} <= set(acc.Tags()["images"])

    inputs, outputs = images(acc, "input"), images(acc, "output")
    assert [im.step for im in inputs] == [0, 1] and [im.step for im in outputs] == [0, 1]
    # 80 images in batches of 64: a full batch, then the last partial batch of 16.
    assert (inputs[0].height, inputs[0].width) == grid_size(64, 32, 32)
    assert (inputs[1].height, inputs[1].width) == grid_size(16, 32, 32)
    # 6 channels of 30x30 -> 2 RGB tiles per image: 128 tiles, then 32.
    assert (outputs[0].height, outputs[0].width) == grid_size(128, 30, 30) == (480, 240)
    assert (outputs[1].height, outputs[1].width) == grid_size(32, 30, 30)

    # The input grid holds the dataset's pixels, in order (TensorBoard truncates x*255).
    first, ninth = inputs[0].pixels[:32, :32], inputs[0].pixels[32:64, :32]
    assert np.abs(first.astype(int) - cifar.test_images[0]).max() <= 1
    assert np.abs(ninth.astype(int) - cifar.test_images[8]).max() <= 1
    assert np.abs(inputs[1].pixels[:32, 32:64].astype(int) - cifar.test_images[65]).max() <= 1

    assert "view it: convlab board --logdir" in r.out and "or: tensorboard --logdir" in r.out
    assert str(run_dir) in r.out and "Conv2d(3, 6, kernel_size=(3, 3), stride=(1, 1))" in r.out

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 2 and summary["images"] == 80
    assert (run_dir / "config.toml").read_text().startswith('command = "conv"')


def test_output_pixels_are_the_conv_output_through_the_reshape_view(cifar, run_cli, tmp_path):
    r = run_cli("conv", "--out-channels", "4", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "c4",
                "--seed", "7", "--max-batches", "1")
    assert r.code == 0, r.err
    out = images(load_events(tmp_path / "logs" / "c4"), "output")
    assert len(out) == 1
    # 4 channels -> one RGB tile + one grey tile per image: 128 tiles of 30x30.
    assert (out[0].height, out[0].width) == grid_size(128, 30, 30)
    torch.manual_seed(7)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.from_numpy(cifar.test_images[:1]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        y = conv(x)[0]
    expect_rgb = (y[:3].permute(1, 2, 0).numpy() * 255).clip(0, 255).astype(np.uint8)
    expect_grey = (y[3].numpy() * 255).clip(0, 255).astype(np.uint8)
    tile0, tile1 = out[0].pixels[:30, :30].astype(int), out[0].pixels[:30, 30:60].astype(int)
    assert np.abs(tile0 - expect_rgb).max() <= 1
    assert np.abs(tile1 - expect_grey[..., None]).max() <= 1


def test_pool_ceil_logs_maxpool(cifar, run_cli, tmp_path):
    r = run_cli("pool", "--kernel", "3", "--ceil", "--data-dir", cifar.root, "--logdir", "logs")
    assert r.code == 0, r.err
    run_dir = only_run(tmp_path / "logs")
    assert run_dir.name.startswith("maxpool-k3-s3-p0-ceil-")
    acc = load_events(run_dir)
    pooled = images(acc, "maxpool")
    assert [im.step for im in pooled] == [0, 1]
    assert (pooled[0].height, pooled[0].width) == grid_size(64, 11, 11)
    assert (pooled[1].height, pooled[1].width) == grid_size(16, 11, 11)
    # Max pooling never invents a value: the first output pixel is the max of its 3x3 window.
    window = cifar.test_images[0, :3, :3].astype(int).reshape(-1, 3).max(0)
    assert np.abs(pooled[0].pixels[0, 0].astype(int) - window).max() <= 1


def test_hparams_and_text_are_logged(cifar, run_cli, tmp_path):
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "hp", "--max-batches", "1")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "hp")
    tensors = set(acc.Tags()["tensors"])
    assert {"config/text_summary", "layer/text_summary"} <= tensors
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")
    content = b"".join(acc.PluginTagToContent("hparams").values())
    assert b"conv.out_channels" in content and b"conv.kernel_size" in content
    assert {"output/mean", "output/std"} <= set(acc.Tags()["scalars"])
    layer_text = acc.Tensors("layer/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "H_out = floor((32 + 2*0 - 1*(3-1) - 1) / 1 + 1) = 30" in layer_text


@pytest.mark.parametrize("channels, tiles", [(1, 1), (5, 3), (7, 3), (9, 3)])
def test_any_out_channels_never_fails(cifar, run_cli, tmp_path, channels, tiles):
    r = run_cli("conv", "-c", str(channels), "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "r")
    assert r.code == 0, r.err
    out = images(load_events(tmp_path / "logs" / "r"), "output")
    assert [(o.height, o.width) for o in out] == [grid_size(64 * tiles, 30, 30), grid_size(16 * tiles, 30, 30)]


def test_shapes_dataset_runs_offline(run_cli, tmp_path):
    r = run_cli("conv", "--dataset", "shapes", "--max-batches", "3", "--batch-size", "32", "--logdir", "logs",
                "-k", "5x3", "--padding", "same", "--dilation", "2")
    assert r.code == 0, r.err
    run_dir = only_run(tmp_path / "logs")
    assert run_dir.name.startswith("conv-c6-k5x3-s1-psame-d2-shapes-")
    out = images(load_events(run_dir), "output")
    assert [o.step for o in out] == [0, 1, 2]
    assert (out[0].height, out[0].width) == grid_size(64, 32, 32)  # 'same' keeps 32x32


def test_config_file_and_flags(cifar, run_cli, tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'[conv]\nout_channels = 3\nkernel_size = 5\n[data]\ndata_dir = "{cifar.root}"\nbatch_size = 10\n')
    r = run_cli("conv", "--config", cfg, "--kernel", "3", "--logdir", "logs", "--run-name", "cf")
    assert r.code == 0, r.err
    saved = (tmp_path / "logs" / "cf" / "config.toml").read_text()
    assert "out_channels = 3" in saved and "kernel_size = [3, 3]" in saved and "batch_size = 10" in saved
    out = images(load_events(tmp_path / "logs" / "cf"), "output")
    assert len(out) == 8  # 80 images / 10
    assert (out[0].height, out[0].width) == grid_size(10, 30, 30)


def test_dry_run_writes_nothing(run_cli, tmp_path):
    r = run_cli("pool", "--dry-run", "--kernel", "3", "--ceil", "--logdir", "logs")
    assert r.code == 0, r.err
    assert "ceil_mode = true" in r.out and "module: MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=True)\n" in r.out
    assert "(3, 32, 32) -> (3, 11, 11)" in r.out and "dry run" in r.out
    assert not (tmp_path / "logs").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "args, saved",
    [
        (["conv", "--in-channels", "3", "-c", "6", "-k", "5x3", "-s", "2", "-p", "1", "--padding-mode", "reflect", "-d", "2",
          "-g", "3", "--no-bias", "--init", "random"],
         ["in_channels = 3", "out_channels = 6", "kernel_size = [5, 3]", "stride = [2, 2]", "padding = [1, 1]",
          'padding_mode = "reflect"', "dilation = [2, 2]", "groups = 3", "bias = false", 'init = "random"']),
        (["pool", "-k", "2", "-s", "1", "-p", "1", "-d", "1", "--ceil", "--mode", "avg"],
         ["kernel_size = [2, 2]", "stride = [1, 1]", "ceil_mode = true", 'mode = "avg"', "unpool = false"]),
        (["pool", "--unpool"], ["unpool = true"]),
    ],
)
def test_every_option_reaches_its_config_key(run_cli, tmp_path, args, saved):
    """Each flag lands in the section and key it names, as a config file would set it."""
    shared = ["--views", "channels", "--scale", "minmax", "--view-images", "2", "--zoom", "3", "--dataset", "shapes",
              "--split", "train", "--data-dir", "dd", "--no-download", "-b", "8", "-n", "2", "--device", "cpu",
              "--seed", "5", "--logdir", "ll", "--run-name", "rn"]
    r = run_cli(*args, *shared, "--dry-run")
    assert r.code == 0, r.err
    toml = r.out.split("\n\n")
    section = {block.splitlines()[0]: block.splitlines()[1:] for block in toml if block.startswith("[")}
    assert set(saved) <= set(section[f"[{args[0]}]"]), section
    assert {'split = "train"', 'data_dir = "dd"', "download = false", "batch_size = 8", "max_batches = 2"} <= set(section["[data]"])
    assert section["[run]"] == ['device = "cpu"', "seed = 5", 'logdir = "ll"', 'run_name = "rn"']
    assert section["[views]"] == ['show = "channels"', 'scale = "minmax"', "images = 2", "zoom = 3"]
    assert not (tmp_path / "ll").exists()


def test_runs_are_never_overwritten(cifar, run_cli, tmp_path, monkeypatch):
    from datetime import datetime

    class SameSecond(datetime):  # both runs start in the same second, however slow the machine
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("convlab.runs.datetime", SameSecond)
    args = ("conv", "--data-dir", cifar.root, "--logdir", "logs", "--max-batches", "1", "-q")
    assert run_cli(*args).code == 0
    assert run_cli(*args).code == 0  # same parameters, same second: a second directory
    runs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert len(runs) == 2 and runs[1] == runs[0] + "-2"
    assert run_cli(*args, "--run-name", "mine").code == 0
    before = sorted((tmp_path / "logs" / "mine").iterdir())
    r = run_cli(*args, "--run-name", "mine")
    assert_user_error(r, "already exists")
    assert sorted((tmp_path / "logs" / "mine").iterdir()) == before


def _assert_user_error(r, message: str, tmp_path: Path):
    assert_user_error(r, message)
    logs = tmp_path / "logs"
    assert not logs.exists() or not any(logs.iterdir()), list(logs.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["conv", "--kernel", "0"], "kernel_size must be at least 1"),
        (["conv", "--stride", "0"], "stride must be at least 1"),
        (["conv", "--padding", "-1"], "padding must be 0 or more"),
        (["conv", "--kernel", "3x"], "cannot read '3x'"),
        (["conv", "--groups", "2"], "groups=2 must divide in_channels=3"),
        (["conv", "--groups", "4"], "groups=4 must divide out_channels=6"),
        (["conv", "--kernel", "33"], "kernel 33 does not fit the input's height: 32 + 2*0 padding = 32 < 33"),
        (["conv", "--in-channels", "1"], "in_channels=1 but the images have 3"),
        (["conv", "--padding", "same", "--stride", "2"], "padding 'same' needs stride 1"),
        (["pool", "--kernel", "3", "--padding", "2"], "pool padding 2x2 is too large"),
        (["conv", "--device", "tpu"], "unknown device 'tpu'"),
        (["conv", "--dataset", "mnistt"], "unknown dataset 'mnistt'"),
        (["conv", "--out-channels", "six"], "Invalid value for '--out-channels'"),
        (["conv", "--kernal", "3"], "No such option: --kernal"),
        (["conv", "--padding-mode", "mirror"], "mirror"),
        (["conv", "--config", "missing.toml"], "config file not found: missing.toml"),
        (["conv", "--run-name", "../up"], "not allowed"),
        (["conv", "--no-download"], "--no-download"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_leave_nothing(run_cli, tmp_path, args, message):
    _assert_user_error(run_cli(*args, "--logdir", "logs", "--data-dir", tmp_path / "empty"), message, tmp_path)


def test_unknown_config_key_is_one_line(run_cli, tmp_path):
    (tmp_path / "bad.toml").write_text("[conv]\nout_chanels = 3\n")
    _assert_user_error(run_cli("conv", "--config", "bad.toml", "--logdir", "logs"), "did you mean 'out_channels'", tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_gpu(run_cli, tmp_path):
    _assert_user_error(run_cli("conv", "--device", "cuda", "--logdir", "logs", "--dataset", "shapes"),
                       "no CUDA GPU is available", tmp_path)


def test_offline_cifar_is_one_line_with_the_fix(run_cli, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    r = run_cli("conv", "--logdir", "logs")
    _assert_user_error(r, "cannot download CIFAR10", tmp_path)
    assert "cifar-10-python.tar.gz" in r.err and "--dataset shapes" in r.err


def test_logdir_that_is_a_file(run_cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run_cli("conv", "--dataset", "shapes", "--logdir", "afile", "--max-batches", "1")
    assert_user_error(r, "is a file")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_run_matches_cpu(cifar, run_cli, tmp_path):
    for device in ("cpu", "cuda"):
        r = run_cli("conv", "--device", device, "--data-dir", cifar.root, "--logdir", "logs", "--run-name", device, "--seed", "1")
        assert r.code == 0, r.err
    cpu = images(load_events(tmp_path / "logs" / "cpu"), "output")
    gpu = images(load_events(tmp_path / "logs" / "cuda"), "output")
    assert [(g.step, g.height, g.width) for g in gpu] == [(c.step, c.height, c.width) for c in cpu]
    assert max(np.abs(g.pixels.astype(int) - c.pixels.astype(int)).max() for g, c in zip(gpu, cpu)) <= 1


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from convlab.__main__ import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    assert "conv" in out and "pool" in out


@pytest.mark.parametrize("args", [[], ["demo"], ["explain"]], ids=["convlab", "demo", "explain"])
def test_a_command_alone_prints_its_help_and_exits_0(run_cli, args):
    r = run_cli(*args)
    assert r.code == 0 and r.err == "", r.err
    assert f"Usage: {' '.join(['convlab', *args])} [OPTIONS] COMMAND [ARGS]..." in r.out


def test_python_m_convlab_and_version():
    r = subprocess.run([sys.executable, "-m", "convlab", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("convlab ")
    r = subprocess.run([sys.executable, "-m", "convlab", "conv", "--stride", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "convlab: error: stride must be at least 1, got 0x0"


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cifar10_copy_logs_157_steps(shared_cifar, run_cli, tmp_path):
    r = run_cli("conv", "--out-channels", "6", "--data-dir", shared_cifar, "--logdir", "logs", "--run-name", "real", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "real")
    assert [e.step for e in acc.Images("input")] == list(range(157))
    outputs = acc.Images("output")
    assert [e.step for e in outputs] == list(range(157))
    assert (outputs[0].height, outputs[0].width) == (480, 240)
    assert (outputs[-1].height, outputs[-1].width) == grid_size(32, 30, 30)  # last batch: 16 images


def test_a_closed_stdout_does_not_stop_the_run(tmp_path):
    """`convlab conv | head -1`: the reader goes away; the run still completes and exits 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        r = subprocess.run([sys.executable, "-m", "convlab", "conv", "--dataset", "shapes", "-n", "2",
                            "--views", "none", "--logdir", str(tmp_path / "logs")],
                           stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert r.returncode == 0 and r.stderr == ""
    summary = json.loads((only_run(tmp_path / "logs") / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 2
