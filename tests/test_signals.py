"""Real convlab processes stopped mid-run (SIGINT, SIGTERM, a full disk) and run side by side.

Each test reads the run back with TensorBoard's own loader: whatever was logged before the
stop is there and decodes, and summary.json says how the run ended.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import convlab

from conftest import images, load_events

SRC = Path(convlab.__file__).resolve().parents[1]
# The built-in dataset in batches of 4: 2500 steps, far more than a test waits for.
LONG_RUN = ("conv", "--dataset", "shapes", "--batch-size", "4", "--seed", "1")
PLANNED = 10_000 // 4


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "CONVLAB_DEBUG": ""}


def start(cwd: Path, *args: str, preexec_fn=None, code: str | None = None) -> subprocess.Popen:
    """``python -m convlab ARGS`` (or ``python -c CODE ARGS``) on this checkout's source."""
    head = ["-c", code] if code else ["-m", "convlab"]
    return subprocess.Popen(
        [sys.executable, *head, *args], cwd=cwd, env=_env(), preexec_fn=preexec_fn,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def event_file(run_dir: Path) -> Path:
    files = list(run_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    return files[0]


def wait_for_steps(proc: subprocess.Popen, run_dir: Path, min_bytes: int, timeout: float = 120) -> None:
    """Until the run's event file holds a few steps (each step is several KB of PNGs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        files = list(run_dir.glob("events.out.tfevents.*")) if run_dir.is_dir() else []
        if files and files[0].stat().st_size >= min_bytes:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no steps logged in {run_dir} within {timeout}s")


def logged_steps(run_dir: Path) -> dict[str, list[int]]:
    acc = load_events(run_dir)
    steps = {tag: [im.step for im in images(acc, tag)] for tag in ("input", "output")}  # decodes every PNG
    steps["output/mean"] = [s.step for s in acc.Scalars("output/mean")]
    return steps


def assert_kept(run_dir: Path, steps: int) -> None:
    """Every step counted in summary.json is in the event file, in order (at most the one
    being logged when the run stopped is there in part)."""
    for tag, logged in logged_steps(run_dir).items():
        assert logged[:steps] == list(range(steps)), (tag, logged[:10], steps)
        assert len(logged) <= steps + 1, (tag, len(logged), steps)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_keeps_every_step_and_marks_the_run_incomplete(tmp_path, sig, code):
    proc = start(tmp_path, *LONG_RUN, "--logdir", "logs", "--run-name", "r")
    run_dir = tmp_path / "logs" / "r"
    # One step's images can pass 60 KB (the channels view alone); a signal that lands inside
    # step 0 rightly leaves nothing. 300 KB is several whole steps, however loaded the machine.
    wait_for_steps(proc, run_dir, min_bytes=300_000)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == code, (out, err)
    name = signal.Signals(sig).name
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"convlab: interrupted by {name} after "), err
    assert "Traceback" not in err + out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["stopped_by"] == name
    assert 0 < summary["steps"] < PLANNED == summary["planned_steps"]
    assert f"after {summary['steps']} of {PLANNED} step(s)" in lines[0] and str(run_dir.relative_to(tmp_path)) in lines[0]
    assert_kept(run_dir, summary["steps"])
    assert (run_dir / "config.toml").read_text().startswith('command = "conv"')


def _file_size_limit(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_disk_full_mid_run_keeps_what_was_written(tmp_path):
    # Writes past 300 kB fail with EFBIG, as on a full disk (Python ignores SIGXFSZ).
    proc = start(tmp_path, *LONG_RUN, "--logdir", "logs", "--run-name", "full", preexec_fn=_file_size_limit(300_000))
    out, err = proc.communicate(timeout=180)
    run_dir = tmp_path / "logs" / "full"

    assert proc.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"convlab: error: cannot write to {run_dir.relative_to(tmp_path)}: File too large"), err
    assert "what was written before it stays readable there (summary.json marks the run incomplete)" in lines[0]
    assert "Traceback" not in err + out
    assert event_file(run_dir).stat().st_size <= 300_000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["stopped_by"] == "write error: File too large"
    assert 0 < summary["steps"] < PLANNED
    # The loader reads up to the last whole record; the torn one at the limit is dropped.
    logged = logged_steps(run_dir)
    for tag in ("input", "output"):
        assert logged[tag] == list(range(len(logged[tag]))), tag
    assert len(logged["input"]) >= summary["steps"] - 10  # at most a writer queue's worth is lost


def test_disk_full_before_the_first_step_leaves_nothing(tmp_path):
    proc = start(tmp_path, *LONG_RUN, "--logdir", "logs", "--run-name", "full", preexec_fn=_file_size_limit(2_000))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "nothing was kept" in lines[0], err
    assert list((tmp_path / "logs").iterdir()) == []


# Both processes see the same wall clock, so both pick the same default run name.
SAME_SECOND = """\
import datetime, sys
import convlab.runs
class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5)
convlab.runs.datetime = Frozen
from convlab.__main__ import main
main(sys.argv[1:])
"""


def test_two_runs_at_once_with_the_same_name_never_collide(tmp_path):
    args = ("conv", "--dataset", "shapes", "--batch-size", "100", "--max-batches", "5", "--logdir", "logs")
    procs = [start(tmp_path, *args, code=SAME_SECOND) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results

    runs = sorted((tmp_path / "logs").iterdir())
    assert [r.name for r in runs] == ["conv-c6-k3-s1-p0-shapes-20260102-030405", "conv-c6-k3-s1-p0-shapes-20260102-030405-2"]
    reported = sorted(line.split(" to ")[-1] for out, _ in results for line in out.splitlines() if line.startswith("logged "))
    assert reported == [str(Path("logs") / r.name) for r in runs]
    for run_dir in runs:
        event_file(run_dir)  # one writer per directory
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["steps"] == 5
        assert logged_steps(run_dir) == {"input": list(range(5)), "output": list(range(5)), "output/mean": list(range(5))}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_while_loading_leaves_nothing_and_restores_handlers(cifar, run_cli, tmp_path, monkeypatch, sig, code):
    from convlab import data

    real_load = data.load

    def load_then_signal(cfg, seed):
        images = real_load(cfg, seed)
        os.kill(os.getpid(), sig)  # arrives as the data is in hand, before the run directory exists
        return images

    monkeypatch.setattr(data, "load", load_then_signal)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs")
    assert r.code == code, (r.out, r.err)
    assert r.err.splitlines() == [f"convlab: interrupted by {signal.Signals(sig).name}"]
    assert not (tmp_path / "logs").exists()
    assert {s: signal.getsignal(s) for s in before} == before


def test_signal_after_setup_before_the_first_step_removes_the_run_dir(cifar, run_cli, tmp_path, monkeypatch):
    from convlab import pipeline

    def signal_instead_of_logging(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises long before this ends

    monkeypatch.setattr(pipeline, "log_step", signal_instead_of_logging)
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "--run-name", "r")
    assert r.code == 143
    assert r.err.splitlines() == [
        "convlab: interrupted by SIGTERM after 0 of 2 step(s); nothing was logged yet, so nothing was kept"
    ]
    assert list((tmp_path / "logs").iterdir()) == []
