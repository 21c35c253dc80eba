"""runs.py: run names, exclusive run directories and summary.json, all without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from convlab.config import resolve
from convlab.runs import (
    CONFIG_FILE,
    SUMMARY_FILE,
    LogdirError,
    check_logdir,
    create_run_dir,
    default_run_name,
    read_summary,
    write_config,
    write_summary,
)

WHEN = datetime(2026, 11, 28, 14, 25, 1)


@pytest.mark.parametrize(
    "command, layer, data, expected",
    [
        ("conv", {}, {}, "conv-c6-k3-s1-p0-20261128-142501"),
        ("conv", {"kernel_size": "5x3", "stride": 2, "padding": 1, "dilation": 2}, {}, "conv-c6-k5x3-s2-p1-d2-20261128-142501"),
        ("conv", {"padding": "same", "dilation": 2, "groups": 3, "out_channels": 3}, {"dataset": "shapes"},
         "conv-c3-k3-s1-psame-d2-g3-shapes-20261128-142501"),
        ("conv", {"init": "sobel-x,sobel-y"}, {}, "conv-c2-k3-s1-p0-sobel-x+sobel-y-20261128-142501"),
        ("pool", {}, {}, "maxpool-k3-s3-p0-20261128-142501"),
        ("pool", {"kernel_size": 2, "stride": 1, "ceil_mode": True, "unpool": True}, {"dataset": "mnist"},
         "maxpool-k2-s1-p0-ceil-unpool-mnist-20261128-142501"),
        ("pool", {"mode": "avg", "padding": 1}, {}, "avgpool-k3-s3-p1-20261128-142501"),
    ],
)
def test_default_run_name_says_what_ran_and_when(command, layer, data, expected):
    assert default_run_name(resolve(command, {command: layer, "data": data}), now=WHEN) == expected


def test_run_dirs_are_created_exclusively(tmp_path: Path):
    first = create_run_dir(tmp_path / "logs", "r", explicit=False)
    second = create_run_dir(tmp_path / "logs", "r", explicit=False)
    assert (first.name, second.name) == ("r", "r-2") and first.is_dir() and second.is_dir()
    with pytest.raises(LogdirError, match="already exists .* never overwritten"):
        create_run_dir(tmp_path / "logs", "r", explicit=True)


def test_check_logdir_refuses_what_cannot_be_created(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LogdirError, match="is a file, not a directory"):
        check_logdir(tmp_path / "file", None)
    with pytest.raises(LogdirError, match="is a file; choose another --logdir"):
        check_logdir(tmp_path / "file" / "logs", None)
    (tmp_path / "logs" / "taken").mkdir(parents=True)
    with pytest.raises(LogdirError, match="run 'taken' already exists"):
        check_logdir(tmp_path / "logs", "taken")
    check_logdir(tmp_path / "logs", "free")
    check_logdir(tmp_path / "not" / "yet", None)
    assert not (tmp_path / "not").exists()  # checking creates nothing


def test_summary_round_trips_and_leaves_no_temporary_file(tmp_path: Path):
    write_summary(tmp_path, {"status": "complete", "steps": 3})
    write_summary(tmp_path, {"status": "complete", "steps": 4})
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == {"status": "complete", "steps": 4}
    assert read_summary(tmp_path) == {"status": "complete", "steps": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILE]
    write_config(tmp_path, 'command = "conv"\n')
    assert (tmp_path / CONFIG_FILE).read_text() == 'command = "conv"\n'


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_an_unreadable_summary_reads_as_none(tmp_path: Path, content):
    if content is not None:
        (tmp_path / SUMMARY_FILE).write_text(content)
    assert read_summary(tmp_path) is None


def test_runs_does_not_import_torch():
    code = "import sys, convlab.runs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_full_disk_rewrites_the_summary_in_place(tmp_path: Path, monkeypatch):
    # ENOSPC for any new file: the old summary's blocks are still there to rewrite.
    write_summary(tmp_path, {"status": "running", "steps": 0})
    real = Path.write_bytes

    def disk_full(self, data):
        if self.name.endswith(".tmp"):
            self.touch()  # the OS creates the file, then the write fails
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    write_summary(tmp_path, {"status": "incomplete", "steps": 7, "stopped_by": "write error: No space left on device"})
    assert read_summary(tmp_path) == {"status": "incomplete", "steps": 7, "stopped_by": "write error: No space left on device"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILE]  # no temporary file left


def test_a_full_disk_before_any_summary_raises_and_leaves_nothing(tmp_path: Path, monkeypatch):
    def disk_full(self, data):
        self.touch()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_summary(tmp_path, {"status": "running"})
    assert list(tmp_path.iterdir()) == []
