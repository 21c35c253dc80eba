"""What each command does once its options are read: run an experiment (or only describe it),
the demo lessons, explain and animate. :mod:`convlab.cli` declares the options and calls one
function here; torch is imported only by the functions that run something.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convlab.board import view_commands
from convlab.config import dump_toml, resolve
from convlab.errors import ConfigError, ConvlabError
from convlab.experiment import DataConfig, Experiment
from convlab.stages import ConvConfig, ConvTranspose2dConfig
from convlab.terminal import TerminalReporter, echo

if TYPE_CHECKING:
    from rich.text import Text

    from convlab.explain.explanation import Explanation


def execute(exp: Experiment, *, dry_run: bool, quiet: bool) -> None:
    """``convlab conv|pool``: the run, its progress, and the commands that show it."""
    from convlab import pipeline

    if dry_run:
        _dry_run(*plan_lines(exp))
        return
    reporter = TerminalReporter(quiet)
    summary = pipeline.run(exp, reporter)
    tags = ", ".join(summary["tags"])
    reporter.info(f"logged {summary['steps']} step(s) of {tags} to {summary['run_dir']}")
    _how_to_view(reporter, exp.run.logdir)


# What a dry run ends with, after saying what would run.
DRY_RUN_END = "dry run: nothing was loaded or written"


def _dry_run(*lines: str) -> None:
    """What a dry run prints: what would run, then that nothing was."""
    for line in lines:
        typer.echo(line)
    typer.echo(DRY_RUN_END)


def plan_lines(exp: Experiment) -> list[str]:
    """What would run (``--dry-run`` of conv, pool, stack): the resolved config, the plan, the device."""
    from convlab import planning

    p = planning.plan(exp)
    return [dump_toml(exp).rstrip(), "", planning.describe(p),
            f"device: {p.device}; {p.num_steps} step(s) of up to {exp.data.batch_size} image(s)"]


def train_plan_lines(exp: Experiment) -> list[str]:
    """What a training run would do (``convlab train --dry-run``)."""
    from convlab import planning
    from convlab.train.plan import describe_training, plan_training

    tp = plan_training(exp)
    return [dump_toml(exp).rstrip(), "", planning.describe(tp.stack), describe_training(tp), f"device: {tp.stack.device}"]


def sweep_plan_lines(sw: Any) -> list[str]:
    """What a sweep would run (``convlab sweep --dry-run``): its table of combinations."""
    from convlab.sweep import describe

    p = sw.runs[0].plan
    return [describe(sw), f"device: {p.device}; {p.num_steps} step(s) of up to {sw.exp.data.batch_size} image(s), each through every run"]


def _how_to_view(reporter: TerminalReporter, logdir: str | Path) -> None:
    """Every command that logs ends with both ways to see what it logged."""
    board_command, tensorboard_command = view_commands(logdir)
    reporter.info(f"view it: {board_command}")
    reporter.info(f"     or: {tensorboard_command}")


def train(exp: Experiment, *, dry_run: bool, quiet: bool) -> None:
    """``convlab train``: the training run, its progress, where model.pt is and how to see the run."""
    from convlab.train.run import train as train_stack

    if dry_run:
        _dry_run(*train_plan_lines(exp))
        return
    reporter = TerminalReporter(quiet)
    summary = train_stack(exp, reporter)
    chance = 1 / summary["classes"]
    reporter.info(
        f"test accuracy {summary['test_accuracy']:.1%} (chance {chance:.1%}; loss {summary['test_loss']:.4g}) on "
        f"{summary['eval_images']:,} images of {summary['eval_set']} after {summary['steps']} step(s) in "
        f"{summary['seconds']:.1f} s; weights: {summary['model']}"
    )
    for note in summary["advice"]:  # an accuracy about chance, a loss that has not fallen: what to try
        reporter.info(f"note: {note}")
    _how_to_view(reporter, exp.run.logdir)


def top(
    overrides: dict[str, dict[str, Any]], *, config: Path | None, run: Path | None, out: Path | None, as_json: bool,
    dry_run: bool, quiet: bool,
) -> None:
    """``convlab top``: the pass, then the channel tables (or the JSON) and where the pictures are."""
    from convlab.top.plan import resolve_top
    from convlab.top.run import result_json, run_top

    exp = resolve_top(overrides, config, run)
    if dry_run:
        _dry_run(*top_plan_lines(exp))
        return
    reporter = TerminalReporter(quiet or as_json)
    summary, result = run_top(exp, reporter, out=out)
    if as_json:
        typer.echo(result_json(summary, result))
        return
    if not quiet:
        from rich.text import Text

        for st in result.stages:
            echo([Text(text, style=style) for style, text in result.table(st)] + [Text("")])
        echo([Text(text, style=style) for style, text in result.ranking()])
    reporter.info(f"logged the top {exp.top.k} patches of {len(result.stages)} stage(s) over {result.images} image(s) "
                  f"to {summary['run_dir']}" + (f"; sheets in {out}" if out is not None else ""))
    _how_to_view(reporter, exp.run.logdir)


def top_plan_lines(exp: Experiment) -> list[str]:
    """What ``convlab top --dry-run`` prints: the resolved config, the stack, the stages and channels shown."""
    from convlab import planning
    from convlab.top.plan import describe_top, plan_top

    tp = plan_top(exp)
    return [dump_toml(exp).rstrip(), "", planning.describe(tp.stack), describe_top(tp), f"device: {tp.stack.device}"]


def predict(
    inputs: list[str], overrides: dict[str, dict[str, Any]], *, run: Path | None, config: Path | None, out: Path | None,
    as_json: bool, dry_run: bool, quiet: bool,
) -> None:
    """``convlab predict``: the model and the images resolved and checked, then predicted; --json
    prints only the JSON document."""
    from convlab.predict import plan as planned
    from convlab.predict import run as prediction

    exp = planned.resolve_prediction(inputs, overrides, run=run, config=config)
    pp = planned.plan_prediction(exp, out)
    if dry_run:
        _dry_run(*planned.dry_run_lines(pp))
        return
    reporter = TerminalReporter(quiet or as_json)
    summary = prediction.predict(pp, reporter, records=as_json)
    if as_json:
        typer.echo(prediction.json_document(pp, summary))
        return
    shown, predicted = summary["pictured"], summary["predicted"]
    pictures = ("no pictures (--pictures 0)" if not shown else f"the pictures of {shown} image(s)" if shown >= predicted
                else f"the pictures of the first {shown} image(s)")
    reporter.info(f"logged {pictures} and every prediction ({prediction.PREDICTIONS_FILE}) to {summary['run_dir']}")
    _how_to_view(reporter, exp.run.logdir)


def sweep(
    command: str, overrides: dict[str, dict[str, Any]], *, config: Path | None, vary: list[str] | None,
    skip_invalid: bool, dry_run: bool, quiet: bool,
) -> None:
    """``convlab sweep conv|pool|stack``: every combination planned, then one pass over the data."""
    from convlab.sweep import prepare
    from convlab.sweep import run as run_sweep

    sw = prepare(command, overrides, config, vary or [], skip_invalid=skip_invalid)
    if dry_run:
        _dry_run(*sweep_plan_lines(sw))
        return
    reporter = TerminalReporter(quiet)
    summary = run_sweep(sw, reporter)
    reporter.info(f"logged {summary['steps']} step(s) of {len(summary['runs'])} run(s) and 'compare' to {summary['sweep_dir']}")
    _how_to_view(reporter, summary["sweep_dir"])


# ----------------------------------------------------------------------------- demo
# The layer options are the experiment commands' own, validated by the same config.resolve,
# so their errors read the same.


def demo_pool(*, layer: dict[str, Any], input_matrix: str | None) -> None:
    """MaxPool2d by hand, with ceil_mode off and on unless ``layer`` says which."""
    echo(demo_pool_lines(layer=layer, input_matrix=input_matrix))


def demo_pool_lines(*, layer: dict[str, Any], input_matrix: str | None) -> list[Text]:
    from convlab.demo import pool_demo
    from convlab.lessons import POOL_INPUT, parse_matrix

    matrix = parse_matrix(input_matrix, "--input") if input_matrix is not None else POOL_INPUT
    modes = [False, True] if layer.get("ceil_mode") is None else [layer["ceil_mode"]]
    layers = [resolve("pool", {"pool": {**layer, "ceil_mode": m}}).layer for m in modes]
    return pool_demo(layers, matrix)


def demo_conv(*, layer: dict[str, Any], input_matrix: str | None, weight: str | None, cell: str | None) -> None:
    """F.conv2d by hand: stride 1, stride 2 and padding 1 unless ``layer`` sets stride, padding or dilation."""
    echo(demo_conv_lines(layer=layer, input_matrix=input_matrix, weight=weight, cell=cell))


def demo_conv_lines(*, layer: dict[str, Any], input_matrix: str | None, weight: str | None, cell: str | None) -> list[Text]:
    from convlab.demo import conv_demo
    from convlab.lessons import CONV_INPUT, kernel_weights, parse_matrix, size_of

    matrix = parse_matrix(input_matrix, "--input") if input_matrix is not None else CONV_INPUT
    geometry = {k: layer.get(k) for k in ("stride", "padding", "dilation")}
    settings = [geometry]
    if all(v is None for v in geometry.values()):
        settings = [dict(stride=1), dict(stride=2), dict(stride=1, padding=1)]
    # The kernel's size comes from the weights; --kernel alone asks for a box of ones.
    kernel = layer.get("kernel_size")
    kernel_size = resolve("conv", {"conv": dict(kernel_size=kernel)}).layer.kernel_size if kernel is not None else None
    weights = kernel_weights(weight, kernel_size)
    layers = [
        resolve("conv", {"conv": dict(kernel_size=list(size_of(weights)), in_channels=1, out_channels=1, bias=False, **s)}).layer
        for s in settings
    ]
    return conv_demo(layers, matrix, weights, cell)


def demo_convtranspose(
    *, layer: dict[str, Any], case: str | None, input_matrix: str | None, weight: str | None, cell: str | None
) -> None:
    """F.conv_transpose2d by hand: back up from the conv lesson's outputs unless ``layer`` or ``case`` says which."""
    echo(demo_convtranspose_lines(layer=layer, case=case, input_matrix=input_matrix, weight=weight, cell=cell))


def demo_convtranspose_lines(
    *, layer: dict[str, Any], case: str | None, input_matrix: str | None, weight: str | None, cell: str | None
) -> list[Text]:
    from convlab.demo import convtranspose_demo
    from convlab.lessons import kernel_weights, parse_matrix, size_of, transposed_case_layer

    matrix = parse_matrix(input_matrix, "--input") if input_matrix is not None else None
    if case is not None:
        _case_alone(layer)
        cfg, n = transposed_case_layer(case)
        if matrix is None:  # the case's size, numbered 1, 2, ... row by row
            matrix = [[r * n[1] + c + 1 for c in range(n[1])] for r in range(n[0])]
        return convtranspose_demo([cfg], kernel_weights(weight, cfg.kernel_size), matrix=matrix, cell=cell)
    kernel = layer.get("kernel_size")
    weights = kernel_weights(weight, parse_pair_option(kernel, "--kernel") if kernel is not None else None)
    geometry = {k: layer.get(k) for k in ("stride", "padding", "dilation", "output_padding")}
    settings = [geometry]
    if all(v is None for v in geometry.values()):
        settings = [dict(stride="1"), dict(stride="2"), dict(stride="1", padding="1")]
    layers = [convtranspose_layer(in_channels=1, out_channels=1, kernel_size="x".join(map(str, size_of(weights))), bias=False, **s)
              for s in settings]
    return convtranspose_demo(layers, weights, matrix=matrix, cell=cell)


def _case_alone(layer: dict[str, Any]) -> None:
    given = [f"--{k.replace('_size', '').replace('_', '-')}" for k, v in layer.items() if v is not None and k not in ("in_channels", "out_channels", "bias")]
    if given:
        raise ConfigError(f"--case gives the layer; leave out {', '.join(given)}")


def parse_pair_option(value: str | None, name: str) -> tuple[int, int] | None:
    """A layer option as typed (``3``, ``3x5``): a pair, or None when left out."""
    from convlab.values import parse_pair

    if value is None:
        return None
    pair = parse_pair(value, name)
    if isinstance(pair, str):  # pragma: no cover - parse_pair takes no words here
        raise ConfigError(f"{name}: expected a number or HxW, got {value!r}")
    return pair


def convtranspose_layer(
    *, in_channels: int | None = None, out_channels: int | None = None, kernel_size: str | None = None, stride: str | None = None,
    padding: str | None = None, output_padding: str | None = None, dilation: str | None = None, groups: int | None = None,
    bias: bool | None = None,
) -> ConvTranspose2dConfig:
    """A ConvTranspose2d from its options as typed, checked as a stack's would be (defaults: 6 -> 3 channels, kernel 3)."""
    from convlab.stages import STAGE_VALIDATORS

    def pair(value: str | None, name: str, default: tuple[int, int]) -> tuple[int, int]:
        return parse_pair_option(value, name) or default

    cfg = ConvTranspose2dConfig(
        6 if in_channels is None else in_channels, 3 if out_channels is None else out_channels, pair(kernel_size, "--kernel", (3, 3)),
        pair(stride, "--stride", (1, 1)), pair(padding, "--padding", (0, 0)), pair(output_padding, "--output-padding", (0, 0)),
        1 if groups is None else groups, True if bias is None else bias, pair(dilation, "--dilation", (1, 1)),
    )
    STAGE_VALIDATORS[cfg.kind](cfg)
    return cfg


# ----------------------------------------------------------------------------- explain


def explain(exp: Experiment, *, size: str | None, channels: int | None, animate: Path | None, logdir: Path | None) -> None:
    """The arithmetic of ``exp``'s layer; with ``animate``, also the GIF (and its frames in ``logdir``)."""
    from convlab.explain.inputs import input_shape, parse_size
    from convlab.explain.windows import explain as explanation

    if logdir is not None and animate is None:
        raise ConvlabError("--logdir logs the animation's frames; give --animate FILE.gif too")
    echo(explanation(exp.layer, input_shape(exp, size, channels)).rich())
    if animate is None:
        return
    from convlab.animate import animate as draw

    report = draw(exp, animate, size=parse_size(size) if size else None, logdir=logdir)
    _animation_lines(report, animate, logdir)


def _animation_lines(report: dict[str, Any], animate: Path, logdir: Path | None) -> None:
    h, w = report["size"]
    typer.echo(
        f"animation: {report['frames']} frames ({report['frame_size'][0]}x{report['frame_size'][1]} px, "
        f"{report['bytes'] / 1024:.0f} KiB) of a {h}x{w} input -> {animate}"
    )
    if report["run_dir"]:
        typer.echo(f"frames in TensorBoard: {report['run_dir']} (tag 'animation'); view it: convlab board --logdir {shlex.quote(str(logdir))}")


def explain_convtranspose(
    *, layer: dict[str, Any], case: str | None, size: str | None, animate: Path | None, logdir: Path | None
) -> None:
    """A ConvTranspose2d explained on what Conv2d with the same arguments makes of the dataset's
    images (or ``--size``, or a conv_arithmetic ``case``); with ``animate``, the GIF too."""
    if logdir is not None and animate is None:
        raise ConvlabError("--logdir logs the animation's frames; give --animate FILE.gif too")
    cfg, shape, explained = convtranspose_explanation(layer=layer, case=case, size=size)
    echo(explained.rich())
    if animate is None:
        return
    from datetime import datetime

    from convlab.animate import animate_layer
    from convlab.geometry import hw

    settings = [f"k{hw(cfg.kernel_size)}", f"s{hw(cfg.stride)}", f"p{hw(cfg.padding)}", f"op{hw(cfg.output_padding)}"]
    name = "-".join(["animate", "convtranspose", *settings, datetime.now().strftime("%Y%m%d-%H%M%S")])
    report = animate_layer(cfg, animate, size=shape[1:] if size or case else None, logdir=logdir, run_name=name)
    _animation_lines(report, animate, logdir)


def convtranspose_explanation(
    *, layer: dict[str, Any], case: str | None, size: str | None
) -> tuple[ConvTranspose2dConfig, tuple[int, int, int], Explanation]:
    """The layer of ``convlab explain convtranspose`` (its options as typed, or a conv_arithmetic
    ``case``), its input's shape, and its explanation."""
    from convlab.data import get_dataset
    from convlab.explain.transposed import convtranspose_input
    from convlab.explain.transposed import explain_convtranspose as explanation

    data = DataConfig()
    c, h, w = get_dataset(data.dataset).shape(data)
    if case is not None:
        from convlab.lessons import transposed_case_layer

        _case_alone({k: v for k, v in layer.items() if k != "in_channels"})
        cfg, n = transposed_case_layer(case)
        shape, source = (cfg.in_channels, *n), None
        if size is not None:
            raise ConfigError("--case gives the input's size; leave out --size")
    else:
        cfg = convtranspose_layer(**{"out_channels": c, **{k: v for k, v in layer.items() if v is not None}})
        shape, source = convtranspose_input(cfg, (c, h, w), size)
    return cfg, shape, explanation(cfg, shape, conv_from=source)


def explain_unpool(exp: Experiment, *, size: str | None, channels: int | None, output_size: str | None) -> None:
    """MaxUnpool2d after ``exp``'s MaxPool2d."""
    from convlab.explain.unpooling import explain_unpool_input

    echo(explain_unpool_input(exp, size, channels, output_size).rich())


def explain_stack(exp: Experiment, *, size: str | None, channels: int | None) -> None:
    """The stack's table on the dataset's images, or on ``--channels`` x ``--size``."""
    from convlab.stack import explain_stack as table

    echo(table(exp.stages, stack_input_shape(exp, size=size, channels=channels)).rich())


def stack_input_shape(exp: Experiment, *, size: str | None, channels: int | None) -> tuple[int, int, int]:
    """What a stack is explained on: the dataset's images, or ``--channels`` x ``--size``."""
    from convlab.data import get_dataset
    from convlab.explain.inputs import parse_size

    c, h, w = get_dataset(exp.data.dataset).shape(exp.data)
    first = exp.stages[0] if exp.stages else None
    if channels is not None:
        c = channels
    elif isinstance(first, ConvConfig) and first.in_channels is not None:
        c = first.in_channels  # explain the stack as written, whatever the default dataset has
    if size is not None:
        h, w = parse_size(size)
    return c, h, w
