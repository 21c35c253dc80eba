"""The convlab command line: options -> an Experiment -> one call into the pipeline.

torch is imported only inside commands that run something, so ``convlab --help`` is instant.
"""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer


from convlab import __version__
from convlab import board as tensorboard_board
from convlab.config import PADDING_MODES, POOL_MODES, SCALES, VIEWS, ConvlabError, Experiment, dump_toml, resolve
from convlab.data import DATASETS
from convlab.kernels import INIT_NAMES
from convlab.terminal import TerminalReporter

app = typer.Typer(
    name="convlab",
    help="See what convolution and pooling do to real images: run a layer over a dataset "
    "and stream input and output image grids to TensorBoard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PaddingMode = Enum("PaddingMode", {m: m for m in PADDING_MODES}, type=str)
PoolMode = Enum("PoolMode", {m: m for m in POOL_MODES}, type=str)
Scale = Enum("Scale", {s: s for s in SCALES}, type=str)


class Split(str, Enum):
    test = "test"
    train = "train"


LAYER, DATA, RUN = "Layer", "Data", "Run"

# Shared options, declared once. Every default is None: an option left out never overrides
# the config file or the built-in default (see config.resolve).
DatasetOpt = Annotated[
    Optional[str],
    typer.Option("--dataset", help=f"Dataset: {', '.join(DATASETS)}. \\[default: cifar10]", rich_help_panel=DATA),
]
SplitOpt = Annotated[Optional[Split], typer.Option("--split", help="\\[default: test]", rich_help_panel=DATA)]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Where datasets live or are downloaded to; for --dataset folder, your images (a folder or one file). \\[default: ./data]", rich_help_panel=DATA),
]
DownloadOpt = Annotated[
    Optional[bool],
    typer.Option("--download/--no-download", help="Download a missing dataset. \\[default: download]", rich_help_panel=DATA),
]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", "-b", help="\\[default: 64]", rich_help_panel=DATA)]
MaxBatchesOpt = Annotated[
    Optional[int], typer.Option("--max-batches", "-n", help="Stop after this many batches. \\[default: all]", rich_help_panel=DATA)
]
DeviceOpt = Annotated[
    Optional[str],
    typer.Option("--device", help="auto, cpu, cuda or cuda:N; auto = cuda when available. \\[default: auto]", rich_help_panel=RUN),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seeds the layer's weights and built-in data. \\[default: 0]", rich_help_panel=RUN)]
LogdirOpt = Annotated[Optional[Path], typer.Option("--logdir", help="\\[default: logs]", rich_help_panel=RUN)]
RunNameOpt = Annotated[
    Optional[str],
    typer.Option("--run-name", help="Directory name inside --logdir. \\[default: what ran and when]", rich_help_panel=RUN),
]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="TOML experiment file; flags given here override it.", rich_help_panel=RUN),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the resolved config, the module and its shapes; run nothing.", rich_help_panel=RUN)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.", rich_help_panel=RUN)]
ImageSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        "--image-size", metavar="N", rich_help_panel=DATA,
        help="For --dataset folder: shorter side resized to N, then the centre NxN crop; 0 keeps each image's size. \\[default: 128]",
    ),
]
GrayscaleOpt = Annotated[
    Optional[bool],
    typer.Option("--grayscale/--rgb", help="For --dataset folder: read images as 1-channel grey instead of RGB. \\[default: rgb]", rich_help_panel=DATA),
]

PoolModeOpt = Annotated[
    Optional[PoolMode], typer.Option("--mode", help="max (MaxPool2d) or avg (AvgPool2d). \\[default: max]", rich_help_panel=LAYER)
]
KernelOpt = Annotated[
    Optional[str],
    typer.Option("--kernel", "--kernel-size", "-k", metavar="K|HxW", help="\\[default: 3]", rich_help_panel=LAYER),
]
StrideOpt = Annotated[Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", rich_help_panel=LAYER)]
DilationOpt = Annotated[Optional[str], typer.Option("--dilation", "-d", metavar="D|HxW", help="\\[default: 1]", rich_help_panel=LAYER)]

VIEW = "Views"
ViewsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--views", metavar="NAMES",
        help=f"Extra views beside the tutorial's tags, comma-separated: {', '.join(VIEWS)}, or none. "
        "\\[default: every one that applies]",
        rich_help_panel=VIEW,
    ),
]
ScaleOpt = Annotated[
    Optional[Scale],
    typer.Option("--scale", help="Grey levels of the extra views: raw (as TensorBoard), minmax, or symmetric "
                 "(0 = mid-grey). \\[default: symmetric]", rich_help_panel=VIEW),
]
ViewImagesOpt = Annotated[
    Optional[int], typer.Option("--view-images", help="Images per batch in the 'channels' view. \\[default: 4]", rich_help_panel=VIEW)
]
ZoomOpt = Annotated[
    Optional[int], typer.Option("--zoom", help="Nearest-neighbour upscaling of the extra views. \\[default: auto]", rich_help_panel=VIEW)
]


def _views(views: Any, scale: Any, view_images: Any, zoom: Any) -> dict[str, Any]:
    return {"show": views, "scale": _str(scale), "images": view_images, "zoom": zoom}


def _str(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _data_and_run(**opts: Any) -> dict[str, dict[str, Any]]:
    data_keys = ("dataset", "split", "data_dir", "download", "batch_size", "max_batches", "image_size", "grayscale")
    run_keys = ("device", "seed", "logdir", "run_name")
    return {
        "data": {k: _str(opts[k]) for k in data_keys},
        "run": {k: _str(opts[k]) for k in run_keys},
    }


def _execute(exp: Experiment, *, dry_run: bool, quiet: bool) -> None:
    from convlab import pipeline

    if dry_run:
        p = pipeline.plan(exp)
        typer.echo(dump_toml(exp).rstrip())
        typer.echo("")
        typer.echo(pipeline.describe(p))
        typer.echo(f"device: {p.device}; {p.num_steps} step(s) of up to {exp.data.batch_size} image(s)")
        typer.echo("dry run: nothing was loaded or written")
        return
    reporter = TerminalReporter(quiet)
    summary = pipeline.run(exp, reporter)
    tags = ", ".join(summary["tags"])
    board_command, tensorboard_command = tensorboard_board.view_commands(exp.run.logdir)
    reporter.info(f"logged {summary['steps']} step(s) of {tags} to {summary['run_dir']}")
    reporter.info(f"view it: {board_command}")
    reporter.info(f"     or: {tensorboard_command}")


@app.command()
def conv(
    in_channels: Annotated[
        Optional[int], typer.Option("--in-channels", help="Must match the data. \\[default: the dataset's channels]", rich_help_panel=LAYER)
    ] = None,
    out_channels: Annotated[Optional[int], typer.Option("--out-channels", "-c", help="\\[default: 6]", rich_help_panel=LAYER)] = None,
    kernel: KernelOpt = None,
    stride: Annotated[Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: 1]", rich_help_panel=LAYER)] = None,
    padding: Annotated[
        Optional[str], typer.Option("--padding", "-p", metavar="P|HxW|same|valid", help="\\[default: 0]", rich_help_panel=LAYER)
    ] = None,
    padding_mode: Annotated[Optional[PaddingMode], typer.Option("--padding-mode", help="\\[default: zeros]", rich_help_panel=LAYER)] = None,
    dilation: DilationOpt = None,
    groups: Annotated[Optional[int], typer.Option("--groups", "-g", help="\\[default: 1]", rich_help_panel=LAYER)] = None,
    bias: Annotated[Optional[bool], typer.Option("--bias/--no-bias", help="\\[default: bias]", rich_help_panel=LAYER)] = None,
    init: Annotated[
        Optional[str],
        typer.Option("--init", metavar="NAMES", help=f"Weights: random (PyTorch's init) or one kernel per output channel, "
                     f"comma-separated, from: {', '.join(INIT_NAMES)}. \\[default: random]", rich_help_panel=LAYER),
    ] = None,
    weights: Annotated[
        Optional[Path],
        typer.Option("--weights", metavar="FILE", help="Load the weight (out, in/groups, kH, kW) from a .pt or .npy file.",
                     rich_help_panel=LAYER),
    ] = None,
    views: ViewsOpt = None,
    scale: ScaleOpt = None,
    view_images: ViewImagesOpt = None,
    zoom: ZoomOpt = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None,
    max_batches: MaxBatchesOpt = None,
    image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    logdir: LogdirOpt = None,
    run_name: RunNameOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.Conv2d over the dataset; log tags 'input' and 'output' (the reshape view),
    and the views 'channels' and 'kernels'."""
    layer = dict(
        in_channels=in_channels, out_channels=out_channels, kernel_size=kernel, stride=stride,
        padding=padding, padding_mode=_str(padding_mode), dilation=dilation, groups=groups, bias=bias,
        init=init, weights=_str(weights),
    )
    shared = _data_and_run(
        dataset=dataset, split=split, data_dir=data_dir, download=download, batch_size=batch_size,
        max_batches=max_batches, device=device, seed=seed, logdir=logdir, run_name=run_name,
        image_size=image_size, grayscale=grayscale,
    )
    exp = resolve("conv", {"conv": layer, **shared, "views": _views(views, scale, view_images, zoom)}, config)
    _execute(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def pool(
    kernel: KernelOpt = None,
    stride: Annotated[
        Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: the kernel size]", rich_help_panel=LAYER)
    ] = None,
    padding: Annotated[Optional[str], typer.Option("--padding", "-p", metavar="P|HxW", help="\\[default: 0]", rich_help_panel=LAYER)] = None,
    dilation: DilationOpt = None,
    ceil: Annotated[
        Optional[bool], typer.Option("--ceil/--no-ceil", help="ceil_mode: keep windows that hang over the edge. \\[default: no-ceil]", rich_help_panel=LAYER)
    ] = None,
    mode: PoolModeOpt = None,
    unpool: Annotated[
        Optional[bool],
        typer.Option("--unpool/--no-unpool", help="Also log tag 'unpool': MaxUnpool2d(pool(x)), only the maxima, "
                     "at the input's size. \\[default: no-unpool]", rich_help_panel=LAYER),
    ] = None,
    views: ViewsOpt = None,
    scale: ScaleOpt = None,
    view_images: ViewImagesOpt = None,
    zoom: ZoomOpt = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None,
    max_batches: MaxBatchesOpt = None,
    image_size: ImageSizeOpt = None,
    grayscale: GrayscaleOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    logdir: LogdirOpt = None,
    run_name: RunNameOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.MaxPool2d (or AvgPool2d) over the dataset; log tags 'input' and 'maxpool' (or 'avgpool')."""
    layer = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil,
                 mode=_str(mode), unpool=unpool)
    shared = _data_and_run(
        dataset=dataset, split=split, data_dir=data_dir, download=download, batch_size=batch_size,
        max_batches=max_batches, device=device, seed=seed, logdir=logdir, run_name=run_name,
        image_size=image_size, grayscale=grayscale,
    )
    exp = resolve("pool", {"pool": layer, **shared, "views": _views(views, scale, view_images, zoom)}, config)
    _execute(exp, dry_run=dry_run, quiet=quiet)


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an internal error, print the traceback (for bug reports). Also accepted after any command.")
    ] = False,
) -> None:
    """See what convolution and pooling do to real images, in TensorBoard."""


# ----------------------------------------------------------------------------- demo and explain
# The worked examples and the arithmetic, as commands. The layer options are the experiment
# commands' own, validated by the same config.resolve, so their errors read the same.

INPUT, ANIMATION = "Input", "Animation"

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

PoolStrideOpt = Annotated[
    Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: the kernel size]", rich_help_panel=LAYER)
]
ConvStrideOpt = Annotated[Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: 1]", rich_help_panel=LAYER)]
PoolPaddingOpt = Annotated[Optional[str], typer.Option("--padding", "-p", metavar="P|HxW", help="\\[default: 0]", rich_help_panel=LAYER)]
ConvPaddingOpt = Annotated[
    Optional[str], typer.Option("--padding", "-p", metavar="P|HxW|same|valid", help="\\[default: 0]", rich_help_panel=LAYER)
]
CeilOpt = Annotated[
    Optional[bool], typer.Option("--ceil/--no-ceil", help="ceil_mode: keep windows that hang over the edge. \\[default: no-ceil]", rich_help_panel=LAYER)
]
SizeOpt = Annotated[
    Optional[str],
    typer.Option("--size", metavar="HxW", help="Input height and width. \\[default: the dataset's, 32x32 for CIFAR10]", rich_help_panel=INPUT),
]
ChannelsOpt = Annotated[
    Optional[int], typer.Option("--channels", min=1, help="Input channels. \\[default: the dataset's, 3 for CIFAR10]", rich_help_panel=INPUT)
]
AnimateOpt = Annotated[
    Optional[Path],
    typer.Option("--animate", metavar="FILE.gif", help="Also draw the layer sliding over a small input (or --size) as a GIF.", rich_help_panel=ANIMATION),
]
AnimateLogdirOpt = Annotated[
    Optional[Path],
    typer.Option("--logdir", help="With --animate: also log the frames to TensorBoard here (tag 'animation', step = frame).", rich_help_panel=ANIMATION),
]
MatrixOpt = Annotated[
    Optional[str],
    typer.Option("--input", metavar="ROWS", help="The input matrix: '1 2 0; 3 2 4' or '[[1, 2, 0], [3, 2, 4]]'. \\[default: the lesson's 5x5]", rich_help_panel=INPUT),
]


def _show(lines: list[Any]) -> None:
    from convlab.terminal import echo

    echo(lines)


@demo_app.command("pool")
def demo_pool(
    kernel: KernelOpt = None,
    stride: PoolStrideOpt = None,
    padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None,
    ceil: CeilOpt = None,
    input_matrix: MatrixOpt = None,
) -> None:
    """MaxPool2d by hand: the input reshaped to (1, 1, H, W), every window and its max, with ceil_mode off and on."""
    from convlab import demo

    matrix = demo.parse_matrix(input_matrix, "--input") if input_matrix is not None else demo.POOL_INPUT
    modes = [False, True] if ceil is None else [ceil]
    layers = [
        resolve("pool", {"pool": dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=m)}).layer
        for m in modes
    ]
    _show(demo.pool_demo(layers, matrix))


@demo_app.command("conv")
def demo_conv(
    kernel: KernelOpt = None,
    stride: ConvStrideOpt = None,
    padding: ConvPaddingOpt = None,
    dilation: DilationOpt = None,
    input_matrix: MatrixOpt = None,
    weight: Annotated[
        Optional[str],
        typer.Option("--weight", metavar="ROWS", help="The kernel's weights, as --input. \\[default: the lesson's 3x3, or ones for another --kernel]", rich_help_panel=INPUT),
    ] = None,
    cell: Annotated[
        Optional[str], typer.Option("--cell", metavar="R,C", help="The output cell whose multiply-adds are shown. \\[default: 0,0]", rich_help_panel=INPUT)
    ] = None,
) -> None:
    """F.conv2d by hand: the input and kernel reshaped to (1, 1, H, W), one cell's multiply-accumulate, the output;
    for stride 1, stride 2 and padding 1 unless layer options are given."""
    from convlab import demo

    matrix = demo.parse_matrix(input_matrix, "--input") if input_matrix is not None else demo.CONV_INPUT
    settings = [dict(stride=stride, padding=padding, dilation=dilation)]
    if stride is None and padding is None and dilation is None:
        settings = [dict(stride=1), dict(stride=2), dict(stride=1, padding=1)]
    # The kernel's size comes from the weights; --kernel alone asks for a box of ones.
    kernel_size = resolve("conv", {"conv": dict(kernel_size=kernel)}).layer.kernel_size if kernel is not None else None
    weights = demo.kernel_weights(weight, kernel_size)
    layers = [
        resolve("conv", {"conv": dict(kernel_size=list(demo.size_of(weights)), in_channels=1, out_channels=1, bias=False, **s)}).layer
        for s in settings
    ]
    _show(demo.conv_demo(layers, matrix, weights, cell))


def _explain_and_animate(
    exp: Experiment, size: Optional[str], channels: Optional[int], animate: Optional[Path], logdir: Optional[Path]
) -> None:
    from convlab import explain

    if logdir is not None and animate is None:
        raise ConvlabError("--logdir logs the animation's frames; give --animate FILE.gif too")
    ex = explain.explain(exp.layer, explain.input_shape(exp, size, channels))
    _show(ex.rich())
    if animate is not None:
        from convlab.animate import animate as draw

        report = draw(exp, animate, size=explain.parse_size(size) if size else None, logdir=logdir)
        h, w = report["size"]
        line = (
            f"animation: {report['frames']} frames ({report['frame_size'][0]}x{report['frame_size'][1]} px, "
            f"{report['bytes'] / 1024:.0f} KiB) of a {h}x{w} input -> {animate}"
        )
        typer.echo(line)
        if report["run_dir"]:
            typer.echo(f"frames in TensorBoard: {report['run_dir']} (tag 'animation'); view it: convlab board --logdir {shlex.quote(str(logdir))}")


@explain_app.command("conv")
def explain_conv(
    out_channels: Annotated[Optional[int], typer.Option("--out-channels", "-c", help="\\[default: 6]", rich_help_panel=LAYER)] = None,
    kernel: KernelOpt = None,
    stride: ConvStrideOpt = None,
    padding: ConvPaddingOpt = None,
    padding_mode: Annotated[Optional[PaddingMode], typer.Option("--padding-mode", help="\\[default: zeros]", rich_help_panel=LAYER)] = None,
    dilation: DilationOpt = None,
    groups: Annotated[Optional[int], typer.Option("--groups", "-g", help="\\[default: 1]", rich_help_panel=LAYER)] = None,
    bias: Annotated[Optional[bool], typer.Option("--bias/--no-bias", help="\\[default: bias]", rich_help_panel=LAYER)] = None,
    size: SizeOpt = None,
    channels: ChannelsOpt = None,
    config: ConfigOpt = None,
    animate: AnimateOpt = None,
    logdir: AnimateLogdirOpt = None,
) -> None:
    """Explain a torch.nn.Conv2d: what 'convlab conv' with these options does to each image."""
    layer = dict(
        in_channels=channels, out_channels=out_channels, kernel_size=kernel, stride=stride, padding=padding,
        padding_mode=_str(padding_mode), dilation=dilation, groups=groups, bias=bias,
    )
    _explain_and_animate(resolve("conv", {"conv": layer}, config), size, channels, animate, logdir)


@explain_app.command("pool")
def explain_pool(
    kernel: KernelOpt = None,
    stride: PoolStrideOpt = None,
    padding: PoolPaddingOpt = None,
    dilation: DilationOpt = None,
    ceil: CeilOpt = None,
    mode: PoolModeOpt = None,
    size: SizeOpt = None,
    channels: ChannelsOpt = None,
    config: ConfigOpt = None,
    animate: AnimateOpt = None,
    logdir: AnimateLogdirOpt = None,
) -> None:
    """Explain a torch.nn.MaxPool2d (or AvgPool2d): what 'convlab pool' with these options does to each image."""
    layer = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil, mode=_str(mode))
    _explain_and_animate(resolve("pool", {"pool": layer}, config), size, channels, animate, logdir)


@explain_app.command("unpool")
def explain_unpool(
    kernel: KernelOpt = None,
    stride: PoolStrideOpt = None,
    padding: PoolPaddingOpt = None,
    output_size: Annotated[
        Optional[str],
        typer.Option("--output-size", metavar="HxW", help="MaxUnpool2d's output_size. \\[default: (in - 1)*stride - 2*padding + kernel]", rich_help_panel=LAYER),
    ] = None,
    size: Annotated[
        Optional[str],
        typer.Option("--size", metavar="HxW", help="The unpooling's input (a MaxPool2d's output). \\[default: what MaxPool2d makes of the dataset's 32x32]", rich_help_panel=INPUT),
    ] = None,
    channels: ChannelsOpt = None,
) -> None:
    """Explain a torch.nn.MaxUnpool2d, the inverse of MaxPool2d with the same kernel, stride and padding."""
    exp = resolve("pool", {"pool": dict(kernel_size=kernel, stride=stride, padding=padding)})
    from convlab import explain

    _show(explain.explain_unpool_input(exp, size, channels, output_size).rich())
