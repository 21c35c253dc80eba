"""The convlab command line: typer commands only. Each command turns its options (declared once
in :mod:`convlab.options`) into an Experiment (config.resolve) and makes one call into
:mod:`convlab.commands`. torch is imported only inside commands that run something, so
``convlab --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convlab import __version__, commands
from convlab import board as tensorboard_board
from convlab.config import resolve
from convlab.options import (
    STACK_KEYS,
    AnimateOpt,
    BatchSizeOpt,
    BiasOpt,
    CeilOpt,
    CellOpt,
    ChannelsOpt,
    ClassOpt,
    ConfigOpt,
    ConvPaddingOpt,
    ConvStrideOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    DilationOpt,
    DownloadOpt,
    DryRunOpt,
    EpochsOpt,
    EvalBatchesOpt,
    EvalEveryOpt,
    EvalSplitOpt,
    FramesLogdirOpt,
    GrayscaleOpt,
    GroupsOpt,
    HoldoutOpt,
    ImageSizeOpt,
    InChannelsOpt,
    InitOpt,
    InitWeightsOpt,
    JsonOpt,
    KernelOpt,
    LayersArg,
    LogdirOpt,
    LrOpt,
    MatrixOpt,
    MaxBatchesOpt,
    MaxChannelsOpt,
    MaxStepsOpt,
    OptimizerOpt,
    OutChannelsOpt,
    OutputSizeOpt,
    PaddingModeOpt,
    PoolModeOpt,
    PoolPaddingOpt,
    PoolStrideOpt,
    PretrainedOpt,
    QuietOpt,
    RunNameOpt,
    ScaleOpt,
    SeedOpt,
    SheetsOpt,
    ShowOpt,
    ShuffleOpt,
    SizeOpt,
    SkipInvalidOpt,
    SnapshotEveryOpt,
    SplitOpt,
    StackWeightsOpt,
    SweepNameOpt,
    TopChannelsOpt,
    TopKOpt,
    TopStagesOpt,
    TrainingRunOpt,
    TrainSplitOpt,
    TrainTopOpt,
    UnpoolOpt,
    UnpoolSizeOpt,
    UptoOpt,
    VaryOpt,
    ViewImagesOpt,
    WeightDecayOpt,
    WeightOpt,
    WeightsOpt,
    ZoomOpt,
    overrides,
)

app = typer.Typer(
    name="convlab",
    help="See what convolution and pooling do to real images: run a layer over a dataset "
    "and stream input and output image grids to TensorBoard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

@app.command()
def conv(
    ctx: typer.Context,
    in_channels: InChannelsOpt = None, out_channels: OutChannelsOpt = None, kernel_size: KernelOpt = None,
    stride: ConvStrideOpt = None, padding: ConvPaddingOpt = None, padding_mode: PaddingModeOpt = None,
    dilation: DilationOpt = None, groups: GroupsOpt = None, bias: BiasOpt = None, init: InitOpt = None,
    weights: WeightsOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: RunNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.Conv2d over the dataset; log tags 'input' and 'output' (the reshape view),
    and the views 'channels' and 'kernels'."""
    exp = resolve("conv", overrides("conv", ctx.params), config)
    commands.execute(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def pool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, mode: PoolModeOpt = None, unpool: UnpoolOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: RunNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.MaxPool2d (or AvgPool2d) over the dataset; log tags 'input' and 'maxpool' (or 'avgpool')."""
    exp = resolve("pool", overrides("pool", ctx.params), config)
    commands.execute(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def stack(
    ctx: typer.Context,
    layers: LayersArg = None,
    weights: StackWeightsOpt = None, pretrained: PretrainedOpt = None, upto: UptoOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    max_channels: MaxChannelsOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: RunNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Run a stack of torch.nn layers over the dataset, each written as in PyTorch; log 'input' and each stage's
    output in stage order ('01-conv2d', '02-relu', ...). One activation alone logs the lesson's 'input' and 'output'."""
    exp = resolve("stack", overrides("stack", ctx.params), config)
    commands.execute(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def train(
    ctx: typer.Context,
    layers: LayersArg = None, weights: InitWeightsOpt = None,
    optimizer: OptimizerOpt = None, lr: LrOpt = None, weight_decay: WeightDecayOpt = None, top: TrainTopOpt = None, epochs: EpochsOpt = None, shuffle: ShuffleOpt = None, max_steps: MaxStepsOpt = None,
    eval_every: EvalEveryOpt = None, snapshot_every: SnapshotEveryOpt = None, eval_split: EvalSplitOpt = None,
    eval_batches: EvalBatchesOpt = None, holdout: HoldoutOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    max_channels: MaxChannelsOpt = None,
    dataset: DatasetOpt = None, split: TrainSplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, image_size: ImageSizeOpt = None, grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: RunNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Train a stack of torch.nn layers (as 'convlab stack' takes them) as a classifier with nn.CrossEntropyLoss; log
    train/ and test/ loss and accuracy, a confusion matrix, the kernels and every stage's view of fixed probe images as
    they learn, and save model.pt."""
    settings = overrides("train", ctx.params)
    settings["stack"] = {key: settings["train"].pop(key, None) for key in STACK_KEYS}
    exp = resolve("train", settings, config)
    commands.train(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def top(
    ctx: typer.Context,
    layers: LayersArg = None, run: TrainingRunOpt = None,
    weights: StackWeightsOpt = None, pretrained: PretrainedOpt = None, upto: UptoOpt = None,
    k: TopKOpt = None, stages: TopStagesOpt = None, channels: TopChannelsOpt = None, class_name: ClassOpt = None,
    max_channels: MaxChannelsOpt = None, out: SheetsOpt = None, as_json: JsonOpt = False,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: RunNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """What each channel looks for: its top-k image patches over a whole dataset (each cropped to its receptive
    field), its mean activation and how often it is dead, for the network of a training run (--run), of LAYER...
    (--weights, --config) or of --pretrained NAME --upto K; one image per stage in TensorBoard."""
    settings = overrides("top", ctx.params)
    settings["stack"] = {key: settings["top"].pop(key, None) for key in (*STACK_KEYS, "pretrained", "upto")}
    settings["top"]["channels"] = channels  # named as explain's --channels (the input's), an action there
    commands.top(settings, config=config, run=run, out=out, as_json=as_json, dry_run=dry_run, quiet=quiet)


@app.command()
def board(
    logdir: Annotated[Path, typer.Option("--logdir", help="The logs to show: every run below it.")] = Path("logs"),
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on: 127.0.0.1 is this machine only; 0.0.0.0 is every network interface.")
    ] = tensorboard_board.DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 takes any free port.")] = tensorboard_board.DEFAULT_PORT,
) -> None:
    """Start TensorBoard on the logs, keeping every logged step of every image tag (not a random 10)."""
    tensorboard_board.serve(logdir, host=host, port=port, info=typer.echo)


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
    """See what convolution and pooling do to real images, in TensorBoard."""


# ----------------------------------------------------------------------------- sweep
# The experiment commands' own options, plus what to vary: the experiment is resolved once
# per combination, by the same config.resolve.

sweep_app = typer.Typer(
    help="Compare layer settings side by side: every combination of --vary values over the same images, "
    "in one pass over the data; one run each, and a run 'compare' with them side by side.",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("conv")
def sweep_conv(
    ctx: typer.Context,
    vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False,
    in_channels: InChannelsOpt = None, out_channels: OutChannelsOpt = None, kernel_size: KernelOpt = None,
    stride: ConvStrideOpt = None, padding: ConvPaddingOpt = None, padding_mode: PaddingModeOpt = None,
    dilation: DilationOpt = None, groups: GroupsOpt = None, bias: BiasOpt = None, init: InitOpt = None,
    weights: WeightsOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: SweepNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Sweep torch.nn.Conv2d settings: e.g. --vary kernel_size=3,5 --vary init=sobel-x;laplacian."""
    commands.sweep("conv", overrides("conv", ctx.params), config=config, vary=vary, skip_invalid=skip_invalid,
                   dry_run=dry_run, quiet=quiet)


@sweep_app.command("pool")
def sweep_pool(
    ctx: typer.Context,
    vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, mode: PoolModeOpt = None, unpool: UnpoolOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: SweepNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Sweep torch.nn.MaxPool2d / AvgPool2d settings: e.g. --vary kernel_size=2,3 --vary ceil_mode=false,true."""
    commands.sweep("pool", overrides("pool", ctx.params), config=config, vary=vary, skip_invalid=skip_invalid,
                   dry_run=dry_run, quiet=quiet)


@sweep_app.command("stack")
def sweep_stack(
    ctx: typer.Context,
    layers: LayersArg = None,
    vary: VaryOpt = None, skip_invalid: SkipInvalidOpt = False,
    weights: StackWeightsOpt = None, pretrained: PretrainedOpt = None, upto: UptoOpt = None,
    show: ShowOpt = None, scale: ScaleOpt = None, images: ViewImagesOpt = None, zoom: ZoomOpt = None,
    max_channels: MaxChannelsOpt = None,
    dataset: DatasetOpt = None, split: SplitOpt = None, data_dir: DataDirOpt = None, download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None, max_batches: MaxBatchesOpt = None, image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None, seed: SeedOpt = None, logdir: LogdirOpt = None, run_name: SweepNameOpt = None,
    config: ConfigOpt = None, dry_run: DryRunOpt = False, quiet: QuietOpt = False,
) -> None:
    """Sweep whole stacks of torch.nn layers, each list written as PyTorch code, alternatives separated by ';':
    e.g. --vary "layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Sigmoid()". Each must end in a map (C, H, W)."""
    commands.sweep("stack", overrides("stack", ctx.params), config=config, vary=vary, skip_invalid=skip_invalid,
                   dry_run=dry_run, quiet=quiet)


# ----------------------------------------------------------------------------- demo and explain
# The worked examples and the arithmetic, as commands, with the experiment commands' own
# layer options.

demo_app = typer.Typer(
    help="The classic 5x5 worked examples: every window, its cells and its result, in the terminal.",
    no_args_is_help=True,
)
explain_app = typer.Typer(
    help="The arithmetic of one layer: output-size formula with the numbers, receptive field, parameters, "
    "multiply-adds, rows never read, and ceil_mode's rule.",
    no_args_is_help=True,
)
app.add_typer(demo_app, name="demo")
app.add_typer(explain_app, name="explain")


@demo_app.command("pool")
def demo_pool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, input_matrix: MatrixOpt = None,
) -> None:
    """MaxPool2d by hand: the input reshaped to (1, 1, H, W), every window and its max, with ceil_mode off and on."""
    commands.demo_pool(layer=overrides("pool", ctx.params)["pool"], input_matrix=input_matrix)


@demo_app.command("conv")
def demo_conv(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: ConvStrideOpt = None, padding: ConvPaddingOpt = None,
    dilation: DilationOpt = None, input_matrix: MatrixOpt = None, weight: WeightOpt = None, cell: CellOpt = None,
) -> None:
    """F.conv2d by hand: the input and kernel reshaped to (1, 1, H, W), one cell's multiply-accumulate, the output;
    for stride 1, stride 2 and padding 1 unless layer options are given."""
    commands.demo_conv(layer=overrides("conv", ctx.params)["conv"], input_matrix=input_matrix, weight=weight, cell=cell)


@explain_app.command("conv")
def explain_conv(
    ctx: typer.Context,
    out_channels: OutChannelsOpt = None, kernel_size: KernelOpt = None, stride: ConvStrideOpt = None,
    padding: ConvPaddingOpt = None, padding_mode: PaddingModeOpt = None, dilation: DilationOpt = None,
    groups: GroupsOpt = None, bias: BiasOpt = None,
    size: SizeOpt = None, channels: ChannelsOpt = None, config: ConfigOpt = None,
    animate: AnimateOpt = None, frames_logdir: FramesLogdirOpt = None,
) -> None:
    """Explain a torch.nn.Conv2d: what 'convlab conv' with these options does to each image."""
    settings = overrides("conv", ctx.params)
    settings["conv"]["in_channels"] = channels  # the input's channels are the layer's in_channels
    exp = resolve("conv", settings, config)
    commands.explain(exp, size=size, channels=channels, animate=animate, logdir=frames_logdir)


@explain_app.command("pool")
def explain_pool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None, ceil_mode: CeilOpt = None, mode: PoolModeOpt = None,
    size: SizeOpt = None, channels: ChannelsOpt = None, config: ConfigOpt = None,
    animate: AnimateOpt = None, frames_logdir: FramesLogdirOpt = None,
) -> None:
    """Explain a torch.nn.MaxPool2d (or AvgPool2d): what 'convlab pool' with these options does to each image."""
    exp = resolve("pool", overrides("pool", ctx.params), config)
    commands.explain(exp, size=size, channels=channels, animate=animate, logdir=frames_logdir)


@explain_app.command("stack")
def explain_stack(
    ctx: typer.Context,
    layers: LayersArg = None, pretrained: PretrainedOpt = None, upto: UptoOpt = None,
    size: SizeOpt = None, channels: ChannelsOpt = None, config: ConfigOpt = None,
) -> None:
    """Explain a stack of torch.nn layers: per stage its output shape, parameters, multiply-adds, receptive field
    and jump in input pixels, and the totals."""
    exp = resolve("stack", overrides("stack", ctx.params), config)
    commands.explain_stack(exp, size=size, channels=channels)


@explain_app.command("unpool")
def explain_unpool(
    ctx: typer.Context,
    kernel_size: KernelOpt = None, stride: PoolStrideOpt = None, padding: PoolPaddingOpt = None,
    output_size: OutputSizeOpt = None, size: UnpoolSizeOpt = None, channels: ChannelsOpt = None,
) -> None:
    """Explain a torch.nn.MaxUnpool2d, the inverse of MaxPool2d with the same kernel, stride and padding."""
    exp = resolve("pool", overrides("pool", ctx.params))
    commands.explain_unpool(exp, size=size, channels=channels, output_size=output_size)
