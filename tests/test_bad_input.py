"""Every way a learner can get a run wrong ends in one line, exit code 2, and nothing written.

The matrix is a table: add a row to LAYER_CASES (one command's options) or SHARED_CASES (the
data and run options, tried with every command in COMMANDS). Each row runs the real CLI and
checks the exit code, that the one line names the problem, that no traceback is printed and
that no file appeared (no run directory, no partial event file, no stray config).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torchvision.datasets import CIFAR10

from convlab.__main__ import main as convlab_main

import conftest
from conftest import _md5, load_events, make_cifar, register_checksums

# Commands that take the shared data and run options: a new command joins every shared row.
COMMANDS = ("conv", "pool")
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
OFFLINE_URL = "http://127.0.0.1:9/cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here may reach the network: a download goes to a closed local port."""
    monkeypatch.setattr(CIFAR10, "url", OFFLINE_URL)


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    message: str  # must appear in the one error line
    files: dict[str, str | bytes] = field(default_factory=dict)  # created (relative to the cwd) before the run


def case(*args: str, message: str, files: dict[str, str | bytes] | None = None, marks=(), id: str) -> pytest.param:
    return pytest.param(Case(args, message, files or {}), marks=marks, id=id)


LAYER_CASES = {
    "conv": [
        case("--kernel", "0", message="kernel_size must be at least 1, got 0x0", id="kernel-zero"),
        case("--kernel", "-2", message="kernel_size must be at least 1, got -2x-2", id="kernel-negative"),
        case("--kernel", "3x0", message="kernel_size must be at least 1, got 3x0", id="kernel-zero-width"),
        case("--kernel", "three", message="kernel_size: cannot read 'three'", id="kernel-word"),
        case("--kernel", "3x", message="cannot read '3x'; use one of: N, HxW", id="kernel-3x"),
        case("--kernel", "x3", message="cannot read 'x3'", id="kernel-x3"),
        case("--kernel", "3x3x3", message="cannot read '3x3x3'", id="kernel-3d"),
        case("--kernel", "3.5", message="cannot read '3.5'", id="kernel-float"),
        case("--kernel", "", message="cannot read ''", id="kernel-empty"),
        case("--kernel", "33", message="kernel 33 does not fit the input's height: 32 + 2*0 padding = 32 < 33", id="kernel-too-tall"),
        case("--kernel", "3x40", message="kernel 40 does not fit the input's width: 32 + 2*0 padding = 32 < 40", id="kernel-too-wide"),
        case("-k", "35", "-p", "1", message="32 + 2*1 padding = 34 < 35; use a smaller --kernel", id="kernel-over-padded-input"),
        case("-k", "3", "-d", "20", message="kernel 3 (spans 41 with dilation 20) does not fit", id="dilated-kernel-too-big"),
        case("--stride", "0", message="stride must be at least 1, got 0x0", id="stride-zero"),
        case("--stride", "-1", message="stride must be at least 1, got -1x-1", id="stride-negative"),
        case("--stride", "2x0", message="stride must be at least 1, got 2x0", id="stride-zero-width"),
        case("--stride", "fast", message="stride: cannot read 'fast'", id="stride-word"),
        case("--padding", "-1", message="padding must be 0 or more, got -1x-1", id="padding-negative"),
        case("--padding", "samee", message="cannot read 'samee'; use one of: N, HxW, same, valid", id="padding-typo"),
        case("--dilation", "0", message="dilation must be at least 1, got 0x0", id="dilation-zero"),
        case("--out-channels", "0", message="out_channels must be at least 1, got 0", id="out-channels-zero"),
        case("--out-channels", "-3", message="out_channels must be at least 1, got -3", id="out-channels-negative"),
        case("--out-channels", "six", message="Invalid value for '--out-channels'", id="out-channels-word"),
        case("--out-channels", "2.5", message="Invalid value for '--out-channels'", id="out-channels-float"),
        case("--in-channels", "0", message="in_channels must be at least 1, got 0", id="in-channels-zero"),
        case("--in-channels", "1", message="in_channels=1 but the images have 3 channel(s)", id="in-channels-mismatch"),
        case("--groups", "0", message="groups must be at least 1, got 0", id="groups-zero"),
        case("--groups", "2", message="groups=2 must divide in_channels=3", id="groups-not-dividing-in"),
        case("--groups", "4", message="groups=4 must divide out_channels=6", id="groups-not-dividing-out"),
        case("--padding", "same", "--stride", "2", message="padding 'same' needs stride 1", id="same-with-stride"),
        case("--padding-mode", "mirror", message="Invalid value for '--padding-mode'", id="padding-mode-unknown"),
        case("--padding-mode", "reflect", "-p", "32", message="padding 32 is too large for padding_mode 'reflect'", id="reflect-padding-too-large"),
        case("--padding-mode", "circular", "-p", "33", message="(at most 32)", id="circular-padding-too-large"),
        case("--padding", "99999999999999999999", message="conv.padding: 99999999999999999999 is far too large; PyTorch takes at most 2147483647", id="padding-beyond-int32"),
        case("-p", "100000", message="one batch of 64 outputs of (6, 200030, 200030) (C, H, W) would need 57,238 GiB; use a smaller --batch-size, --padding", id="padding-exhausting-memory"),
        case("-c", "10000000", message="one batch of 64 outputs of (10000000, 30, 30)", id="out-channels-exhausting-memory"),
        case("-c", "1000000", "-k", "32", message="the weights (1000000 x 3 x 32 x 32) would need 11 GiB; use a smaller --out-channels or --kernel", id="weights-exhausting-memory"),
        case("-b", "100000", "-c", "256", message="one batch of 10000 outputs of (256, 30, 30) (C, H, W) would need 9 GiB", id="batch-exhausting-memory"),
        case("--ceil", message="No such option: --ceil", id="pool-option-on-conv"),
        case("--config", "pool.toml", message="has a [pool] section, but this is 'convlab conv'",
             files={"pool.toml": "[pool]\nkernel_size = 2\n"}, id="pool-file-on-conv"),
        case("--config", "c.toml", message="c.toml [conv]: unknown key 'out_chanels'; did you mean 'out_channels'?",
             files={"c.toml": "[conv]\nout_chanels = 3\n"}, id="toml-key-typo"),
        case("--config", "c.toml", message="conv.kernel_size: cannot read 3.5", files={"c.toml": "[conv]\nkernel_size = 3.5\n"}, id="toml-float-kernel"),
        case("--config", "c.toml", message="conv.bias: expected true or false, got 'yes'", files={"c.toml": '[conv]\nbias = "yes"\n'}, id="toml-string-bool"),
        case("--config", "c.toml", message="conv.groups: expected an integer, got [1, 2]", files={"c.toml": "[conv]\ngroups = [1, 2]\n"}, id="toml-list-int"),
        case("--config", "c.toml", message="conv.kernel_size: expected two integers [h, w], got [3, 3, 3]",
             files={"c.toml": "[conv]\nkernel_size = [3, 3, 3]\n"}, id="toml-three-sizes"),
    ],
    "pool": [
        case("--kernel", "0", message="kernel_size must be at least 1, got 0x0", id="kernel-zero"),
        case("--kernel", "-1", message="kernel_size must be at least 1, got -1x-1", id="kernel-negative"),
        case("--kernel", "2x", message="cannot read '2x'", id="kernel-2x"),
        case("--kernel", "33", message="kernel 33 does not fit the input's height", id="kernel-too-big"),
        case("--stride", "0", message="stride must be at least 1, got 0x0", id="stride-zero"),
        case("--padding", "-1", message="padding must be 0 or more", id="padding-negative"),
        case("--padding", "same", message="cannot read 'same'; use one of: N, HxW", id="padding-same-is-conv-only"),
        case("-k", "3", "-p", "2", message="pool padding 2x2 is too large for kernel 3x3", id="padding-over-half-kernel"),
        case("-k", "4x2", "-p", "1x2", message="pool padding 1x2 is too large for kernel 4x2", id="padding-over-half-kernel-width"),
        case("-k", "3", "-p", "2", "--ceil", message="pool padding 2x2 is too large", id="ceil-with-padding-over-half"),
        case("--dilation", "0", message="dilation must be at least 1", id="dilation-zero"),
        case("-k", "9999999999", "-p", "4999999999", message="pool.kernel_size: 9999999999 is far too large", id="kernel-beyond-int32"),
        case("--ceil", "yes", message="unexpected extra argument(s) (yes)", id="ceil-with-a-value"),
        case("--groups", "2", message="No such option: --groups", id="conv-option-on-pool"),
        case("--config", "c.toml", message="this is 'convlab pool'; run it with: convlab conv --config c.toml",
             files={"c.toml": "[conv]\nout_channels = 3\n"}, id="conv-file-on-pool"),
        case("--config", "c.toml", message="c.toml is a 'conv' experiment; run it with: convlab conv --config c.toml",
             files={"c.toml": 'command = "conv"\n'}, id="toml-command-mismatch"),
        case("--config", "c.toml", message="pool.ceil_mode: expected true or false, got 1", files={"c.toml": "[pool]\nceil_mode = 1\n"}, id="toml-int-bool"),
    ],
}

SHARED_CASES = [
    case("--batch-size", "0", message="batch_size must be at least 1, got 0", id="batch-size-zero"),
    case("--batch-size", "-4", message="batch_size must be at least 1, got -4", id="batch-size-negative"),
    case("--batch-size", "many", message="Invalid value for '--batch-size'", id="batch-size-word"),
    case("--max-batches", "0", message="max_batches must be at least 1, got 0", id="max-batches-zero"),
    case("--seed", "-1", message="seed must be 0 or more, got -1", id="seed-negative"),
    case("--seed", "99999999999999999999", message="run.seed: 99999999999999999999 is far too large", id="seed-beyond-int64"),
    case("--batch-size", "99999999999", message="data.batch_size: 99999999999 is far too large", id="batch-size-beyond-int32"),
    case("--device", "tpu", message="unknown device 'tpu'; use auto, cpu, cuda or cuda:N", id="device-unknown"),
    case("--device", "cuda:x", message="unknown device 'cuda:x'", id="device-bad-index"),
    case("--device", "cuda", message="no CUDA GPU is available to PyTorch here; use --device cpu", marks=NO_GPU, id="cuda-without-gpu"),
    case("--device", "cuda:1", message="no CUDA GPU is available", marks=NO_GPU, id="cuda-index-without-gpu"),
    case("--dataset", "mnistt", message="unknown dataset 'mnistt'; choose from cifar10, shapes", id="dataset-unknown"),
    case("--dataset", "CIFAR10", message="unknown dataset 'CIFAR10'", id="dataset-wrong-case"),
    case("--split", "validation", message="Invalid value for '--split'", id="split-unknown"),
    case("--kernal", "3", message="No such option: --kernal", id="option-typo"),
    case("--batch_size", "3", message="No such option: --batch_size", id="option-underscore"),
    # Data: missing, offline, in the way.
    case("--no-download", message="CIFAR10 not found in empty/ and --no-download is set", id="no-download-data-missing"),
    case(message="cannot download CIFAR10", id="offline"),
    case("--data-dir", "afile", message="--data-dir afile is a file, not a directory", files={"afile": "x"}, id="data-dir-is-a-file"),
    case("--data-dir", "afile/data", message="Not a directory", files={"afile": "x"}, id="data-dir-below-a-file"),
    case("--data-dir", "d", message="d/cifar-10-python.tar.gz fails torchvision's integrity (MD5) check; delete it",
         files={"d/cifar-10-python.tar.gz": b"not the archive"}, id="corrupted-archive"),
    # Config files.
    case("--config", "missing.toml", message="config file not found: missing.toml", id="config-missing"),
    case("--config", "dir.toml", message="config file is a directory: dir.toml", files={"dir.toml/x": ""}, id="config-is-a-directory"),
    case("--config", "c.toml", message="c.toml is not valid TOML: Expected ']'", files={"c.toml": "[data\n"}, id="toml-malformed"),
    case("--config", "c.toml", message="c.toml is not valid TOML", files={"c.toml": "[data]\nbatch_size = \n"}, id="toml-missing-value"),
    case("--config", "c.toml", message="cannot read config file c.toml: it is not UTF-8 text (invalid start byte at byte 0)", files={"c.toml": b"\xff\xfe[data]"}, id="toml-not-utf8"),
    case("--config", "c.toml", message="data.batch_size: expected an integer, got 'big'", files={"c.toml": '[data]\nbatch_size = "big"\n'}, id="toml-string-int"),
    case("--config", "c.toml", message="data.batch_size: expected an integer, got 8.0", files={"c.toml": "[data]\nbatch_size = 8.0\n"}, id="toml-float-int"),
    case("--config", "c.toml", message="data.download: expected true or false, got 'no'", files={"c.toml": '[data]\ndownload = "no"\n'}, id="toml-string-bool"),
    case("--config", "c.toml", message="data.dataset: expected a string, got 5", files={"c.toml": "[data]\ndataset = 5\n"}, id="toml-int-string"),
    case("--config", "c.toml", message="[data]: unknown key 'batch_sise'; did you mean 'batch_size'?",
         files={"c.toml": "[data]\nbatch_sise = 8\n"}, id="toml-key-typo"),
    case("--config", "c.toml", message="c.toml: unknown key 'model'", files={"c.toml": "[model]\nx = 1\n"}, id="toml-unknown-section"),
    case("--config", "c.toml", message="c.toml: unknown command 5; choose from conv, pool, stack, train", files={"c.toml": "command = 5\n"}, id="toml-command-not-a-name"),
    case("--config", "c.toml", message="c.toml: unknown command 'dense'; choose from conv, pool, stack, train", files={"c.toml": 'command = "dense"\n'},
         id="toml-command-unknown"),
    case("--config", "c.toml", message="c.toml: 'data' must be a [data] table", files={"c.toml": "data = 3\n"}, id="toml-section-not-a-table"),
    case("--config", "c.toml", message="c.toml: 'run' must be a [run] table", files={"c.toml": "[[run]]\nseed = 1\n"}, id="toml-array-of-tables"),
    case("--config", "c.toml", message="unknown device 'gpu'", files={"c.toml": '[run]\ndevice = "gpu"\n'}, id="toml-bad-device"),
    case("--config", "c.toml", message="run name '../up' is not allowed", files={"c.toml": '[run]\nrun_name = "../up"\n'}, id="toml-run-name-escape"),
    # Where the run goes: checked before any data is loaded (CIFAR10 is missing in all of these).
    case("--run-name", "../up", message="run name '../up' is not allowed", id="run-name-parent"),
    case("--run-name", "..", message="run name '..' is not allowed", id="run-name-dotdot"),
    case("--run-name", ".", message="run name '.' is not allowed", id="run-name-dot"),
    case("--run-name", "/tmp/x", message="run name '/tmp/x' is not allowed", id="run-name-absolute"),
    case("--run-name", "a/b", message="no path separators", id="run-name-separator"),
    case("--run-name", "a\\b", message="is not allowed", id="run-name-backslash"),
    case("--run-name", ".hidden", message="run name '.hidden' is not allowed", id="run-name-hidden"),
    case("--run-name", "", message="run name '' is not allowed", id="run-name-empty"),
    case("--run-name", "my run", message="run name 'my run' is not allowed", id="run-name-space"),
    case("--run-name", "x" * 201, message="run name is 201 characters long; use at most 200", id="run-name-too-long"),
    case("--run-name", "taken", message="run 'taken' already exists in logs/ and is never overwritten",
         files={"logs/taken/summary.json": "{}"}, id="run-name-taken"),
    case("--logdir", "afile", message="--logdir afile is a file, not a directory", files={"afile": "x"}, id="logdir-is-a-file"),
    case("--logdir", "afile/logs", message="cannot create --logdir afile/logs: afile is a file", files={"afile": "x"}, id="logdir-below-a-file"),
]


def all_cases():
    for command, rows in LAYER_CASES.items():
        for row in rows:
            yield pytest.param(command, *row.values, marks=row.marks, id=f"{command}-{row.id}")
    for command in COMMANDS:
        for row in SHARED_CASES:
            yield pytest.param(command, *row.values, marks=row.marks, id=f"{command}-{row.id}")


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*")}


def assert_user_error(r, message: str) -> None:
    conftest.assert_user_error(r, message)
    assert r.out == ""


@pytest.mark.parametrize("command, row", list(all_cases()))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path, command, row: Case):
    for name, content in row.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    before = snapshot(tmp_path)
    # Defaults first: an option the row gives again wins (the last one counts).
    r = run_cli(command, "--logdir", "logs", "--data-dir", "empty", *row.args)
    assert_user_error(r, row.message)
    # torchvision may create an empty --data-dir to download into; nothing else appears.
    assert snapshot(tmp_path) - before <= {"empty/"}, snapshot(tmp_path) - before


def test_unknown_command_is_one_line(run_cli):
    r = run_cli("convv", "--kernel", "3")
    assert_user_error(r, "No such command 'convv'. Did you mean 'conv'?")


# ----------------------------------------------------------------------------- CIFAR integrity


class _Tripwire:
    """Unpickling this creates a file: proof that a corrupted batch was unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("download", ["--download", "--no-download"])
@pytest.mark.parametrize("name", ["test_batch", "batches.meta"])
def test_corrupted_cifar_fails_its_md5_before_any_unpickling(cifar, run_cli, tmp_path, name, download):
    tripwire = tmp_path / "unpickled"
    (cifar.root / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(_Tripwire(tripwire), protocol=2))
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", download)
    assert_user_error(r, "cifar-10-batches-py are missing or fail torchvision's integrity (MD5) check; delete that folder")
    assert not tripwire.exists()
    assert not (tmp_path / "logs").exists()


def test_truncated_cifar_batch_is_an_integrity_failure(cifar, run_cli, tmp_path):
    batch = cifar.root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:1000])
    r = run_cli("pool", "--data-dir", cifar.root, "--logdir", "logs", "--no-download")
    assert_user_error(r, "fail torchvision's integrity (MD5) check")
    assert not (tmp_path / "logs").exists()


def test_the_same_run_works_once_the_input_is_fixed(cifar, run_cli, tmp_path):
    """The rows above fail for the reason they name: with that one thing fixed, they run."""
    assert_user_error(run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "-k", "33"), "does not fit")
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "-k", "32", "--run-name", "ok", "-n", "1")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "logs" / "ok" / "summary.json").read_text())["output_shape"] == [6, 1, 1]


# ----------------------------------------------------------------------------- internal errors


def _explode(*args, **kwargs):
    raise ZeroDivisionError("a bug")


def test_internal_error_is_a_one_line_hint_and_exit_1(cifar, run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr("convlab.views.reshape_view", _explode)
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "-q")
    assert r.code == 1, (r.out, r.err)
    assert r.err.splitlines() == [
        "convlab: error: internal error (ZeroDivisionError: a bug); this is a bug in convlab: "
        "rerun with --debug for the traceback and report it"
    ]
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


@pytest.mark.parametrize("where", ["after", "before", "env"])
def test_debug_prints_the_traceback(cifar, run_cli, monkeypatch, where):
    monkeypatch.setattr("convlab.views.reshape_view", _explode)
    args = ["conv", "--data-dir", str(cifar.root), "--logdir", "logs", "-q"]
    if where == "env":
        monkeypatch.setenv("CONVLAB_DEBUG", "1")
    else:
        args = args + ["--debug"] if where == "after" else ["--debug", *args]
    r = run_cli(*args)
    assert r.code == 1
    assert r.err.startswith("Traceback (most recent call last):") and 'in _explode\n    raise ZeroDivisionError("a bug")' in r.err
    assert r.err.splitlines()[-1] == (
        "convlab: error: internal error (ZeroDivisionError: a bug); this is a bug in convlab: "
        "please report it with the traceback above"
    )


def test_debug_does_not_change_user_errors(run_cli):
    assert_user_error(run_cli("conv", "--stride", "0", "--debug"), "stride must be at least 1")


def test_a_bug_mid_run_keeps_the_steps_before_it(cifar, run_cli, tmp_path, monkeypatch):
    from convlab import pipeline

    real = pipeline.log_step

    def fails_at_step_2(writer, p, x, y, step):
        if step == 2:
            raise ZeroDivisionError("a bug")
        real(writer, p, x, y, step)

    monkeypatch.setattr(pipeline, "log_step", fails_at_step_2)
    r = run_cli("conv", "--data-dir", cifar.root, "--logdir", "logs", "-b", "8", "--run-name", "bug")
    assert r.code == 1 and "internal error (ZeroDivisionError: a bug)" in r.err
    run_dir = tmp_path / "logs" / "bug"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["steps"] == 2 and summary["stopped_by"] == "ZeroDivisionError: a bug"
    acc = load_events(run_dir)
    assert [e.step for e in acc.Images("input")] == [0, 1] and [e.step for e in acc.Images("output")] == [0, 1]


# ----------------------------------------------------------------------------- random configs

_SIZE = st.one_of(
    st.integers(1, 4),  # mostly valid, so about half the examples run
    st.integers(-2, 40),
    st.tuples(st.integers(-1, 36), st.integers(-1, 36)).map(lambda hw: f"{hw[0]}x{hw[1]}"),
    st.sampled_from(["", "3x", "x", "1.5", "two", "same", "valid", " 3 ", "3X5", "99999999999999999999"]),
)
_OPTIONS = {
    "conv": {
        "--kernel": _SIZE, "--stride": _SIZE, "--padding": _SIZE, "--dilation": _SIZE,
        "--out-channels": st.one_of(st.integers(1, 10), st.integers(-1, 0), st.just(10**11)), "--in-channels": st.integers(-1, 4),
        "--groups": st.integers(-1, 7),
        "--padding-mode": st.sampled_from(["zeros", "reflect", "replicate", "circular", "mirror"]),
        "--bias": st.sampled_from([None]), "--no-bias": st.sampled_from([None]),
    },
    "pool": {
        "--kernel": _SIZE, "--stride": _SIZE, "--padding": _SIZE, "--dilation": _SIZE,
        "--ceil": st.sampled_from([None]), "--no-ceil": st.sampled_from([None]),
    },
    "shared": {
        "--batch-size": st.integers(-1, 5), "--max-batches": st.integers(-1, 2), "--seed": st.integers(-1, 3),
        "--split": st.sampled_from(["test", "train", "val"]), "--device": st.sampled_from(["cpu", "auto", "cuda:x", "gpu"]),
    },
}


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    options = {**_OPTIONS[command], **_OPTIONS["shared"]}
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6))
    argv = [command]
    for name in chosen:
        value = draw(options[name])
        argv += [name] if value is None else [name, str(value)]
    return argv


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_cifar(root / "data", n_test=6, n_train_per_batch=2)
    return root / "data"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=command_lines())
def test_random_configs_run_or_exit_2_with_one_line(tiny_cifar, tmp_path_factory, argv):
    folder = tiny_cifar / "cifar-10-batches-py"
    logdir = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    out, err = StringIO(), StringIO()
    with pytest.MonkeyPatch.context() as mp:
        register_checksums(mp, folder, {p.name: _md5(p) for p in folder.iterdir()})
        mp.setattr(CIFAR10, "url", OFFLINE_URL)
        mp.delenv("CONVLAB_DEBUG", raising=False)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                # Fixed options first: a drawn --max-batches overrides the default of one batch.
                command, *options = argv
                convlab_main([command, "--data-dir", str(tiny_cifar), "--logdir", str(logdir), "-q", "--max-batches", "1", *options])
                code = 0
            except SystemExit as exc:
                code = exc.code
    runs = list(logdir.iterdir())
    event(f"exit {code}")
    if code == 0:
        assert len(runs) == 1, runs
        summary = json.loads((runs[0] / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["steps"] == summary["planned_steps"] >= 1, summary
        acc = load_events(runs[0])
        for tag in summary["tags"]:
            once = tag == "kernels"  # the weights do not change: logged once, at step 0
            assert [e.step for e in acc.Images(tag)] == ([0] if once else list(range(summary["steps"]))), tag
    else:
        conftest.assert_user_error(conftest.Result(code, out.getvalue(), err.getvalue()), "")  # hypothesis prints argv
        assert runs == [], runs
    assert "Traceback" not in err.getvalue() + out.getvalue()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_logdir_in_a_read_only_directory(run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert_user_error(run_cli("conv", "--logdir", "locked/logs", "--data-dir", "empty"),
                          "cannot create --logdir locked/logs: locked is not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
