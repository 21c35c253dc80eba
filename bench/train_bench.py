"""``convlab train`` against the lesson's plain training loop (``bench/train_loop.py``), run by
``bench/bench.py`` (``make bench``; ``--suite train`` alone).

One epoch of the lesson's model (configs/cifar10-model.toml) over the CIFAR10 test split used as
training data, batch 64, SGD lr 0.01, the same seed and the same intra-op threads (``--threads``,
set through OMP_NUM_THREADS for every program), each program in its own process so imports count:

- ``lesson``: DataLoader(batch_size=64) + ToTensor + SGD + add_scalar of the loss each step;
- ``lesson, convlab data``: the same loop fed from convlab's data path, logging nothing;
- ``convlab``: ``convlab train`` with its snapshots and scalars at their defaults, in the lesson's
  order (``--no-shuffle``) and evaluating on one batch, so it does the lesson's work plus its logging;
- ``convlab, full evaluation``: the defaults as they are (shuffled, all 10,000 test images
  evaluated at the epoch's end): what a learner's first run costs.

Checks that convlab's train/loss equals the lesson loop's loss at every step, then prints the
times, the ratios against issue 16's targets, and where convlab's time goes (summary.json's timing).
``device``: every program trains there (the loops move the model and batches ``.to(device)``;
convlab gets ``--device``); its ``loss.item()`` each step waits for the GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LESSON_LAYERS = [
    "Conv2d(3, 32, 5, padding=2)", "MaxPool2d(2)", "Conv2d(32, 32, 5, padding=2)", "MaxPool2d(2)",
    "Conv2d(32, 64, 5, padding=2)", "MaxPool2d(2)", "Flatten()", "Linear(1024, 64)", "Linear(64, 10)",
]
MODEL_CONFIG = REPO / "configs" / "cifar10-model.toml"
# Issue 16's targets (ratios from one run).
SPEEDUP_TARGET = 1.25  # lesson loop / convlab, end to end
LOGGING_LIMIT = 1.10  # convlab / the same loop on convlab's data with no logging
LOSS_TOLERANCE = 1e-3


def programs(data_dir: Path, md5_arg: str, logdir: Path, device: str = "cpu") -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the directory its run leaves)."""
    model = ["--config", str(MODEL_CONFIG)] if MODEL_CONFIG.exists() else LESSON_LAYERS
    loop = [sys.executable, str(HERE / "train_loop.py"), "--data-dir", str(data_dir), "--md5", md5_arg, "--device", device]
    convlab = [sys.executable, str(HERE / "convlab_entry.py"), "--md5", md5_arg, "train", *model, "--dataset", "cifar10",
               "--data-dir", str(data_dir), "--split", "test", "--eval-split", "test", "--batch-size", "64", "--lr", "0.01",
               "--seed", "0", "--device", device, "--quiet", "--logdir"]
    return {
        "lesson": ([*loop, "--logdir", str(logdir / "lesson")], logdir / "lesson"),
        "lesson, convlab data": ([*loop, "--feed", "convlab", "--logdir", str(logdir / "fed")], logdir / "fed"),
        "convlab": ([*convlab, str(logdir / "c"), "--run-name", "run", "--no-shuffle", "--eval-batches", "1"], logdir / "c" / "run"),
        "convlab, full evaluation": ([*convlab, str(logdir / "f"), "--run-name", "run"], logdir / "f" / "run"),
    }


def same_losses(lesson_dir: Path, convlab_dir: Path) -> dict[str, object]:
    """convlab's train/loss (float32 in the event file) against the lesson loop's loss.item()."""
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator

    expected = np.float32(json.loads((lesson_dir / "losses.json").read_text()))
    acc = event_accumulator.EventAccumulator(str(convlab_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    logged = np.float32([s.value for s in acc.Scalars("train/loss")])
    if logged.shape != expected.shape:
        return {"same": False, "why": f"{len(logged)} logged losses against the lesson's {len(expected)}"}
    worst = float((np.abs(logged - expected) / np.abs(expected)).max())
    # convlab runs convolutions channels_last on the CPU: the same sums in another order, so the
    # losses agree to float rounding, compounded over the steps, not bit for bit.
    return {"same": worst <= LOSS_TOLERANCE,
            "why": f"train/loss against the lesson loop's loss at all {len(expected)} steps: largest relative "
                   f"difference {worst:.1g} (at most {LOSS_TOLERANCE:g})"}


def run_train_bench(measure: Callable[..., dict], data_dir: Path, md5_arg: str, tmp: Path, *, threads: int, repeat: int,
                    device: str = "cpu") -> dict:
    env_threads = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    old = {k: os.environ.get(k) for k in env_threads}
    os.environ.update(env_threads)
    samples: dict[str, list] = {}
    try:
        for i in range(repeat):
            runs = programs(data_dir, md5_arg, tmp / f"train-{i}", device)
            names = list(runs)
            for name in names[i % len(names):] + names[: i % len(names)]:  # take turns
                cmd, run_dir = runs[name]
                m = measure(cmd, tmp)
                if name.startswith("convlab"):
                    summary = json.loads((run_dir / "summary.json").read_text())
                    m.update(timing=summary["timing"], test_accuracy=summary["test_accuracy"], loop_s=summary["seconds"])
                samples.setdefault(name, []).append(m)
                print(f"  train {name:26s} run {i + 1}: {m['wall_s']:6.2f} s, {m['imports_s']:5.2f} s imports, "
                      f"{m['peak_rss_mb']:5.0f} MB", flush=True)
        check = same_losses(tmp / "train-0" / "lesson", tmp / "train-0" / "c" / "run")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    med = {name: {k: statistics.median(s[k] for s in runs) for k in ("wall_s", "imports_s", "after_imports_s", "peak_rss_mb")}
           for name, runs in samples.items()}
    c = med["convlab"]
    report = {
        "device": device,
        "threads": threads,
        "repeat": repeat,
        "median": med,
        "convlab_timing": [s["timing"] for s in samples["convlab"]],
        "full_evaluation_timing": [s["timing"] for s in samples["convlab, full evaluation"]],
        "test_accuracy_full_evaluation": samples["convlab, full evaluation"][0]["test_accuracy"],
        "ratios": {
            "speedup": med["lesson"]["wall_s"] / c["wall_s"],
            "logging": c["wall_s"] / med["lesson, convlab data"]["wall_s"],
            "speedup_full_evaluation": med["lesson"]["wall_s"] / med["convlab, full evaluation"]["wall_s"],
        },
        "check": check,
    }
    print_train_table(report)
    return report


def print_train_table(r: dict) -> None:
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(f"\ntrain: one epoch of the lesson's model over CIFAR10's 10,000 test images, batch 64, SGD lr 0.01, "
          f"{r['threads']} thread(s), seed 0, on {r['device']}; medians of {r['repeat']} run(s)\n")
    header = f"{'':28s} {'wall s':>8s} {'imports s':>10s} {'after imports s':>16s} {'peak RSS MB':>12s}"
    print(header)
    print("-" * len(header))
    for name, x in r["median"].items():
        print(f"{name:28s} {x['wall_s']:8.2f} {x['imports_s']:10.2f} {x['after_imports_s']:16.2f} {x['peak_rss_mb']:12.0f}")
    q = r["ratios"]
    print(f"\nlesson / convlab: {q['speedup']:.2f}x ({ok(q['speedup'] >= SPEEDUP_TARGET)}, target >= {SPEEDUP_TARGET}x); "
          f"convlab / the same loop on convlab's data, no logging: {q['logging']:.2f}x "
          f"({ok(q['logging'] <= LOGGING_LIMIT)}, target <= {LOGGING_LIMIT}x)")
    print(f"lesson / convlab with its full default evaluation: {q['speedup_full_evaluation']:.2f}x (no target; "
          f"test accuracy after one epoch {r['test_accuracy_full_evaluation']:.1%})")
    for label, timings in (("convlab", r["convlab_timing"]), ("convlab, full evaluation", r["full_evaluation_timing"])):
        t = {k: statistics.median(x[k] for x in timings) for k in timings[0]}
        print(f"where {label}'s time goes (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    print(f"check: {r['check']['why']} ({'same' if r['check']['same'] else 'DIFFERENT'})")
