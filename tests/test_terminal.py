"""convlab.terminal: what a run and the lessons print, and what happens when no one reads it."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys

import pytest

from convlab.terminal import TerminalReporter, echo, fmt_number


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
