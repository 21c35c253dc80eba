"""The convlab command line: typer commands only. Each command declares its own options (every
option is declared once, in :mod:`convlab.options`; the groups several commands share are added
by ``with_options``), turns them into an Experiment (config.resolve) and makes one call into
:mod:`convlab.commands`. What each command is for, and its examples, are in :mod:`convlab.usage`.
torch is imported only inside commands that run something, so ``convlab --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperOption

from convlab import __version__, commands, usage
from convlab.board import DEFAULT_HOST, DEFAULT_PORT, serve
from convlab.config import overrides, resolve
from convlab.options import (
    ANIMATE_OPTIONS,
    CONV_LAYER_OPTIONS,
    DATA_OPTIONS,
    EXPLAIN_INPUT_OPTIONS,
    POOL_LAYER_OPTIONS,
    PREDICT_DATA_OPTIONS,
    RUN_OPTIONS,
    STACK_NETWORK_OPTIONS,
    SWEEP_RUN_OPTIONS,
    TRAIN_DATA_OPTIONS,
    AnimateOpt,
    AttributionsOpt,
    BiasOpt,
    CeilOpt,
    CellOpt,
    ChannelsOpt,
    ClassOpt,
    ConvPaddingOpt,
    ConvStrideOpt,
    DilationOpt,
    EpochsOpt,
    EvalBatchesOpt,
    EvalEveryOpt,
    EvalSplitOpt,
    FramesLogdirOpt,
    FromRunOpt,
    GradcamLayerOpt,
    GroupsOpt,
    HoldoutOpt,
    InitWeightsOpt,
    JsonOpt,
    KernelOpt,
    LayersArg,
    LrOpt,
    MatrixOpt,
    MaxChannelsOpt,
    MaxStepsOpt,
    OptimizerOpt,
    OutChannelsOpt,
    OutOpt,
    OutputPaddingOpt,
    OutputSizeOpt,
    PaddingModeOpt,
    PatchesOpt,
    PicturesOpt,
    PoolModeOpt,
    PoolPaddingOpt,
    PoolStrideOpt,
    PredictArgs,
    PredictWeightsOpt,
    PretrainedOpt,
    SheetsOpt,
    ShuffleOpt,
    SkipInvalidOpt,
    SnapshotEveryOpt,
    StackWeightsOpt,
    TargetOpt,
    TopChannelsOpt,
    TopJsonOpt,
    TopKOpt,
    TopStagesOpt,
    TraceOpt,
    TrainingRunOpt,
    TrainTopOpt,
    TransposedCaseOpt,
    TransposedChannelsOpt,
    TransposedOutChannelsOpt,
    TransposedPaddingOpt,
    TransposedSizeOpt,
    UnpoolSizeOpt,
    UptoOpt,
    VaryOpt,
    WeightDecayOpt,
    WeightOpt,
    views_group,
    with_options,
)

# typer prints a value type beside every option, "<bool>" beside on/off flags too, which invites
# "--dry-run true" (an error): a flag takes no value, so it shows none (tests/test_usage.py).
_value_type = TyperOption.display_type_rich
TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _value_type(self, ctx)  # type: ignore[method-assign]

app = typer.Typer(
    name="convlab",
    help=usage.APP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
CONV_VIEWS, POOL_VIEWS, STACK_VIEWS = views_group(("conv",)), views_group(("pool",)), views_group()


def _run(ctx: typer.Context, command: str) -> None:
    """conv, pool, stack: resolve the options (defaults < --config < flags), then run or describe."""
    p = ctx.params
    commands.execute(resolve(command, overrides(command, p), p["config"]), dry_run=p["dry_run"], quiet=p["quiet"])


@app.command(**usage.help_of("conv"))
@with_options(CONV_LAYER_OPTIONS, CONV_VIEWS, DATA_OPTIONS, RUN_OPTIONS)
def conv(ctx: typer.Context) -> None:
    _run(ctx, "conv")


@app.command(**usage.help_of("pool"))
@with_options(POOL_LAYER_OPTIONS, POOL_VIEWS, DATA_OPTIONS, RUN_OPTIONS)
def pool(ctx: typer.Context) -> None:
    _run(ctx, "pool")


@app.command(**usage.help_of("stack"))
@with_options(STACK_NETWORK_OPTIONS, STACK_VIEWS, DATA_OPTIONS, RUN_OPTIONS)
def stack(ctx: typer.Context, layers: LayersArg = None) -> None:
    _run(ctx, "stack")


@app.command(**usage.help_of("train"))
@with_options(STACK_VIEWS, TRAIN_DATA_OPTIONS, RUN_OPTIONS)
def train(
    ctx: typer.Context,
    layers: LayersArg = None, weights: InitWeightsOpt = None,
    optimizer: OptimizerOpt = None, lr: LrOpt = None, weight_decay: WeightDecayOpt = None, epochs: EpochsOpt = None,
    shuffle: ShuffleOpt = None, max_steps: MaxStepsOpt = None,
    eval_every: EvalEveryOpt = None, snapshot_every: SnapshotEveryOpt = None, eval_split: EvalSplitOpt = None,
    eval_batches: EvalBatchesOpt = None, holdout: HoldoutOpt = None, max_channels: MaxChannelsOpt = None, top: TrainTopOpt = None,
) -> None:
    p = ctx.params
    commands.train(resolve("train", overrides("train", p), p["config"]), dry_run=p["dry_run"], quiet=p["quiet"])


@app.command(**usage.help_of("top"))
@with_options(DATA_OPTIONS, RUN_OPTIONS)
def top(
    ctx: typer.Context,
    layers: LayersArg = None, from_run: TrainingRunOpt = None, weights: StackWeightsOpt = None, pretrained: PretrainedOpt = None,
    upto: UptoOpt = None, k: PatchesOpt = None, stages: TopStagesOpt = None, channels: TopChannelsOpt = None,
    class_name: ClassOpt = None, max_channels: MaxChannelsOpt = None, out: SheetsOpt = None, as_json: TopJsonOpt = False,
) -> None:
    p = ctx.params
    settings = overrides("top", p)
    settings["top"]["channels"] = channels  # named as explain's --channels (the input's), an action there
    commands.top(settings, config=p["config"], run=from_run, out=out, as_json=as_json, dry_run=p["dry_run"], quiet=p["quiet"])


@app.command(**usage.help_of("predict"))
@with_options(STACK_VIEWS, PREDICT_DATA_OPTIONS, RUN_OPTIONS)
def predict(
    ctx: typer.Context,
    inputs: PredictArgs = None, from_run: FromRunOpt = None, weights: PredictWeightsOpt = None,
    pretrained: PretrainedOpt = None, upto: UptoOpt = None,
    top_k: TopKOpt = None, target: TargetOpt = None, attributions: AttributionsOpt = None, layer: GradcamLayerOpt = None,
    trace: TraceOpt = None, pictures: PicturesOpt = None, out: OutOpt = None, as_json: JsonOpt = False,
    max_channels: MaxChannelsOpt = None,
) -> None:
    p = ctx.params
    commands.predict(inputs or [], overrides("predict", p), run=from_run, config=p["config"], out=out, as_json=as_json,
                     dry_run=p["dry_run"], quiet=p["quiet"])


@app.command(**usage.help_of("board"))
def board(
    logdir: Annotated[Path, typer.Option("--logdir", help="The logs to show: every run below it.")] = Path("logs"),
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on: 127.0.0.1 is this machine only; 0.0.0.0 is every network interface.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 takes any free port.")] = DEFAULT_PORT,
) -> None:
    serve(logdir, host=host, port=port, info=typer.echo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"convlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an internal error, print the traceback (for bug reports). Also accepted after any command.")
    ] = False,
) -> None:
    """--version and --debug, taken before any command (the app's help is usage.APP)."""


# ----------------------------------------------------------------------------- sweep
# The experiment commands' own options, plus what to vary: the experiment is resolved once
# per combination, by the same config.resolve.

sweep_app = typer.Typer(**usage.help_of("sweep"), no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")


def _sweep(ctx: typer.Context, command: str) -> None:
    p = ctx.params
    commands.sweep(command, overrides(command, p), config=p["config"], vary=p["vary"], skip_invalid=p["skip_invalid"],
                   dry_run=p["dry_run"], quiet=p["quiet"])


@sweep_app.command("conv", **usage.help_of("sweep conv"))
@with_options(CONV_LAYER_OPTIONS, CONV_VIEWS, DATA_OPTIONS, SWEEP_RUN_OPTIONS)
def sweep_conv(ctx: typer.Context, vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False) -> None:
    _sweep(ctx, "conv")


@sweep_app.command("pool", **usage.help_of("sweep pool"))
@with_options(POOL_LAYER_OPTIONS, POOL_VIEWS, DATA_OPTIONS, SWEEP_RUN_OPTIONS)
def sweep_pool(ctx: typer.Context, vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False) -> None:
    _sweep(ctx, "pool")


@sweep_app.command("stack", **usage.help_of("sweep stack"))
@with_options(STACK_NETWORK_OPTIONS, STACK_VIEWS, DATA_OPTIONS, SWEEP_RUN_OPTIONS)
def sweep_stack(ctx: typer.Context, layers: LayersArg = None, vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False) -> None:
    _sweep(ctx, "stack")


# ----------------------------------------------------------------------------- demo and explain
# The worked examples and the arithmetic, as commands, with the experiment commands' own
# layer options.

demo_app = typer.Typer(**usage.help_of("demo"), no_args_is_help=True)
explain_app = typer.Typer(**usage.help_of("explain"), no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(explain_app, name="explain")


@demo_app.command("pool", **usage.help_of("demo pool"))
def demo_pool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, input_matrix: MatrixOpt = None,
) -> None:
    commands.demo_pool(layer=overrides("pool", ctx.params)["pool"], input_matrix=input_matrix)


@demo_app.command("conv", **usage.help_of("demo conv"))
def demo_conv(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: ConvStrideOpt = None, padding: ConvPaddingOpt = None,
    dilation: DilationOpt = None, input_matrix: MatrixOpt = None, weight: WeightOpt = None, cell: CellOpt = None,
) -> None:
    commands.demo_conv(layer=overrides("conv", ctx.params)["conv"], input_matrix=input_matrix, weight=weight, cell=cell)


@demo_app.command("convtranspose", **usage.help_of("demo convtranspose"))
def demo_convtranspose(
    kernel_size: KernelOpt = None, stride: ConvStrideOpt = None, padding: TransposedPaddingOpt = None,
    output_padding: OutputPaddingOpt = None, dilation: DilationOpt = None, case: TransposedCaseOpt = None,
    input_matrix: MatrixOpt = None, weight: WeightOpt = None, cell: CellOpt = None,
) -> None:
    commands.demo_convtranspose(
        layer=dict(kernel_size=kernel_size, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation),
        case=case.value if case else None, input_matrix=input_matrix, weight=weight, cell=cell,
    )


def _explain(ctx: typer.Context, command: str) -> None:
    """explain conv, pool: the layer from its options (or --config), worked out on --size / --channels."""
    p = ctx.params
    settings = overrides(command, p)
    if command == "conv":
        settings["conv"]["in_channels"] = p["channels"]  # the input's channels are the layer's in_channels
    exp = resolve(command, settings, p["config"])
    commands.explain(exp, size=p["size"], channels=p["channels"], animate=p["animate"], logdir=p["frames_logdir"])


@explain_app.command("conv", **usage.help_of("explain conv"))
@with_options(EXPLAIN_INPUT_OPTIONS, ANIMATE_OPTIONS)
def explain_conv(
    ctx: typer.Context,
    out_channels: OutChannelsOpt = None, kernel_size: KernelOpt = None, stride: ConvStrideOpt = None,
    padding: ConvPaddingOpt = None, padding_mode: PaddingModeOpt = None, dilation: DilationOpt = None,
    groups: GroupsOpt = None, bias: BiasOpt = None,
) -> None:
    _explain(ctx, "conv")


@explain_app.command("pool", **usage.help_of("explain pool"))
@with_options(EXPLAIN_INPUT_OPTIONS, ANIMATE_OPTIONS)
def explain_pool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, mode: PoolModeOpt = None,
) -> None:
    _explain(ctx, "pool")


@explain_app.command("stack", **usage.help_of("explain stack"))
@with_options(EXPLAIN_INPUT_OPTIONS)
def explain_stack(ctx: typer.Context, layers: LayersArg = None, pretrained: PretrainedOpt = None, upto: UptoOpt = None) -> None:
    p = ctx.params
    commands.explain_stack(resolve("stack", overrides("stack", p), p["config"]), size=p["size"], channels=p["channels"])


@explain_app.command("convtranspose", **usage.help_of("explain convtranspose"))
def explain_convtranspose(
    out_channels: TransposedOutChannelsOpt = None, kernel_size: KernelOpt = None, stride: ConvStrideOpt = None,
    padding: TransposedPaddingOpt = None, output_padding: OutputPaddingOpt = None, dilation: DilationOpt = None,
    groups: GroupsOpt = None, bias: BiasOpt = None, case: TransposedCaseOpt = None,
    size: TransposedSizeOpt = None, channels: TransposedChannelsOpt = None,
    animate: AnimateOpt = None, frames_logdir: FramesLogdirOpt = None,
) -> None:
    commands.explain_convtranspose(
        layer=dict(in_channels=channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride, padding=padding,
                   output_padding=output_padding, dilation=dilation, groups=groups, bias=bias),
        case=case.value if case else None, size=size, animate=animate, logdir=frames_logdir,
    )


@explain_app.command("unpool", **usage.help_of("explain unpool"))
def explain_unpool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    output_size: OutputSizeOpt = None, size: UnpoolSizeOpt = None, channels: ChannelsOpt = None,
) -> None:
    exp = resolve("pool", overrides("pool", ctx.params))
    commands.explain_unpool(exp, size=size, channels=channels, output_size=output_size)
