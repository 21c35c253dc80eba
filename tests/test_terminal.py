"""convlab.terminal: what a run and the lessons print, and what happens when no one reads it.

The rule, held by real processes below: a closed, full or abandoned stdout never costs a run.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convlab
from convlab.terminal import StreamSink, TerminalReporter, duration, echo, fmt_number

SRC = Path(convlab.__file__).resolve().parents[1]
RUN = ("conv", "--dataset", "shapes", "--batch-size", "8", "--max-batches", "1", "--views", "none")
DRY_RUN = ("conv", "--dataset", "shapes", "--dry-run")
PRINTS = {"explain": ("explain", "conv", "-k", "5"), "demo": ("demo", "pool"), "help": ("--help",), "dry-run": DRY_RUN}
FULL = "convlab: error: cannot write to stdout: No space left on device; only the printed output was lost, never a run"


def test_reporter_prints_lines_on_stdout(capsys):
    TerminalReporter(quiet=False).info("logged 2 step(s)")
    out, err = capsys.readouterr()
    assert out == "logged 2 step(s)\n" and err == ""


def test_quiet_reporter_prints_nothing(capsys):
    reporter = TerminalReporter(quiet=True)
    reporter.info("logged 2 step(s)")
    with reporter.progress(3, "conv shapes/test") as advance:
        advance()
    assert capsys.readouterr() == ("", "")


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    with TerminalReporter(quiet=False).progress(2, "conv shapes/test") as advance:
        advance()
        advance()
    assert capsys.readouterr() == ("", "")


def test_a_reader_that_left_makes_the_reporter_quiet(monkeypatch):
    """`convlab conv | head -1`: a write to a pipe no one reads ends the output, not the run."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        reporter = TerminalReporter(quiet=False)
        reporter.info("first line")  # EPIPE: the reader is gone
        assert reporter.quiet
        reporter.info("second line")  # not even tried
    finally:
        monkeypatch.undo()
        with pytest.raises(BrokenPipeError):
            stdout.close()  # what was buffered for the closed pipe cannot be flushed


def test_a_full_stdout_makes_the_reporter_quiet(monkeypatch):
    """A write error on the terminal is the terminal's: it never reaches the run's error path."""
    stdout = open("/dev/full", "w")  # noqa: SIM115 - closed below, after the reporter is done
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        reporter = TerminalReporter(quiet=False)
        reporter.info("run: logs/x")  # ENOSPC
        assert reporter.quiet
    finally:
        monkeypatch.undo()
        with pytest.raises(OSError):
            stdout.close()


def test_a_stream_sink_keeps_the_first_error_and_drops_the_rest():
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        sink = StreamSink(write_end)
        assert sink.write(b"first") == 5 and sink.error.errno == errno.EPIPE
        first = sink.error
        assert sink.write(b"second") == 6 and sink.error is first
    finally:
        os.close(write_end)


def test_echo_prints_one_line_per_text():
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    echo([Text("Conv2d(3, 6, kernel_size=(3, 3))"), Text("input (3, 32, 32)", style="bold")], Console(file=out, width=80))
    assert out.getvalue() == "Conv2d(3, 6, kernel_size=(3, 3))\ninput (3, 32, 32)\n"


@pytest.mark.parametrize(
    "value, text",
    [(3, "3"), (3.0, "3"), (-2.0, "-2"), (0.5, "0.5"), (1 / 3, "0.3333"), (-0.125, "-0.125"), (2.5e-7, "2.5e-07"),
     (1e20, "100000000000000000000"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
)
def test_numbers_as_a_learner_writes_them(value, text):
    assert fmt_number(value) == text


def test_terminal_imports_neither_torch_nor_rich():
    code = "import sys, convlab.terminal; print('torch' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ----------------------------------------------------------------------------- real processes


def start(cwd: Path, *args: str | bytes, stdout=None, env: dict[str, str] | None = None, preexec_fn=None) -> subprocess.Popen:
    """``python -m convlab ARGS`` on this checkout's source; stderr is captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "convlab", *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, preexec_fn=preexec_fn,
        env={**os.environ, "PYTHONPATH": str(SRC), "CONVLAB_DEBUG": "", **(env or {})},
    )


def finish(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, str]]:
    """Wait for processes started together (they share the cores): {name: (exit code, stderr)}."""
    return {name: (p.wait(timeout=300), p.stderr.read().decode("utf-8", "backslashreplace")) for name, p in procs.items()}


def assert_complete(logdir: Path) -> None:
    [run_dir] = [p for p in logdir.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 1, summary


def close_stdout() -> None:
    os.close(1)


@pytest.mark.slow
def test_a_closed_stdout_costs_nothing(tmp_path):
    """`convlab conv ... >&-`: no traceback, exit 0, the run complete."""
    results = finish({
        "run": start(tmp_path, *RUN, "--logdir", "logs", preexec_fn=close_stdout),
        "dry-run": start(tmp_path, *DRY_RUN, "--logdir", "dry", preexec_fn=close_stdout),
    })
    assert results == {"run": (0, ""), "dry-run": (0, "")}
    assert_complete(tmp_path / "logs")
    assert not (tmp_path / "dry").exists()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stdout_is_one_line_and_exit_2_and_the_run_is_kept(tmp_path):
    """`> /dev/full`: the printed output is lost, reported in one line; the run is complete, not blamed on --logdir."""
    with open("/dev/full", "wb") as full:
        procs = {"run": start(tmp_path, *RUN, "--logdir", "logs", stdout=full)}
        procs.update({name: start(tmp_path, *args, stdout=full) for name, args in PRINTS.items() if name != "dry-run"})
        results = finish(procs)
    assert results == {name: (2, FULL + "\n") for name in procs}
    assert_complete(tmp_path / "logs")


@pytest.mark.slow
def test_a_reader_that_left_is_exit_0(tmp_path):
    """`convlab explain ... | head -1`, deterministically: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        results = finish({name: start(tmp_path, *args, stdout=write_end) for name, args in PRINTS.items()})
    finally:
        os.close(write_end)
    assert results == {name: (0, "") for name in PRINTS}


C_LOCALE = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


@pytest.mark.slow
def test_names_the_terminal_cannot_encode_are_shown_escaped(tmp_path):
    """Non-UTF-8 file names, and non-ASCII ones under a C locale: printed escaped, never a UnicodeEncodeError."""
    animate = ("explain", "pool", "--size", "4x4", "--animate")
    procs = {
        "help-c": start(tmp_path, "--help", stdout=subprocess.PIPE, env=C_LOCALE),
        "conv-help-c": start(tmp_path, "conv", "--help", stdout=subprocess.PIPE, env=C_LOCALE),
        "animate-c": start(tmp_path, *animate, "c\u00fc.gif", stdout=subprocess.PIPE, env=C_LOCALE),
        "animate": start(tmp_path, *animate, b"u\xff.gif", stdout=subprocess.PIPE),
        "error-c": start(tmp_path, "conv", "--config", "\u00fc.toml", stdout=subprocess.PIPE, env=C_LOCALE),
        "error": start(tmp_path, "conv", "--config", b"\xff.toml", stdout=subprocess.PIPE),
    }
    out = {name: p.stdout.read() for name, p in procs.items()}
    results = finish(procs)
    assert {name: code for name, (code, _) in results.items()} == {
        "help-c": 0, "conv-help-c": 0, "animate-c": 0, "animate": 0, "error-c": 2, "error": 2}, results
    assert b"Usage: convlab [OPTIONS] COMMAND" in out["help-c"] and b"--max-batches" in out["conv-help-c"]
    # The C locale decodes the bytes of a name as surrogates: each byte is shown as its escape.
    assert out["animate-c"].endswith(b"input -> c\\udcc3\\udcbc.gif\n") and (tmp_path / "c\u00fc.gif").is_file()
    assert out["animate"].endswith(b"input -> u\\udcff.gif\n") and (tmp_path / os.fsdecode(b"u\xff.gif")).is_file()
    assert results["error-c"][1] == "convlab: error: config file not found: \\udcc3\\udcbc.toml\n"
    assert results["error"][1] == "convlab: error: config file not found: \\udcff.toml\n"
    assert not any("Traceback" in err for _, err in results.values())


def test_durations_read_as_a_clock():
    assert [duration(s) for s in (0, 9.6, 75, 3725)] == ["0:00", "0:10", "1:15", "1:02:05"]


def test_on_a_terminal_training_says_when_it_evaluates_and_keeps_each_epochs_line(tmp_path):
    """A real pseudo-terminal, as a learner's: the bar shows the run's own ETA and 'evaluating N images'
    before each evaluation; each epoch's line stays above it, and the bar goes at the end."""
    import pty
    import select

    main, follower = pty.openpty()
    args = ["train", "Flatten()", "Linear(3072, 10)", "--dataset", "shapes", "--batch-size", "16", "--max-steps", "10",
            "--eval-every", "5", "--eval-batches", "2", "--snapshot-every", "1000", "--logdir", "logs"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "TERM": "xterm", "COLUMNS": "200", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "convlab", *args], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        try:
            data = os.read(main, 65536) if ready else b""
        except OSError:  # EIO: the process closed the terminal
            data = b""
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "evaluating 32 images" in screen and "eta " in screen
    assert "epoch 1/1 (10 of 3,125 steps): train loss " in screen and "test accuracy " in screen
