"""What each command does once its options are read: run an experiment (or only describe it),
the demo lessons, explain and animate. :mod:`convlab.cli` declares the options and calls one
function here; torch is imported only by the functions that run something.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from convlab import board
from convlab.config import ConvConfig, ConvlabError, Experiment, dump_toml, resolve
from convlab.terminal import TerminalReporter, echo


def execute(exp: Experiment, *, dry_run: bool, quiet: bool) -> None:
    """``convlab conv|pool``: the run, its progress, and the commands that show it."""
    from convlab import pipeline, planning

    if dry_run:
        p = planning.plan(exp)
        _dry_run(dump_toml(exp).rstrip(), "", planning.describe(p),
                 f"device: {p.device}; {p.num_steps} step(s) of up to {exp.data.batch_size} image(s)")
        return
    reporter = TerminalReporter(quiet)
    summary = pipeline.run(exp, reporter)
    tags = ", ".join(summary["tags"])
    reporter.info(f"logged {summary['steps']} step(s) of {tags} to {summary['run_dir']}")
    _how_to_view(reporter, exp.run.logdir)


def _dry_run(*lines: str) -> None:
    """What a dry run prints: what would run, then that nothing was."""
    for line in lines:
        typer.echo(line)
    typer.echo("dry run: nothing was loaded or written")


def _how_to_view(reporter: TerminalReporter, logdir: str | Path) -> None:
    """Every command that logs ends with both ways to see what it logged."""
    board_command, tensorboard_command = board.view_commands(logdir)
    reporter.info(f"view it: {board_command}")
    reporter.info(f"     or: {tensorboard_command}")


def train(exp: Experiment, *, dry_run: bool, quiet: bool) -> None:
    """``convlab train``: the training run, its progress, where model.pt is and how to see the run."""
    from convlab import planning, train

    if dry_run:
        tp = train.plan_training(exp)
        _dry_run(dump_toml(exp).rstrip(), "", planning.describe(tp.stack), train.describe_training(tp),
                 f"device: {tp.stack.device}")
        return
    reporter = TerminalReporter(quiet)
    summary = train.train(exp, reporter)
    chance = 1 / summary["classes"]
    reporter.info(
        f"test accuracy {summary['test_accuracy']:.1%} (chance {chance:.1%}; loss {summary['test_loss']:.4g}) on "
        f"{summary['eval_images']:,} images of {summary['eval_set']} after {summary['steps']} step(s) in "
        f"{summary['seconds']:.1f} s; weights: {summary['model']}"
    )
    for note in summary["advice"]:  # an accuracy about chance, a loss that has not fallen: what to try
        reporter.info(f"note: {note}")
    _how_to_view(reporter, exp.run.logdir)


def sweep(
    command: str, overrides: dict[str, dict[str, Any]], *, config: Path | None, vary: list[str] | None,
    skip_invalid: bool, dry_run: bool, quiet: bool,
) -> None:
    """``convlab sweep conv|pool|stack``: every combination planned, then one pass over the data."""
    from convlab import sweep as sweeps

    sw = sweeps.prepare(command, overrides, config, vary or [], skip_invalid=skip_invalid)
    if dry_run:
        p = sw.runs[0].plan
        _dry_run(sweeps.describe(sw),
                 f"device: {p.device}; {p.num_steps} step(s) of up to {sw.exp.data.batch_size} image(s), each through every run")
        return
    reporter = TerminalReporter(quiet)
    summary = sweeps.run(sw, reporter)
    reporter.info(f"logged {summary['steps']} step(s) of {len(summary['runs'])} run(s) and 'compare' to {summary['sweep_dir']}")
    _how_to_view(reporter, summary["sweep_dir"])


# ----------------------------------------------------------------------------- demo
# The layer options are the experiment commands' own, validated by the same config.resolve,
# so their errors read the same.


def demo_pool(*, layer: dict[str, Any], input_matrix: str | None) -> None:
    """MaxPool2d by hand, with ceil_mode off and on unless ``layer`` says which."""
    from convlab import demo

    matrix = demo.parse_matrix(input_matrix, "--input") if input_matrix is not None else demo.POOL_INPUT
    modes = [False, True] if layer.get("ceil_mode") is None else [layer["ceil_mode"]]
    layers = [resolve("pool", {"pool": {**layer, "ceil_mode": m}}).layer for m in modes]
    echo(demo.pool_demo(layers, matrix))


def demo_conv(*, layer: dict[str, Any], input_matrix: str | None, weight: str | None, cell: str | None) -> None:
    """F.conv2d by hand: stride 1, stride 2 and padding 1 unless ``layer`` sets stride, padding or dilation."""
    from convlab import demo

    matrix = demo.parse_matrix(input_matrix, "--input") if input_matrix is not None else demo.CONV_INPUT
    geometry = {k: layer.get(k) for k in ("stride", "padding", "dilation")}
    settings = [geometry]
    if all(v is None for v in geometry.values()):
        settings = [dict(stride=1), dict(stride=2), dict(stride=1, padding=1)]
    # The kernel's size comes from the weights; --kernel alone asks for a box of ones.
    kernel = layer.get("kernel_size")
    kernel_size = resolve("conv", {"conv": dict(kernel_size=kernel)}).layer.kernel_size if kernel is not None else None
    weights = demo.kernel_weights(weight, kernel_size)
    layers = [
        resolve("conv", {"conv": dict(kernel_size=list(demo.size_of(weights)), in_channels=1, out_channels=1, bias=False, **s)}).layer
        for s in settings
    ]
    echo(demo.conv_demo(layers, matrix, weights, cell))


# ----------------------------------------------------------------------------- explain


def explain(exp: Experiment, *, size: str | None, channels: int | None, animate: Path | None, logdir: Path | None) -> None:
    """The arithmetic of ``exp``'s layer; with ``animate``, also the GIF (and its frames in ``logdir``)."""
    from convlab import explain

    if logdir is not None and animate is None:
        raise ConvlabError("--logdir logs the animation's frames; give --animate FILE.gif too")
    echo(explain.explain(exp.layer, explain.input_shape(exp, size, channels)).rich())
    if animate is None:
        return
    from convlab.animate import animate as draw

    report = draw(exp, animate, size=explain.parse_size(size) if size else None, logdir=logdir)
    h, w = report["size"]
    typer.echo(
        f"animation: {report['frames']} frames ({report['frame_size'][0]}x{report['frame_size'][1]} px, "
        f"{report['bytes'] / 1024:.0f} KiB) of a {h}x{w} input -> {animate}"
    )
    if report["run_dir"]:
        typer.echo(f"frames in TensorBoard: {report['run_dir']} (tag 'animation'); view it: convlab board --logdir {shlex.quote(str(logdir))}")


def explain_unpool(exp: Experiment, *, size: str | None, channels: int | None, output_size: str | None) -> None:
    """MaxUnpool2d after ``exp``'s MaxPool2d."""
    from convlab import explain

    echo(explain.explain_unpool_input(exp, size, channels, output_size).rich())


def explain_stack(exp: Experiment, *, size: str | None, channels: int | None) -> None:
    """The stack's table on the dataset's images, or on ``--channels`` x ``--size``."""
    from convlab import explain
    from convlab.data import get_dataset
    from convlab.stack import explain_stack as table

    c, h, w = get_dataset(exp.data.dataset).shape(exp.data)
    first = exp.stages[0]
    if channels is not None:
        c = channels
    elif isinstance(first, ConvConfig) and first.in_channels is not None:
        c = first.in_channels  # explain the stack as written, whatever the default dataset has
    if size is not None:
        h, w = explain.parse_size(size)
    echo(table(exp.stages, (c, h, w)).rich())
