"""Exit code 1 means a bug, only a bug: hostile command lines drawn from the real CLI's own
grammar (every command and option typer declares) end in 0 or one line and exit 2, never a
traceback, and leave a run directory only when they succeed.

The default run draws a modest number of command lines; ``pytest -m fuzz`` draws many more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import typer.main
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from convlab.cli import app

import conftest

# board serves until Ctrl-C: its own tests start and stop it.
SKIPPED_COMMANDS = {"board"}
ARGUMENTS = "<arguments>"
LAYER_CALLS = [
    "Conv2d(3, 8, 3)", "Conv2d(8, 8, 3, padding=1)", "ReLU()", "Sigmoid()", "MaxPool2d(2)", "AvgPool2d(3, ceil_mode=True)",
    "BatchNorm2d(8)", "Flatten()", "Linear(10, 5)", "Linear(7200, 10)", "Softmax(dim=1)", "Dropout(0.5)",
    "Conv2d(3, 8, kernel_size=99)", "Conv2d(3, 8, 3", "__import__('os').system('x')", "nn.ReLU()", "ReLu()",
    "Conv2d(in_channels=3)", "Linear(10, 5, bias=lambda: 0)", "MaxPool2d(0)", "Conv2d(3, 8, (3, 3), stride=(2, 1))",
]
RUN_COMMANDS = {"conv", "pool", "stack", "sweep conv", "sweep pool", "sweep stack"}
# --vary values that sweep something, good and bad (any option may draw them).
VARY_VALUES = [
    "kernel_size=2,3", "ceil_mode=false,true", "init=sobel-x;laplacian", "layers=ReLU();Sigmoid()", "max_channels=1,2",
    "layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Tanh()", "layers=Conv2d(3, 8, 3), Flatten(); MaxPool2d(2)",
    "layers=ReLU(); __import__('os').system('x')", "layers=ReLU(), (; Tanh()", "layers=();ReLU()",
]


def command_options() -> dict[str, list[tuple[str, bool]]]:
    """Every command path ('conv', 'explain pool', ...) -> its options (first name, is a flag)."""
    out = {}

    def walk(command, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
            return
        name = " ".join(path)
        if name in SKIPPED_COMMANDS:
            return
        options = []
        for param in command.params:
            if param.param_type_name == "argument":
                options.append((ARGUMENTS, False))  # positional values, e.g. stack's layers
                continue
            if param.param_type_name != "option" or "--help" in param.opts:
                continue
            options.append((param.opts[0], bool(param.is_flag)))
            options += [(o, True) for o in param.secondary_opts]
        out[name] = options

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = command_options()


def hostile_paths(root: Path) -> list[str]:
    fifo = root / "fifo.png"
    if not fifo.exists():
        os.mkfifo(fifo)
    (root / "dir").mkdir(exist_ok=True)
    (root / "file.toml").write_text('command = "conv"\n[conv]\nkernel_size = 3\n')
    (root / "bad.toml").write_text("[conv]\nkernel_size = " + "[" * 3000 + "]" * 3000 + "\n")
    Image.fromarray(np.zeros((1, 200_000), dtype=np.uint8)).save(root / "line.png")
    return [str(fifo), "/dev/zero", "/dev/null", str(root / "missing"), str(root / "dir"), str(root / "file.toml"),
            str(root / "bad.toml"), str(root / "line.png"), str(root / ("n" * 300)), str(root / "x\udcff")]


def values(paths: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-3, 40).map(str),
        st.sampled_from(["0", "-1", "9" * 40, "2147483647", "-2147483648", "1" + "0" * 5000, "1.5", "nan", "inf"]),
        st.tuples(st.integers(-1, 40), st.integers(-1, 40)).map(lambda hw: f"{hw[0]}x{hw[1]}"),
        st.sampled_from(["", " ", "\n", "\t", "\x1b[31m", "a\x00b", "\udcff", "é", "same", "valid", "true", "none",
                         "sobel-x,sobel-y", "identity", "channels,stats", "cpu", "cuda", "auto", "max", "avg"]),
        st.sampled_from(["1 2; 3 4", "[[1, 2], [3, 4]]", "[" * 2000 + "]" * 2000, "1 2; 3", "0,0", "9,9"]),
        st.sampled_from(paths),
        st.sampled_from(VARY_VALUES),
        st.text(max_size=12),
    )


@st.composite
def command_lines(draw, paths: list[str]) -> list[str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    options = COMMANDS[name]
    chosen = draw(st.lists(st.sampled_from(options), unique=True, max_size=5)) if options else []
    argv = name.split()
    for option, is_flag in chosen:
        if option == ARGUMENTS:
            argv += draw(st.lists(st.one_of(st.sampled_from(LAYER_CALLS), values(paths)), min_size=1, max_size=4))
        else:
            argv += [option] if is_flag else [option, draw(values(paths))]
    return argv


def run_in_process(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    from convlab.__main__ import main

    out, err = StringIO(), StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], base: Path, paths: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work = Path(tempfile.mkdtemp(dir=base))
    name = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    head = argv[: len(name.split())]
    fixed = ["--dataset", "shapes", "-n", "1", "-b", "4", "--no-download", "--logdir", "logs", "-q"] if name in RUN_COMMANDS else []
    code, out, err = run_in_process([*head, *fixed, *argv[len(head):]], work)
    event(f"{name}: exit {code}")
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    runs = sorted(p for p in (work / "logs").rglob("summary.json")) if (work / "logs").is_dir() else []
    if code == 2:
        conftest.assert_user_error(conftest.Result(code, out, err), "")
        assert runs == [], (argv, runs)
    for summary in runs:
        assert '"status": "complete"' in summary.read_text(), (argv, summary)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("hostile")
    return root, hostile_paths(root)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """A download attempt goes to a closed local port: refused at once, as offline."""
    from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/c10.tar.gz")
    monkeypatch.setattr(CIFAR100, "url", "http://127.0.0.1:9/c100.tar.gz")
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.delenv("CONVLAB_DEBUG", raising=False)


def test_the_grammar_covers_every_command():
    assert {"conv", "pool", "demo pool", "demo conv", "explain conv", "explain pool", "explain unpool"} <= set(COMMANDS)
    assert ("--kernel", False) in COMMANDS["conv"] and ("--ceil", True) in COMMANDS["pool"]
    assert (ARGUMENTS, False) in COMMANDS["stack"] and (ARGUMENTS, False) in COMMANDS["explain stack"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_command_lines_exit_0_or_2(hostile, monkeypatch, data):
    root, paths = hostile
    check(data.draw(command_lines(paths)), root, paths, monkeypatch)


@pytest.mark.fuzz
@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_many_hostile_command_lines_exit_0_or_2(hostile, monkeypatch, data):
    root, paths = hostile
    check(data.draw(command_lines(paths)), root, paths, monkeypatch)


# (command line, exit code): each once ran for minutes or forever, or ran out of memory.
SLOW_BEFORE = [
    (("demo", "pool", "--input", "; ".join(" ".join(["1"] * 100) for _ in range(100))), 2),
    (("demo", "pool", "--input", "; ".join(" ".join(["1"] * 250) for _ in range(250))), 2),
    (("explain", "conv", "--size", "2147483647x2147483647"), 0),  # PyTorch's largest size: answered
    (("explain", "conv", "--size", "2147483648x5"), 2),
    (("explain", "conv", "--size", "99999999999x5"), 2),
    (("conv", "--dataset", "shapes", "--zoom", "2147483647"), 2),
    (("conv", "--config", "/dev/zero"), 2),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv, code", SLOW_BEFORE, ids=[" ".join(a)[:40] for a, _ in SLOW_BEFORE])
def test_what_once_never_ended_answers_in_seconds(tmp_path, argv, code):
    done = subprocess.run([sys.executable, "-m", "convlab", *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CONVLAB_DEBUG": ""})
    assert done.returncode == code, (done.returncode, done.stderr[-500:])
    if code == 2:
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("convlab: error: "), done.stderr[-500:]
    else:
        assert done.stderr == "" and "never read" in done.stdout
    assert not (tmp_path / "logs").exists()
