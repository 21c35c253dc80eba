"""Exit code 1 means a bug, only a bug: hostile command lines drawn from the real CLI's own
grammar (every command and option typer declares), and hostile file contents (weights files,
config files, run directories, and the values they produce), end in 0 or one line and exit 2,
never a traceback or a raw warning, and leave a run directory only when they succeed.

The default run draws a modest number of examples; ``pytest -m fuzz`` draws many more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
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


# ----------------------------------------------------------------------------- file contents
# What the argv grammar does not draw: the contents of weights files, config files and run
# directories, and the values they produce, through conv, stack, train and sweep (issue 25).

# Values from a grammar: signed zeros, subnormals, magnitudes from 1e13 (where float32 sums stop
# resolving) to float32's edge, infinities and NaN, beside ordinary ones.
SPECIAL_VALUES = [0.0, -0.0, 1e-45, -1e-40, 1e-30, 1.0, -1.0, 0.5, 1e13, -7e13, 1e15, 1e30, 1e37, 3e38, -3e38,
                  float("inf"), float("-inf"), float("nan")]
VALUES = st.one_of(st.sampled_from(SPECIAL_VALUES), st.floats(1e13, 3e38), st.floats(-2, 2))
DTYPES = [torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]
STORAGES = ["dense"] * 6 + ["meta", "sparse", "quantized", "noncontiguous"]
# The stack the weights files are drawn for: every weighted layer kind, small (2 channels of 32x32);
# a sweep's runs end in a map, so a sweep takes its first four stages.
FUZZ_STACK = ["Conv2d(3, 2, 3)", "BatchNorm2d(2)", "ReLU()", "ConvTranspose2d(2, 2, 3)", "Flatten()", "Linear(2048, 10)"]
FUZZ_STATE = {  # its state_dict, in order: name -> shape
    "0.weight": (2, 3, 3, 3), "0.bias": (2,), "1.weight": (2,), "1.bias": (2,), "1.running_mean": (2,),
    "1.running_var": (2,), "1.num_batches_tracked": (), "3.weight": (2, 2, 3, 3), "3.bias": (2,),
    "5.weight": (10, 2048), "5.bias": (10,),
}


@st.composite
def tensors(draw, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """A tensor for ``name``: mostly its shape, any dtype and storage, values from the grammar."""
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.sampled_from([(), (1,), (3, 2), tuple(s + 1 for s in shape) or (2,)]))
    dtype = torch.int64 if name.endswith("num_batches_tracked") and draw(st.booleans()) else draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["constant", "normal", "one-special"]))
    special = draw(VALUES)
    numel = int(np.prod(shape)) if shape else 1
    if kind == "constant":
        values = np.full(numel, special)
    else:
        values = np.random.default_rng(draw(st.integers(0, 99))).normal(0, draw(st.sampled_from([0.1, 1.0, 1e20])), numel)
        if kind == "one-special" and numel:
            values[draw(st.integers(0, numel - 1))] = special
    if name.endswith("running_var") and draw(st.integers(0, 3)) == 0:
        values = -np.abs(values) - 1  # a negative variance
    with np.errstate(all="ignore"):
        t = torch.from_numpy(values.astype(np.float64)).reshape(shape).to(dtype)
    storage = draw(st.sampled_from(STORAGES))
    if storage == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    if storage == "sparse" and t.dim() > 0:
        return t.to_sparse()
    if storage == "quantized" and t.dtype == torch.float32:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensors are deprecated; files may still hold them
            return torch.quantize_per_tensor(t.nan_to_num().clamp(-100, 100), 0.1, 0, torch.qint8)
    if storage == "noncontiguous" and t.dim() > 1:
        return t.transpose(0, -1).contiguous().transpose(0, -1)  # the same shape, strided otherwise
    return t


def plain(shape: tuple[int, ...], name: str) -> torch.Tensor:
    """What a trained model's file holds: float32, small values, variances above 0."""
    if name.endswith("num_batches_tracked"):
        return torch.tensor(5)
    t = torch.randn(shape) * 0.1
    return t.abs() + 0.5 if name.endswith("running_var") else t


@st.composite
def weights_files(draw, state: dict[str, tuple[int, ...]]) -> object:
    """What ``torch.save`` is given: a state_dict (keys missing or extra), a checkpoint holding one, a bare tensor."""
    names = list(state)
    if draw(st.integers(0, 5)) == 0:
        del names[draw(st.integers(0, len(names) - 1))]  # a missing key
    # Half the files are hostile throughout; the others a model's own but for one tensor drawn from
    # the grammar, or none (no false refusal), so that runs go on.
    hostile = set(names) if draw(st.booleans()) else set() if draw(st.integers(0, 2)) == 0 else {draw(st.sampled_from(names))}
    saved = {name: draw(tensors(state.get(name, (2,)), name)) if name in hostile else plain(state[name], name) for name in names}
    if draw(st.integers(0, 5)) == 0:
        saved["9.extra"] = draw(tensors((3,), "extra"))  # an extra key
    return draw(st.sampled_from([saved, {"model_state_dict": saved, "epoch": 3}, next(iter(saved.values()), torch.zeros(1))]))


def _save(obj: object, path: Path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
        return
    torch.save(obj, path, _use_new_zipfile_serialization=how != "legacy")
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])


def check_run(argv: list[str], work: Path, before: set[Path] = frozenset()) -> int:
    """Exit 0 or 2 and nothing else: no traceback, no warning printed raw, no run left unless it ended."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_in_process(argv, work)
    event(f"{argv[0]}: exit {code}")
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    assert [str(w.message) for w in caught] == [], argv
    if code == 2:
        conftest.assert_user_error(conftest.Result(code, out, err), "")
    else:
        assert err == "", (argv, err)  # -q: nothing but errors
    runs = {p for p in (work / "logs").rglob("summary.json")} - set(before) if (work / "logs").is_dir() else set()
    if code == 2:
        assert runs == set(), (argv, err, runs)
    for summary in runs:
        assert '"status": "complete"' in summary.read_text(), (argv, summary)
    return code


RUN = ["--dataset", "shapes", "-b", "2", "--logdir", "logs", "-q"]


def weights_runs(draw) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    command = draw(st.sampled_from(["conv", "stack", "train", "sweep stack"]))
    if command == "conv":
        return ["conv", "-c", "2", "-n", "1", *RUN, "--weights"], {"weight": (2, 3, 3, 3), "bias": (2,)}
    if command == "sweep stack":
        state = {k: v for k, v in FUZZ_STATE.items() if int(k.split(".")[0]) < 4}
        return ["sweep", "stack", *FUZZ_STACK[:4], *RUN, "-n", "1", "--vary", "max_channels=1,2", "--weights"], state
    argv = [*command.split(), *FUZZ_STACK, *RUN]
    argv += {"stack": ["-n", "1"], "train": ["--max-steps", "1", "--eval-batches", "1"]}[command]
    return [*argv, "--init-weights" if command == "train" else "--weights"], FUZZ_STATE


def fuzz_weights(data, base: Path) -> None:
    argv, state = weights_runs(data.draw)
    work = Path(tempfile.mkdtemp(dir=base))
    how = data.draw(st.sampled_from(["zip"] * 6 + ["legacy", "truncated", "empty"]))
    _save(data.draw(weights_files(state)), work / "w.pt", how)
    check_run([*argv, "w.pt"], work)


# Config files: the real sections and keys, a few unknown ones, values of every TOML type.
TOML_VALUES = st.one_of(
    st.integers(-3, 40).map(str), st.sampled_from(["0", "-1", "9" * 30, "1.5", "nan", "inf", "-inf", "1e400", "true", "false"]),
    st.sampled_from(['"3x5"', '"same"', '""', '"sobel-x,laplacian"', '"a\\u0000b"', '"cpu"', '"shapes"', '"none"', '"w.pt"']),
    st.sampled_from(["[]", "[2, 3]", "[2, 2]", '["3", 3]', "[[]]", '["ReLU()", "Sigmoid()"]', '[["ReLU()"], []]', "{}",
                     "{ a = 1 }", '"Conv2d(3, 2, 3)"']),
)
CONFIG_KEYS = {
    "conv": ["kernel_size", "stride", "padding", "dilation", "out_channels", "groups", "init", "weights", "bias", "nope"],
    "pool": ["kernel_size", "stride", "padding", "ceil_mode", "mode", "unpool"],
    "stack": ["layers", "weights", "max_channels", "pretrained", "upto"],
    "train": ["lr", "epochs", "max_steps", "eval_split", "holdout", "optimizer", "eval_batches"],
    "data": ["batch_size", "max_batches", "split", "dataset", "image_size"],
    "run": ["seed", "device", "run_name"],
    "views": ["show", "scale", "images", "zoom"],
}


# Values each key takes, so that about half the files drawn run.
PLAUSIBLE = {
    "kernel_size": ["2", "3", '"3x1"'], "stride": ["1", "2"], "padding": ["0", "1", '"same"'], "dilation": ["1", "2"],
    "out_channels": ["2", "4"], "groups": ["1"], "init": ['"random"', '"sobel-x,sobel-y"'], "bias": ["true", "false"],
    "ceil_mode": ["true", "false"], "mode": ['"max"', '"avg"'], "unpool": ["false"], "max_channels": ["1", "4"],
    "lr": ["0.01", "1e30"], "epochs": ["1"], "max_steps": ["1"], "eval_split": ['"test"'], "holdout": ["0.5"],
    "optimizer": ['"adam"'], "eval_batches": ["1"], "batch_size": ["1", "2"], "max_batches": ["1"], "split": ['"test"'],
    "dataset": ['"shapes"'], "seed": ["0", "7"], "device": ['"cpu"'], "run_name": ['"r"'], "show": ['"stats"', '"none"'],
    "scale": ['"raw"', '"minmax"'], "images": ["1", "2"], "zoom": ["1", "2"], "layers": ['["ReLU()", "MaxPool2d(2)"]'],
}


def config_value(draw, key: str) -> str:
    if key in PLAUSIBLE and draw(st.booleans()):
        return draw(st.sampled_from(PLAUSIBLE[key]))
    return draw(TOML_VALUES)


@st.composite
def config_files(draw, command: str) -> str:
    """Half the files are hostile throughout (any command, section, key and value); half are the
    command's own sections and keys with plausible values but for one, so that many run."""
    hostile = draw(st.booleans())
    own = "stack" if command in ("train", "sweep stack") else command.split()[-1]
    lines = []
    if draw(st.booleans()):
        named = command.split()[-1] if command != "sweep stack" else "stack"
        lines.append(f'command = "{draw(st.sampled_from(["conv", "pool", "stack", "train", "sweep"])) if hostile else named}"')
    allowed = sorted(CONFIG_KEYS) if hostile else [own, "data", "run", "views", *(["train"] if command == "train" else [])]
    sections = draw(st.lists(st.sampled_from(allowed), max_size=3, unique=True))
    odd = draw(st.integers(0, 9))  # the one key (of the first ten) given any value in a plausible file
    for section in [own, *[s for s in sections if s != own]]:
        lines.append(f"[{section}]")
        if section == "stack" and (not hostile or draw(st.integers(0, 3))):
            lines.append('layers = ["Conv2d(3, 2, 3)", "ReLU()"]' if command != "train" else f"layers = {FUZZ_STACK!r}".replace("'", '"'))
        keys = [k for k in CONFIG_KEYS[section] if hostile or (k in PLAUSIBLE and k not in ("layers", "weights", "run_name"))]
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if keys else []:
            value = config_value(draw, key) if hostile or odd == len(lines) % 10 else draw(st.sampled_from(PLAUSIBLE[key]))
            lines.append(f"{key} = {value}")
    if command.startswith("sweep") or (hostile and draw(st.integers(0, 4)) == 0):
        key = draw(st.sampled_from([k for k in CONFIG_KEYS[own][:6] if hostile or k in ("kernel_size", "stride", "max_channels")]))
        values = draw(st.sampled_from(["[2, 3]", "[1, 2]"])) if not hostile or draw(st.booleans()) else draw(TOML_VALUES)
        lines += ["[sweep]", f"vary = {{ {key} = {values} }}"]
    return "\n".join(lines) + "\n"


def fuzz_config(data, base: Path) -> None:
    command = data.draw(st.sampled_from(["conv", "pool", "stack", "train", "sweep conv", "sweep stack"]))
    work = Path(tempfile.mkdtemp(dir=base))
    (work / "c.toml").write_text(data.draw(config_files(command)))
    more = ["--max-steps", "1", "--eval-batches", "1"] if command == "train" else ["-n", "1"]
    dry = ["--dry-run"] if data.draw(st.booleans()) else []
    check_run([*command.split(), "--config", "c.toml", *RUN, *more, *dry], work)


SUMMARIES = ["fifo", "huge", "truncated", "steps-text", "steps-huge", "nested", "binary", "dir", "good"]


def _summary(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with path.open("wb") as f:
            f.truncate(10 << 30)  # 10 GB, sparse: nothing is written
    elif kind == "dir":
        path.mkdir()
    else:
        path.write_bytes({
            "truncated": b'{"steps": 12, "planned_ste', "steps-text": b'{"steps": "many"}', "steps-huge": b'{"steps": 1e400}',
            "nested": b"[" * 50_000 + b"]" * 50_000, "binary": bytes(range(256)), "good": b'{"steps": 3, "planned_steps": 3}',
        }[kind])


def fuzz_run_dirs(data, base: Path) -> None:
    """A logdir whose earlier runs hold hostile files, then a command that reads them."""
    work = Path(tempfile.mkdtemp(dir=base))
    for i, kind in enumerate(data.draw(st.lists(st.sampled_from(SUMMARIES), min_size=1, max_size=3))):
        run_dir = work / "logs" / f"old{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "events.out.tfevents.1.host").write_bytes(b"")
        _summary(run_dir / "summary.json", kind)
        for name in data.draw(st.lists(st.sampled_from(["config.toml", "model.pt"]), max_size=2, unique=True)):
            _summary(run_dir / name, data.draw(st.sampled_from(SUMMARIES)))
    before = set((work / "logs").rglob("summary.json"))
    target = work / "logs" / "old0"
    argv = data.draw(st.sampled_from([
        ["conv", "-n", "1", *RUN],
        ["stack", "--config", str(target / "config.toml"), "-n", "1", *RUN],
        ["train", *FUZZ_STACK, "--init-weights", str(target / "model.pt"), "--max-steps", "1", "--eval-batches", "1", *RUN],
        ["sweep", "pool", "--vary", "kernel_size=2,3", "-n", "1", *RUN],
    ]))
    check_run(argv, work, before)
    from convlab.board import find_runs, image_samples

    image_samples(find_runs(work / "logs"))  # the board's own reading of every summary


FILE_FUZZERS = {"weights": fuzz_weights, "config": fuzz_config, "run-dirs": fuzz_run_dirs}


@pytest.mark.parametrize("what", sorted(FILE_FUZZERS))
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_file_contents_exit_0_or_2(tmp_path_factory, what, data):
    FILE_FUZZERS[what](data, tmp_path_factory.getbasetemp())


@pytest.mark.fuzz
@pytest.mark.parametrize("what", sorted(FILE_FUZZERS))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_many_hostile_file_contents_exit_0_or_2(tmp_path_factory, what, data):
    FILE_FUZZERS[what](data, tmp_path_factory.getbasetemp())
