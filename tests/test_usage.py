"""--help as a learner reads it: every command says what it is for in one whole sentence, shows
examples that paste into a shell and run as shown, and no on/off flag invites a value."""

from __future__ import annotations

import shlex

import pytest
import typer.main

from convlab.cli import app
from convlab.usage import USAGES

from conftest import REPO

ROOT = typer.main.get_command(app)


def command_paths() -> dict[str, object]:
    """'conv', 'sweep', 'sweep pool', ... -> the click command or group."""
    out = {}

    def walk(command, path: list[str]) -> None:
        if path:
            out[" ".join(path)] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(ROOT, [])
    return out


COMMANDS = command_paths()
LEAVES = [name for name, c in COMMANDS.items() if not getattr(c, "commands", None)]
EXAMPLES = [(name, example) for name in LEAVES for example in USAGES[name].examples]


def test_every_command_and_group_has_its_usage():
    assert sorted(USAGES) == sorted(COMMANDS)
    for name in LEAVES:
        assert len(USAGES[name].examples) >= 2, name


@pytest.mark.parametrize("name", sorted(USAGES))
def test_a_summary_is_one_whole_sentence(name):
    summary = USAGES[name].summary
    assert summary.endswith(".") and "\n" not in summary and len(summary) <= 110, summary


SHELL_SYNTAX = set(";&|<>()`$")


def unquoted(command: str) -> str:
    """The characters of a shell command line that are outside quotes (POSIX rules)."""
    out, quote, escaped = [], None, False
    for ch in command:
        if escaped:
            escaped = False
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    assert quote is None, f"unterminated quote in {command}"
    return "".join(out)


@pytest.mark.parametrize("name, example", EXAMPLES)
def test_examples_paste_into_a_shell(name, example):
    """What the shell would read as its own syntax (';', '(', '|', ...) is inside quotes."""
    assert not SHELL_SYNTAX & set(unquoted(example)), f"quote the value in: {example}"
    assert shlex.split(example)[: 1 + len(name.split())] == ["convlab", *name.split()]


def test_the_quote_check_can_fail():
    assert set(unquoted("convlab sweep conv --vary init=sobel-x;laplacian")) & SHELL_SYNTAX == {";"}
    assert not set(unquoted("convlab sweep conv --vary 'init=sobel-x;laplacian'")) & SHELL_SYNTAX


def _dry_run(run_cli, tmp_path, argv: list[str]):
    (tmp_path / "configs").symlink_to(REPO / "configs")
    command = argv[0] if argv[0] in ("conv", "pool", "stack", "train", "predict") else " ".join(argv[:2])
    takes_dry_run = command.split()[0] in ("conv", "pool", "stack", "train", "sweep", "predict")
    if command == "predict":
        _predict_example_files(tmp_path)
    return run_cli(*argv, *(["--dry-run"] if takes_dry_run else []))


def _predict_example_files(root) -> None:
    """What convlab predict's examples name: a photo, a folder of them, the lesson's model trained
    (logs/train/lesson, its config.toml and model.pt; untrained weights do for a dry run) and its model.pt."""
    import numpy as np
    import torch
    from PIL import Image

    from convlab import planning
    from convlab.config import resolve

    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(root / "photo.jpg")
    (root / "my_photos" / "cat").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(root / "my_photos" / "cat" / "1.png")
    run = root / "logs" / "train" / "lesson"
    run.mkdir(parents=True)
    lesson = (REPO / "configs" / "cifar10-model.toml").read_text().replace('command = "stack"', 'command = "train"')
    (run / "config.toml").write_text(lesson + "\n[train]\n")
    p = planning.plan(resolve("stack", {"run": {"device": "cpu"}}, REPO / "configs" / "cifar10-model.toml"))
    torch.save(torch.nn.Sequential(*(s.module for s in p.stages)).state_dict(), run / "model.pt")
    (root / "model.pt").write_bytes((run / "model.pt").read_bytes())


@pytest.mark.parametrize("name, example", [e for e in EXAMPLES if e[0] != "board"])
def test_every_example_runs_as_shown(run_cli, tmp_path, name, example):
    r = _dry_run(run_cli, tmp_path, shlex.split(example)[1:])
    assert r.code == 0, (example, r.err)
    assert r.out.strip()


@pytest.mark.parametrize("example", USAGES["board"].examples)
def test_the_board_examples_parse(example):
    command = COMMANDS["board"]
    ctx = command.make_context("board", shlex.split(example)[2:])
    assert ctx.params["logdir"].name == "logs"


@pytest.mark.parametrize("name", sorted(USAGES))
def test_help_shows_the_description_and_examples_and_no_bool_metavar(run_cli, name):
    r = run_cli(*name.split(), "--help")
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert "<bool>" not in r.out
    assert " ".join(USAGES[name].summary.split()) in text
    for example in USAGES[name].examples:
        assert example in text, example


def test_the_command_list_shows_each_summary_whole(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = run_cli("--help")
    for name in ("conv", "pool", "stack", "train", "board", "sweep", "demo", "explain"):
        line = next(line for line in r.out.splitlines() if line.strip("│ ").startswith(f"{name} "))
        assert USAGES[name].summary in line, line


@pytest.mark.parametrize("command, listed, left_out", [
    (["conv"], {"channels", "kernels", "stats"}, {"features", "classes"}),
    (["pool"], {"channels", "stats"}, {"kernels", "features", "classes"}),
    (["sweep", "pool"], {"channels", "stats"}, {"kernels", "features"}),
    (["stack"], {"channels", "kernels", "stats", "features", "classes"}, set()),
])
def test_views_lists_only_the_views_that_apply(command, listed, left_out):
    target = COMMANDS[" ".join(command)]
    option = next(p for p in target.params if "--views" in getattr(p, "opts", ()))
    shown = set(option.help.split(":", 1)[1].split(", or none")[0].replace(" ", "").split(","))
    assert listed <= shown and not (left_out & shown), shown
