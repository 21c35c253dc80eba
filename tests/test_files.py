"""files.py: the one reader of files a user or a run put there (regular files only, a size cap),
and what reads a run directory through it: the "view it" lines and the board (issue 25, row 8)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from convlab.board import find_runs, image_samples, view_commands
from convlab.runs import read_summary


def test_a_regular_file_is_read_whole(tmp_path):
    from convlab.files import read_bytes

    (tmp_path / "a.txt").write_bytes(b"abc")
    assert read_bytes(tmp_path / "a.txt", limit=3, what="config file") == b"abc"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "config file not found: {p}"),
        (lambda p: p.mkdir(), "config file is a directory: {p}"),
        (lambda p: os.mkfifo(p), "config file {p} is not a regular file (a device or a pipe); give a .toml"),
        (lambda p: p.write_bytes(b"x" * 11), "config file {p} is over 10 bytes (11 bytes); give a .toml"),
    ],
    ids=["missing", "directory", "fifo", "too-large"],
)
def test_anything_else_is_one_message_that_names_it(tmp_path, make, message):
    from convlab.files import FileReadError, read_bytes

    path = tmp_path / "x.toml"
    make(path)
    with pytest.raises(FileReadError) as info:
        read_bytes(path, limit=10, what="config file", hint="give a .toml")
    assert str(info.value) == message.format(p=path)


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    from convlab.files import FileReadError, open_regular

    os.mkfifo(tmp_path / "summary.json")  # opening it for reading would block until someone writes
    done = _within(5, lambda: pytest.raises(FileReadError, open_regular, tmp_path / "summary.json", limit=1 << 20, what="x"))
    assert done


def _within(seconds: float, call) -> bool:
    """Whether ``call`` returns within ``seconds`` (run in a thread: a blocked read never ends)."""
    finished = threading.Event()

    def target() -> None:
        call()
        finished.set()

    threading.Thread(target=target, daemon=True).start()
    return finished.wait(seconds)


# ----------------------------------------------------------------------------- row 8: run directories


def _run(logdir: Path, name: str, summary: bytes | None = None) -> Path:
    run_dir = logdir / name
    run_dir.mkdir(parents=True)
    (run_dir / "events.out.tfevents.1.host").write_bytes(b"")
    if summary is not None:
        (run_dir / "summary.json").write_bytes(summary)
    return run_dir


def test_a_pipe_or_a_huge_summary_in_some_run_never_holds_up_the_view_lines(tmp_path):
    logs = tmp_path / "logs"
    _run(logs, "good", json.dumps({"steps": 1500, "planned_steps": 1500}).encode())
    os.mkfifo(_run(logs, "fifo") / "summary.json")
    huge = json.dumps({"steps": 5000, "pad": "x" * (1 << 20)}).encode()  # valid JSON, over runs.MAX_SUMMARY_BYTES
    _run(logs, "huge", huge)
    _run(logs, "cut", b'{"steps": 7000')

    lines: list[tuple[str, str]] = []
    assert _within(20, lambda: lines.append(view_commands(logs))), "a summary.json blocked the view lines"
    assert lines[0][1].endswith("--samples_per_plugin images=1500")
    assert read_summary(logs / "huge") is None and read_summary(logs / "cut") is None and read_summary(logs / "fifo") is None
    assert image_samples(find_runs(logs)) == 1500


def test_the_run_commands_end_after_such_a_run(tmp_path, run_cli):
    os.mkfifo(_run(tmp_path / "logs", "old") / "summary.json")
    results = []
    assert _within(60, lambda: results.append(run_cli("conv", "--dataset", "shapes", "-n", "1", "-b", "2", "--logdir", "logs")))
    assert results[0].code == 0, results[0].err
    assert "view it: convlab board --logdir logs" in results[0].out
