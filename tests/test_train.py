"""convlab train: a small stack learns the built-in shapes; what TensorBoard shows is read back
with its own loader; model.pt round-trips through convlab stack; interruptions and a diverging
loss end in one line with the weights kept."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convlab
from convlab.__main__ import main as convlab_main
from convlab.config import Interrupted, resolve
from convlab.interrupts import stop_signals_between_steps
from convlab.pictures import kernel_view
from convlab.snapshots import kernel_zoom
from convlab.train import plan_training
from convlab.writer import image_grid

from conftest import assert_user_error, images, load_events, only_run

# A small stack that reliably gets well above chance (10%) on shapes in 200 Adam steps
# (57-70% on 256 test images over seeds 0-3), in about 3 s on one thread.
LAYERS = ("Conv2d(3, 8, 5, stride=2, padding=2)", "ReLU()", "MaxPool2d(4)", "Flatten()", "Linear(128, 10)")
STEPS = 200
RUN = (
    "train", *LAYERS, "--dataset", "shapes", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.01",
    "--max-steps", str(STEPS), "--eval-every", "100", "--eval-batches", "8", "--snapshot-every", "75",
)


def _in_process(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            convlab_main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run shared by the tests that read it."""
    logdir = tmp_path_factory.mktemp("train") / "logs"
    code, out, err = _in_process(*RUN, "--logdir", logdir, "--run-name", "small")
    assert code == 0, (out, err)
    run_dir = logdir / "small"
    return run_dir, out, load_events(run_dir), json.loads((run_dir / "summary.json").read_text())


def test_the_loss_goes_down_and_accuracy_rises_well_above_chance(trained):
    run_dir, out, acc, summary = trained
    loss = [s.value for s in acc.Scalars("train/loss")]
    assert [s.step for s in acc.Scalars("train/loss")] == list(range(1, STEPS + 1))
    assert len(acc.Scalars("train/accuracy")) == STEPS
    assert np.mean(loss[-20:]) < 0.6 * np.mean(loss[:20]), (loss[:20], loss[-20:])
    accuracy = acc.Scalars("test/accuracy")
    assert [s.step for s in accuracy] == [100, 200]
    assert accuracy[-1].value > 0.35  # chance is 0.1
    assert summary["status"] == "complete" and summary["steps"] == STEPS
    assert summary["test_accuracy"] == pytest.approx(accuracy[-1].value, abs=1e-6)
    assert summary["eval_images"] == 256 and summary["eval_set"] == "shapes/test"
    last = out.strip().splitlines()[-3]
    assert last.startswith(f"test accuracy {summary['test_accuracy']:.1%}") and f"weights: {run_dir / 'model.pt'}" in last


def test_snapshots_and_evaluations_at_the_steps_asked(trained):
    _, _, acc, _ = trained
    snapshots = [0, 75, 150, 200]
    for tag in ("input", "01-conv2d", "01-conv2d/kernels", "05-linear"):
        assert [im.step for im in acc.Images(tag)] == snapshots, tag
    assert [s.step for s in acc.Scalars("test/loss")] == [100, 200]
    assert [im.step for im in acc.Images("test/confusion")] == [100, 200]
    # The probe images are the same at every snapshot; what the first stage makes of them changes.
    probe = images(acc, "input")
    assert all(np.array_equal(probe[0].pixels, p.pixels) for p in probe)
    first = images(acc, "01-conv2d")
    assert not np.array_equal(first[0].pixels, first[-1].pixels)
    texts = acc.Tags()["tensors"]
    assert {"layer/text_summary", "training/text_summary", "config/text_summary"} <= set(texts)
    assert acc.Graph().node[-1].name == "output" and len(acc.Graph().node) == 1 + 4 + len(LAYERS) + 1  # input, 2 weights and 2 biases, stages, output


def _kernel_pixels(weight: torch.Tensor, limit: float) -> np.ndarray:
    return image_grid(kernel_view(weight, zoom=kernel_zoom(tuple(weight.shape)), limit=limit)).numpy()


def test_kernels_are_on_one_scale_and_the_last_snapshot_is_the_saved_model(trained):
    run_dir, _, acc, summary = trained
    limit = summary["kernel_scale"]["01-conv2d/kernels"]
    kernels = images(acc, "01-conv2d/kernels")
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert list(state) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert np.array_equal(kernels[-1].pixels, _kernel_pixels(state["0.weight"], limit))
    # Step 0 shows the seeded initial weights on the same range: the largest |weight| is black or white.
    exp = resolve("train", {"stack": {"layers": LAYERS}, "data": {"dataset": "shapes"}})
    initial = plan_training(exp).stack.stages[0].module.weight
    assert limit == pytest.approx(float(initial.detach().abs().max()))
    assert np.array_equal(kernels[0].pixels, _kernel_pixels(initial, limit))
    assert not np.array_equal(kernels[0].pixels, kernels[-1].pixels)
    # What training added: nothing at step 0 (all mid-grey), then the kernels minus step 0's, on the same range.
    change = images(acc, "01-conv2d/kernels-change")
    assert [im.step for im in change] == [0, 75, 150, 200]
    assert np.array_equal(change[0].pixels, _kernel_pixels(torch.zeros_like(initial), limit))
    assert np.array_equal(change[-1].pixels, _kernel_pixels(state["0.weight"] - initial.detach(), limit))


def test_model_pt_round_trips_through_convlab_stack(trained, run_cli, tmp_path):
    run_dir, _, _, _ = trained
    r = run_cli("stack", *LAYERS, "--dataset", "shapes", "--weights", run_dir / "model.pt", "--max-batches", "1",
                "--views", "kernels", "--logdir", "logs")
    assert r.code == 0, r.err
    assert f"weights: 4 tensor(s) from {run_dir / 'model.pt'}, matched by order and shape" in r.out
    shown = images(load_events(only_run(tmp_path / "logs")), "01-conv2d/kernels")
    weight = torch.load(run_dir / "model.pt", weights_only=True)["0.weight"]
    assert np.array_equal(shown[0].pixels, image_grid(kernel_view(weight)).numpy())


def test_init_weights_starts_from_saved_weights(trained, run_cli, tmp_path):
    run_dir, _, _, _ = trained
    r = run_cli(*RUN[:-8], "--max-steps", "1", "--eval-batches", "1", "--init-weights", run_dir / "model.pt",
                "--logdir", "logs", "--run-name", "again")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "logs" / "again" / "summary.json").read_text())
    weight = torch.load(run_dir / "model.pt", weights_only=True)["0.weight"]
    limit = summary["kernel_scale"]["01-conv2d/kernels"]
    assert limit == pytest.approx(float(weight.abs().max()))
    step0 = images(load_events(tmp_path / "logs" / "again"), "01-conv2d/kernels")[0]
    assert step0.step == 0 and np.array_equal(step0.pixels, _kernel_pixels(weight, limit))


# ----------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("layers, message", [
    (("Conv2d(3, 4, 3)", "Flatten()", "Linear(3600, 7)"),
     "stage 3 Linear(3600, 7) gives 7 features per image, but shapes has 10 classes and nn.CrossEntropyLoss needs "
     "one score per class; use Linear(3600, 10)"),
    (("Conv2d(3, 4, 3)",), "stage 1 Conv2d(3, 4, 3) gives maps (4, 30, 30), but a classifier's last stage gives one score"),
], ids=["features", "maps"])
def test_a_last_stage_of_the_wrong_width_is_one_line_before_anything_runs(run_cli, tmp_path, layers, message):
    r = run_cli("train", *layers, "--dataset", "shapes", "--logdir", "logs")
    assert_user_error(r, message)
    assert not (tmp_path / "logs").exists()


def test_a_diverging_loss_stops_in_one_line_keeping_finite_weights(run_cli, tmp_path):
    r = run_cli(*RUN[:-8], "--optimizer", "sgd", "--lr", "1e30", "--max-steps", "50", "--eval-batches", "1",
                "--logdir", "logs", "--run-name", "nan")
    assert_user_error(r, "the training loss is nan at step ")
    assert "try a smaller --lr (e.g. --lr 1e+29)" in r.err
    run_dir = tmp_path / "logs" / "nan"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["stopped_by"].startswith("TrainingError")
    steps = summary["steps"]
    assert f"at step {steps + 1} " in r.err and f"the weights of step {steps}, the last with a finite loss" in r.err
    assert [s.step for s in load_events(run_dir).Scalars("train/loss")] == list(range(1, steps + 1))
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state.values())


def test_a_folder_without_classes_is_one_line(run_cli, tmp_path):
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "pics" / "a.png")
    r = run_cli("train", "Flatten()", "Linear(192, 2)", "--dataset", "folder", "--data-dir", tmp_path / "pics",
                "--image-size", "8", "--logdir", "logs")
    assert_user_error(r, "has no class subfolders, so its images have no labels to train on")
    assert not (tmp_path / "logs").exists()


def test_a_folder_with_classes_trains_on_most_and_evaluates_on_a_held_out_part(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (0, 0, 200)), ("red", (200, 0, 0))):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.integers(0, 50, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.png")
    r = run_cli("train", "Flatten()", "Linear(192, 2)", "--dataset", "folder", "--data-dir", tmp_path / "pics",
                "--image-size", "8", "--batch-size", "4", "--epochs", "5", "--lr", "0.1", "--logdir", "logs", "--run-name", "f")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "logs" / "f" / "summary.json").read_text())
    assert summary["train_images"] == 16 and summary["eval_images"] == 4
    assert summary["eval_set"] == "folder/all (held out)" and summary["steps"] == 5 * 4
    assert summary["test_accuracy"] == 1.0  # red against blue


# ----------------------------------------------------------------------------- config


def test_a_config_file_holds_stack_and_train_sections(run_cli, tmp_path):
    (tmp_path / "t.toml").write_text(
        'command = "train"\n[stack]\nlayers = ["Flatten()", "Linear(3072, 10)"]\n'
        "[train]\noptimizer = \"adam\"\nlr = 0.002\nepochs = 3\n[data]\ndataset = \"shapes\"\n"
    )
    r = run_cli("train", "--config", "t.toml", "--lr", "0.5", "--dry-run")
    assert r.code == 0, r.err
    assert 'optimizer = "adam"\nlr = 0.5\nepochs = 3\n' in r.out and 'split = "train"' in r.out
    assert "training: 2346 step(s) (3 epoch(s) of 782)" in r.out and "dry run: nothing was loaded or written" in r.out
    assert not (tmp_path / "logs").exists()
    # The stack's own files train too; a train file is not a stack.
    (tmp_path / "s.toml").write_text('command = "stack"\n[stack]\nlayers = ["Flatten()", "Linear(3072, 10)"]\n[data]\nmax_batches = 2\n')
    r = run_cli("train", "--config", "s.toml", "--dataset", "shapes", "--dry-run")
    assert r.code == 0 and "training: 782 step(s)" in r.out, r.err  # a stack run's max_batches does not bound training
    assert_user_error(run_cli("stack", "--config", "t.toml"), "t.toml is a 'train' experiment; run it with: convlab train --config t.toml")
    (tmp_path / "u.toml").write_text("[train]\nlr = 0.1\n")
    assert_user_error(run_cli("stack", "--config", "u.toml"), "has a [train] section, but this is 'convlab stack'")


@pytest.mark.parametrize("flag, message", [
    (("--lr", "0"), "lr must be above 0, got 0.0"),
    (("--holdout", "1"), "holdout is the fraction of training images kept for evaluation"),
    (("--epochs", "0"), "epochs must be at least 1, got 0"),
])
def test_training_settings_are_checked(run_cli, flag, message):
    assert_user_error(run_cli("train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", *flag), message)


# ----------------------------------------------------------------------------- interruptions


def test_a_signal_inside_a_step_is_raised_when_the_step_ends():
    with stop_signals_between_steps() as guard:
        done = []
        with pytest.raises(Interrupted) as stopped:
            with guard.step():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                done.append("the rest of the step")
        assert done == ["the rest of the step"] and stopped.value.exit_code == 130


SRC = Path(convlab.__file__).resolve().parents[1]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_keeps_its_steps_and_a_loadable_model(tmp_path, sig, code):
    args = ["train", *LAYERS, "--dataset", "shapes", "--batch-size", "8", "--epochs", "10", "--eval-every", "5",
            "--eval-batches", "1", "--snapshot-every", "1000", "--logdir", "logs", "--run-name", "r"]
    proc = subprocess.Popen([sys.executable, "-m", "convlab", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(SRC), "CONVLAB_DEBUG": ""})
    run_dir = tmp_path / "logs" / "r"
    deadline = time.monotonic() + 120
    while not (run_dir / "model.pt").exists():  # saved at the first evaluation, after step 5
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == code, (out, err)
    lines = err.strip().splitlines()
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = summary["steps"]
    assert summary["status"] == "incomplete" and summary["stopped_by"] == signal.Signals(sig).name and steps > 0
    assert len(lines) == 1 and lines[0].startswith(f"convlab: interrupted by {signal.Signals(sig).name} after {steps} of 62500 step(s)"), err
    assert lines[0].endswith(f"{Path('logs') / 'r' / 'model.pt'} holds the weights after step {steps}")
    assert [s.step for s in load_events(run_dir).Scalars("train/loss")] == list(range(1, steps + 1))
    state = torch.load(run_dir / "model.pt", weights_only=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(128, 10))
    model.load_state_dict(state)
    assert not list(tmp_path.glob("logs/r/.*.tmp"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_training_on_cuda(run_cli, tmp_path):
    r = run_cli(*RUN[:-8], "--max-steps", "30", "--eval-batches", "2", "--device", "cuda", "--logdir", "logs", "--run-name", "g")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "logs" / "g" / "summary.json").read_text())
    assert summary["device"] == "cuda" and summary["status"] == "complete" and summary["steps"] == 30
    state = torch.load(tmp_path / "logs" / "g" / "model.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())


@pytest.mark.parametrize("name, extra", [
    ("sgd", ()), ("sgd", ("--weight-decay", "0.5")), ("adam", ("--weight-decay", "0.1")), ("adamw", ()),
], ids=["sgd", "sgd-weight-decay", "adam-weight-decay", "adamw-default"])
def test_without_shuffling_a_run_is_the_lessons_loop_step_for_step(cifar, run_cli, tmp_path, name, extra):
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--data-dir", cifar.root, "--batch-size", "16", "--epochs", "2",
                "--no-shuffle", "--optimizer", name, *extra, "--logdir", "logs", "--run-name", "same")
    assert r.code == 0, r.err
    logged = [s.value for s in load_events(tmp_path / "logs" / "same").Scalars("train/loss")]

    # The lesson's loop: the model seeded, the images as ToTensor gives them, in order, SGD(lr=0.01)
    # (or the optimizer and weight decay asked for, as torch.optim takes them).
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))
    decay = {"weight_decay": float(extra[1])} if extra else {}
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](model.parameters(), lr=0.01, **decay)
    x = torch.from_numpy(cifar.train_images).permute(0, 3, 1, 2).float().div(255)
    y = torch.tensor([i % 10 for i in range(1, 6) for _ in range(12)])
    expected = []
    for _ in range(2):
        for start in range(0, 60, 16):
            loss = torch.nn.functional.cross_entropy(model(x[start : start + 16]), y[start : start + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
    assert logged == pytest.approx(expected, rel=1e-6)
    state = torch.load(tmp_path / "logs" / "same" / "model.pt", weights_only=True)
    assert torch.equal(state["1.weight"], model[1].weight.detach())
    saved = {"sgd-weight-decay": "weight_decay = 0.5", "adam-weight-decay": "weight_decay = 0.1"}.get(f"{name}-weight-decay" if extra else name)
    assert (saved or "# weight_decay = (default)") in (tmp_path / "logs" / "same" / "config.toml").read_text()


@pytest.mark.parametrize("flag, message", [
    (("--weight-decay", "-1"), "weight_decay must be 0 or more, got -1"),
    (("--weight-decay", "100"), "weight_decay 100 with lr 0.01: sgd shrinks each weight by lr*weight_decay = 1 of itself every step"),
])
def test_weight_decay_is_checked(run_cli, flag, message):
    assert_user_error(run_cli("train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", *flag), message)


def test_the_plan_says_the_weight_decay_in_use(run_cli):
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", "--optimizer", "adamw", "--dry-run")
    assert r.code == 0 and "adamw lr=0.01 weight_decay=0.01" in r.out, r.err  # torch.optim.AdamW's default
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", "--dry-run")
    assert r.code == 0 and "sgd lr=0.01\n" in r.out and "weight_decay" not in r.out.split("[views]")[-1], r.err
