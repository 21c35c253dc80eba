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
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout

import convlab
from convlab import data as datasets
from convlab import gallery
from convlab.__main__ import main as convlab_main
from convlab.config import resolve
from convlab.errors import Interrupted
from convlab.experiment import DataConfig
from convlab.interrupts import stop_signals_between_steps
from convlab.pictures import PANEL_GAP, PANEL_LABEL, as_pixels, channel_view, kernel_view, panel_boxes
from convlab.snapshots import KERNELS_PER_ROW, kernel_zoom
from convlab.train.plan import plan_training
from convlab.train.report import seconds_left
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
    assert last.startswith(f"test accuracy {summary['test_accuracy']:.1%} (chance 10.0%; loss ") and f"weights: {run_dir / 'model.pt'}" in last


def test_snapshots_and_evaluations_at_the_steps_asked(trained):
    _, _, acc, _ = trained
    snapshots = [0, 75, 150, 200]
    for tag in ("00-input", "01-conv2d", "01-conv2d/kernels", "05-linear"):
        assert [im.step for im in acc.Images(tag)] == snapshots, tag
    assert [s.step for s in acc.Scalars("test/loss")] == [100, 200]
    for tag in ("test/confusion", "test/mistakes", "test/unsure"):
        assert [im.step for im in acc.Images(tag)] == [100, 200], tag
    for stage in ("01-conv2d", "05-linear"):
        assert [h.step for h in acc.Histograms(f"weights/{stage}")] == snapshots
        assert [h.step for h in acc.Histograms(f"gradients/{stage}")] == snapshots[1:]  # no gradient before the first step
    # The probe images are the same at every snapshot; what the first stage makes of them changes.
    probe = images(acc, "00-input")
    assert all(np.array_equal(probe[0].pixels, p.pixels) for p in probe)
    first = images(acc, "01-conv2d")
    assert not np.array_equal(first[0].pixels, first[-1].pixels)
    texts = acc.Tags()["tensors"]
    assert {"layer/text_summary", "training/text_summary", "config/text_summary"} <= set(texts)
    graph = acc.Graph().node
    assert graph[-1].name == "output" and len(graph) == 1 + 4 + len(LAYERS) + 1  # input, 2 weights and 2 biases, stages, output
    # Opened one level: every stage is a box of its own at the top, not one collapsed Sequential.
    assert [n.name.split("/")[0] for n in graph if "/" in n.name] == ["01-conv2d"] * 3 + ["02-relu", "03-maxpool2d", "04-flatten"] + ["05-linear"] * 3


def _kernel_pixels(weight: torch.Tensor, limit: float) -> np.ndarray:
    return as_pixels(kernel_view(weight, zoom=kernel_zoom(tuple(weight.shape)), limit=limit, wrap=KERNELS_PER_ROW))


def _panels(picture: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """The panels of a side_by_side picture whose panels are of these (height, width)."""
    boxes, size = panel_boxes(sizes)
    assert picture.shape[:2] == size
    return [picture[y : y + h, x : x + w] for (y, x), (h, w) in zip(boxes, sizes)]


def test_kernels_side_by_side_on_one_scale_the_last_is_the_saved_model(trained):
    """One picture per snapshot: step 0 | now | the change, each panel the kernels on the stage's one range."""
    run_dir, _, acc, summary = trained
    limit = summary["kernel_scale"]["01-conv2d/kernels"]
    kernels = images(acc, "01-conv2d/kernels")
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert list(state) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    # Step 0 shows the seeded initial weights on the same range: the largest |weight| is black or white.
    exp = resolve("train", {"stack": {"layers": LAYERS}, "data": {"dataset": "shapes"}})
    initial = plan_training(exp).stack.stages[0].module.weight.detach()
    assert limit == pytest.approx(float(initial.abs().max()))
    step0, now, change = (_kernel_pixels(w, limit) for w in (initial, state["0.weight"], state["0.weight"] - initial))
    sizes = [p.shape[:2] for p in (step0, now, change)]
    assert all(np.array_equal(a, b) for a, b in zip(_panels(kernels[-1].pixels, sizes), (step0, now, change)))
    # At step 0: step 0 twice, and nothing added yet (all mid-grey).
    nothing = _kernel_pixels(torch.zeros_like(initial), limit)
    assert all(np.array_equal(a, b) for a, b in zip(_panels(kernels[0].pixels, sizes), (step0, step0, nothing)))
    assert not np.array_equal(step0, now)
    # 8 kernels wrapped in rows of 8, not a strip: each panel at most KERNELS_PER_ROW tiles wide.
    assert step0.shape[1] == 2 + KERNELS_PER_ROW * (5 * kernel_zoom((8, 3, 5, 5)) + 2)


def test_a_convtranspose2ds_kernels_learn_side_by_side_as_a_conv2ds(run_cli, tmp_path):
    """A stack whose first weighted stage goes back up: its kernels at step 0 | now | the change, on one range,
    as stored (in, out/groups, kH, kW): a row per input channel, the stamp it adds to each output channel; the
    last picture is model.pt's. A Python model's ConvTranspose2d is shown the same way."""
    layers = ("ConvTranspose2d(3, 4, 2, stride=2)", "ReLU()", "MaxPool2d(4)", "Flatten()", "Linear(1024, 10)")
    r = run_cli("train", *layers, "--dataset", "shapes", "-b", "8", "--max-steps", "3", "--snapshot-every", "2",
                "--eval-batches", "1", "--optimizer", "adam", "--lr", "0.01", "--logdir", "logs", "--run-name", "up")
    assert r.code == 0, r.err
    run_dir = tmp_path / "logs" / "up"
    summary = json.loads((run_dir / "summary.json").read_text())
    kernels = images(load_events(run_dir), "01-convtranspose2d/kernels")
    assert [k.step for k in kernels] == [0, 2, 3]
    limit = summary["kernel_scale"]["01-convtranspose2d/kernels"]
    exp = resolve("train", {"stack": {"layers": layers}, "data": {"dataset": "shapes"}})
    initial = plan_training(exp).stack.stages[0].module.weight.detach()
    now = torch.load(run_dir / "model.pt", weights_only=True)["0.weight"]
    assert initial.shape == now.shape == (3, 4, 2, 2) and limit == pytest.approx(float(initial.abs().max()))
    step0, last, change = (_kernel_pixels(w, limit) for w in (initial, now, now - initial))
    sizes = [p.shape[:2] for p in (step0, last, change)]
    assert all(np.array_equal(a, b) for a, b in zip(_panels(kernels[-1].pixels, sizes), (step0, last, change)))
    assert not np.array_equal(step0, last)
    zoom = kernel_zoom((3, 4, 2, 2))  # 3 rows (input channels) of 4 grey tiles (output channels)
    assert step0.shape[:2] == (2 + 3 * (2 * zoom + 2), 2 + 4 * (2 * zoom + 2))
    # The notebook's model= shows a Python model's ConvTranspose2d's kernels as a stack's.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 4, 2, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(1024, 10))
    run = convlab.train(model=net, dataset="shapes", batch_size=8, max_steps=2, snapshot_every=2, eval_batches=1, quiet=True,
                        logdir="logs", run_name="model")
    assert run.steps("01-convtranspose2d/kernels") == [0, 2]
    assert run.pictures()[1].caption == "01-convtranspose2d/kernels, step 0"


def test_stage_views_beside_their_step_0(trained, tmp_path):
    """Each stage's view of the probe images: step 0's, then now's, the last one what model.pt makes of them."""
    run_dir, _, acc, _ = trained
    views = images(acc, "01-conv2d")
    first = [p for p in _panels(views[0].pixels, [_first_panel_size(views[0].pixels)] * 2)]
    assert np.array_equal(first[0], first[1])
    probe = datasets.load(DataConfig(dataset="shapes", split="test"), 0).batch(0, 4).float() / 255
    conv = torch.nn.Conv2d(3, 8, 5, stride=2, padding=2)
    conv.load_state_dict({k[2:]: v for k, v in torch.load(run_dir / "model.pt", weights_only=True).items() if k.startswith("0.")})
    with torch.no_grad():
        expected = as_pixels(channel_view(conv(probe), 4, "symmetric", None, pixels=True, labels=True))
    step0, now = _panels(views[-1].pixels, [expected.shape[:2]] * 2)
    assert np.array_equal(step0, first[0])
    assert np.abs(now.astype(int) - expected.astype(int)).max() <= 1  # the same, to float rounding (channels_last)


def _first_panel_size(picture: np.ndarray) -> tuple[int, int]:
    """A picture of two equal panels side by side: the size of one."""
    return picture.shape[0] - PANEL_LABEL, (picture.shape[1] - PANEL_GAP) // 2


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
    expected = _kernel_pixels(weight, limit)
    assert step0.step == 0 and np.array_equal(_panels(step0.pixels, [expected.shape[:2]] * 3)[0], expected)


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


@pytest.mark.cuda
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


# ----------------------------------------------------------------------------- what the run says


def test_a_run_that_learns_says_so_each_epoch_and_gives_no_advice(trained):
    run_dir, out, acc, summary = trained
    lines = out.strip().splitlines()
    (epoch,) = [line for line in lines if line.startswith("epoch ")]  # the run stops mid-epoch: one line at its end
    accuracy = acc.Scalars("test/accuracy")[-1].value
    assert epoch.startswith(f"epoch 1/1 ({STEPS} of 1,563 steps): train loss ")
    said = float(epoch.split("; test accuracy ")[1].split("%")[0]) / 100
    assert said == pytest.approx(accuracy, abs=0.0006) and epoch.endswith(" s")
    assert lines.index(epoch) == len(lines) - 4  # then the end line and the two board lines
    assert summary["advice"] == [] and "advice/text_summary" not in acc.Tags()["tensors"]
    assert summary["train_loss_last"] < 0.6 * summary["train_loss_first"]


def test_a_run_at_chance_says_so_with_what_to_try(cifar, run_cli, tmp_path):
    """Random pictures with labels that follow nothing learnable: every epoch's line, then notes."""
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--data-dir", cifar.root, "--batch-size", "16", "--epochs", "3",
                "--lr", "1e-6", "--logdir", "logs", "--run-name", "chance")
    assert r.code == 0, r.err
    lines = r.out.strip().splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    acc = load_events(tmp_path / "logs" / "chance")
    tested = [s.value for s in acc.Scalars("test/accuracy")]
    assert [s.step for s in acc.Scalars("test/accuracy")] == [4, 8, 12]  # each epoch's end: 60 images, batches of 16
    losses = [s.value for s in acc.Scalars("train/loss")]
    for n, (line, test) in enumerate(zip(epochs, tested), 1):
        mean = np.mean(losses[4 * (n - 1) : 4 * n])
        assert line.startswith(f"epoch {n}/3: train loss {mean:.3f}, accuracy ") and line.endswith(" s")
        said = float(line.split("; test accuracy ")[1].split("%")[0]) / 100
        assert said == pytest.approx(test, abs=0.0006)  # as the event file's float32 holds it, to the 0.1% printed
    assert len(epochs) == 3
    summary = json.loads((tmp_path / "logs" / "chance" / "summary.json").read_text())
    end = lines.index(next(line for line in lines if line.startswith("test accuracy ")))
    notes = lines[end + 1 : end + 4]
    assert notes[0] == f"note: {summary['test_accuracy']:.1%} is about chance for 10 classes (10.0%): the model has not learned to tell them apart yet"
    assert notes[1].startswith("note: train/loss has not fallen (")
    assert notes[2] == "note: try more steps (--epochs 6), --optimizer adam --lr 0.001 or a larger --lr (e.g. --lr 5e-06)"
    assert summary["advice"] == [n.removeprefix("note: ") for n in notes]
    advice = acc.Tensors("advice/text_summary")[0].tensor_proto.string_val[0].decode()
    assert advice == "\n\n".join(summary["advice"])

    # The built-in shapes, learnable, but at a learning rate too small to move: the same notes, Adam's own.
    r = run_cli("train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", "--batch-size", "16", "--max-steps", "8",
                "--optimizer", "adam", "--lr", "1e-7", "--eval-batches", "4", "--logdir", "logs", "--run-name", "tiny-lr")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "logs" / "tiny-lr" / "summary.json").read_text())
    lines = r.out.strip().splitlines()
    assert lines[-7].startswith("epoch 1/1 (8 of 3,125 steps): train loss ")
    assert lines[-6].startswith(f"test accuracy {summary['test_accuracy']:.1%} (chance 10.0%; loss ")
    assert lines[-5].startswith(f"note: {summary['test_accuracy']:.1%} is about chance for 10 classes (10.0%)")
    assert lines[-4].startswith("note: train/loss has not fallen (")
    assert lines[-3] == "note: try more steps (--epochs 2) or a larger --lr (e.g. --lr 3e-07)"


# ----------------------------------------------------------------------------- gradients


def test_gradient_norms_and_update_ratios_are_those_of_each_step(cifar, run_cli, tmp_path):
    """The lesson's loop, step for step: each stage's p.grad.norm() and ||w_after - w_before|| / ||w_before||."""
    layers = ("Conv2d(3, 4, 5, stride=4)", "Flatten()", "Linear(196, 10)")
    r = run_cli("train", *layers, "--data-dir", cifar.root, "--batch-size", "16", "--epochs", "2", "--no-shuffle",
                "--optimizer", "adam", "--lr", "0.01", "--logdir", "logs", "--run-name", "g", "-q")
    assert r.code == 0, r.err
    acc = load_events(tmp_path / "logs" / "g")

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, stride=4), torch.nn.Flatten(), torch.nn.Linear(196, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.from_numpy(cifar.train_images).permute(0, 3, 1, 2).float().div(255)
    y = torch.tensor([i % 10 for i in range(1, 6) for _ in range(12)])
    expected: dict[str, list[float]] = {tag: [] for tag in ("gradient-norm/01-conv2d", "gradient-norm/03-linear",
                                                            "update-ratio/01-conv2d", "update-ratio/03-linear")}
    for _ in range(2):
        for start in range(0, 60, 16):
            loss = torch.nn.functional.cross_entropy(model(x[start : start + 16]), y[start : start + 16])
            optimizer.zero_grad()
            loss.backward()
            before = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
            optimizer.step()
            for stage, module, old in (("01-conv2d", model[0], before[0]), ("03-linear", model[2], before[1])):
                expected[f"gradient-norm/{stage}"].append(module.weight.grad.norm().item())
                expected[f"update-ratio/{stage}"].append(((module.weight.detach() - old).norm() / old.norm()).item())
    for tag, values in expected.items():
        logged = acc.Scalars(tag)
        assert [s.step for s in logged] == list(range(1, 9)), tag
        assert [s.value for s in logged] == pytest.approx(values, rel=1e-4), tag
    layout = custom_scalars_layout(acc)
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["loss: train (each batch) and test (each evaluation)"] == ["train/loss$", "test/loss$"]
    assert charts["gradient norm of each stage's weight"] == ["gradient-norm/"]


def custom_scalars_layout(acc) -> Layout:
    """The Custom Scalars tab's layout, as its plugin reads it from the run."""
    (event,) = acc.Tensors("custom_scalars__config__")
    return Layout.FromString(event.tensor_proto.string_val[0])


# ----------------------------------------------------------------------------- the mistakes


def test_the_mistakes_are_exactly_those_model_pt_gets_wrong_most_confident_first(trained):
    run_dir, _, acc, summary = trained
    eval_set = datasets.load(DataConfig(dataset="shapes", split="test"), 0)
    x, y = eval_set.batch(0, summary["eval_images"]), eval_set.batch_labels(0, summary["eval_images"])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(128, 10))
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    with torch.no_grad():
        probabilities = model(x.float() / 255).softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    wrong = (predicted != y).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: -confidence[i].item())
    assert summary["test_accuracy"] == pytest.approx(1 - len(wrong) / len(y), abs=1e-6)

    text = acc.Tensors("test/mistakes/text_summary")[-1].tensor_proto.string_val[0].decode()
    head, _, *listed = text.splitlines()
    assert head.startswith(f"{len(wrong)} mistake(s) at step {STEPS}, the most confident first")
    shown = wrong[: gallery.MAX_MISTAKES]
    assert [int(line.split("#")[1].split(":")[0]) for line in listed] == shown
    names = eval_set.classes
    for line, i in zip(listed, shown):
        assert line.endswith(f": {names[y[i]]}, predicted {names[predicted[i]]} ({confidence[i]:.3f})")
    # The picture: each shown mistake's image, upscaled, in reading order.
    picture = images(acc, "test/mistakes")[-1].pixels
    lay = gallery.layout((32, 32), 2)
    zoom = lay.tile[0] // 32
    for n, i in enumerate(shown):
        top, left = lay.origin(*divmod(n, gallery.COLUMNS))
        expected = x[i].permute(1, 2, 0).numpy().repeat(zoom, axis=0).repeat(zoom, axis=1)
        assert np.array_equal(picture[top : top + lay.tile[0], left : left + lay.tile[1]], expected), i
    # Per class, its right answers, the least sure first.
    unsure = images(acc, "test/unsure")[-1].pixels
    lay = gallery.layout((32, 32), 1, names)
    for k in range(10):
        right = [i for i in range(len(y)) if y[i] == k and predicted[i] == k]
        right.sort(key=lambda i: probabilities[i, k].item())
        for n, i in enumerate(right[: gallery.PER_CLASS]):
            top, left = lay.origin(k, n)
            expected = x[i].permute(1, 2, 0).numpy().repeat(zoom, axis=0).repeat(zoom, axis=1)
            assert np.array_equal(unsure[top : top + lay.tile[0], left : left + lay.tile[1]], expected), (k, i)


# ----------------------------------------------------------------------------- TensorBoard's HParams tab


def hparams_plugin(logdir: Path) -> tuple:
    """What TensorBoard's HParams tab shows for ``logdir``: its experiment (columns and metrics) and
    each run's metric values, through the plugin's own handlers."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    context = backend_context.Context(base_plugin.TBContext(
        logdir=str(logdir), data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)), multiplexer=mux))
    request = tb_context.RequestContext()
    experiment = get_experiment.Handler(request, context, "", api_pb2.GetExperimentRequest(include_metrics=True)).run()
    query = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, aggregation_type=api_pb2.AGGREGATION_AVG,
                                             include_metrics=True, allowed_statuses=list(api_pb2.Status.values()))
    for m in experiment.metric_infos:
        query.col_params.add(metric=m.name)
    groups = list_session_groups.Handler(request, context, "", query).run()
    values = {g.name: {m.name.tag: m.value for m in g.metric_values} for g in groups.session_groups}
    return experiment, values


def test_hparams_of_a_train_run_beside_conv_and_stack_runs(run_cli, tmp_path):
    """TensorBoard's HParams tab takes its columns and metrics from one run of its logdir: train runs
    log to logs/train by default, so conv and stack runs in logs/ cannot blank their test/accuracy."""
    assert run_cli("conv", "--dataset", "shapes", "-n", "1", "-q").code == 0
    assert run_cli("stack", "Conv2d(3, 4, 3)", "--dataset", "shapes", "-n", "1", "-q").code == 0
    r = run_cli(*RUN[:-8], "--max-steps", "3", "--eval-batches", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines()[-2] == "view it: convlab board --logdir logs/train"
    (run_dir,) = (tmp_path / "logs" / "train").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(p.name for p in (tmp_path / "logs").iterdir())[-1] == "train" and len(list((tmp_path / "logs").iterdir())) == 3

    experiment, values = hparams_plugin(tmp_path / "logs" / "train")
    assert [m.name.tag for m in experiment.metric_infos] == ["test/accuracy", "test/loss", "train/loss", "train/accuracy"]
    assert values[run_dir.name]["test/accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
    # The tab shows the first five columns, those marked as differing first: what the user chose.
    shown = [h.name for h in experiment.hparam_infos][:5]
    assert sorted(shown) == sorted(["train.optimizer", "train.lr", "train.epochs", "data.batch_size", "stack.layers"])


def test_the_eta_counts_the_steps_evaluations_and_snapshots_still_to_come():
    """From measured times: a step's (snapshots and evaluations excluded) and each kind of pause's."""
    exp = resolve("train", {"stack": {"layers": ("Flatten()", "Linear(3072, 10)")}, "data": {"dataset": "shapes", "batch_size": 100},
                            "train": {"max_steps": 10, "eval_every": 4, "snapshot_every": 3, "eval_batches": 6}})
    tp = plan_training(exp)  # evaluations after steps 4, 8 and 10; snapshots after 3, 6, 9 and 10
    assert seconds_left(tp, 0, 0.5, 2.0, 0.25) == pytest.approx(10 * 0.5 + 3 * 2.0 + 4 * 0.25)
    assert seconds_left(tp, 8, 0.5, 2.0, 0.25) == pytest.approx(2 * 0.5 + 1 * 2.0 + 2 * 0.25)
    assert seconds_left(tp, 10, 0.5, 2.0, 0.25) == 0
    # Before the first evaluation is measured: a forward pass, a third of a step, per batch of it.
    assert seconds_left(tp, 0, 0.5, None, 0.25) == pytest.approx(10 * 0.5 + 3 * (6 * 0.5 / 3) + 4 * 0.25)
