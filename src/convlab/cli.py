"""The convlab command line: options -> an Experiment -> one call into the pipeline.

torch is imported only inside commands that run something, so ``convlab --help`` is instant.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import threading
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer


from convlab import __version__
from convlab.config import PADDING_MODES, ConvlabError, Experiment, Interrupted, dump_toml, resolve
from convlab.data import DATASETS

try:  # typer >= 0.2x vendors click; its usage errors derive from TyperException
    from typer import TyperException as _UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click import ClickException as _UsageError

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


class Split(str, Enum):
    test = "test"
    train = "train"


LAYER, DATA, RUN = "Layer", "Data", "Run"

# Shared options, declared once. Every default is None: an option left out never overrides
# the config file or the built-in default (see config.resolve).
DatasetOpt = Annotated[
    Optional[str],
    typer.Option("--dataset", help=f"Dataset: {', '.join(DATASETS)}. [default: cifar10]", rich_help_panel=DATA),
]
SplitOpt = Annotated[Optional[Split], typer.Option("--split", help="[default: test]", rich_help_panel=DATA)]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Where datasets live or are downloaded to. [default: ./data]", rich_help_panel=DATA),
]
DownloadOpt = Annotated[
    Optional[bool],
    typer.Option("--download/--no-download", help="Download a missing dataset. [default: download]", rich_help_panel=DATA),
]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", "-b", help="[default: 64]", rich_help_panel=DATA)]
MaxBatchesOpt = Annotated[
    Optional[int], typer.Option("--max-batches", "-n", help="Stop after this many batches. [default: all]", rich_help_panel=DATA)
]
DeviceOpt = Annotated[
    Optional[str],
    typer.Option("--device", help="auto, cpu, cuda or cuda:N; auto = cuda when available. [default: auto]", rich_help_panel=RUN),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seeds the layer's weights and built-in data. [default: 0]", rich_help_panel=RUN)]
LogdirOpt = Annotated[Optional[Path], typer.Option("--logdir", help="[default: logs]", rich_help_panel=RUN)]
RunNameOpt = Annotated[
    Optional[str],
    typer.Option("--run-name", help="Directory name inside --logdir. [default: what ran and when]", rich_help_panel=RUN),
]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="TOML experiment file; flags given here override it.", rich_help_panel=RUN),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the resolved config, the module and its shapes; run nothing.", rich_help_panel=RUN)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.", rich_help_panel=RUN)]

KernelOpt = Annotated[
    Optional[str],
    typer.Option("--kernel", "--kernel-size", "-k", metavar="K|HxW", help="[default: 3]", rich_help_panel=LAYER),
]
StrideOpt = Annotated[Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", rich_help_panel=LAYER)]
DilationOpt = Annotated[Optional[str], typer.Option("--dilation", "-d", metavar="D|HxW", help="[default: 1]", rich_help_panel=LAYER)]


def _str(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _data_and_run(**opts: Any) -> dict[str, dict[str, Any]]:
    data_keys = ("dataset", "split", "data_dir", "download", "batch_size", "max_batches")
    run_keys = ("device", "seed", "logdir", "run_name")
    return {
        "data": {k: _str(opts[k]) for k in data_keys},
        "run": {k: _str(opts[k]) for k in run_keys},
    }


class TerminalReporter:
    """Plain lines on stdout; a progress bar on stderr when it is a terminal."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def info(self, text: str) -> None:
        if not self.quiet:
            typer.echo(text)

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        if self.quiet or not sys.stderr.isatty():
            yield lambda: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


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
    summary = pipeline.run(exp, TerminalReporter(quiet))
    if not quiet:
        logdir = shlex.quote(str(exp.run.logdir))
        tags = ", ".join(summary["tags"])
        typer.echo(f"logged {summary['steps']} step(s) of {tags} to {summary['run_dir']}")
        typer.echo(f"view it: tensorboard --logdir {logdir}")


@app.command()
def conv(
    in_channels: Annotated[
        Optional[int], typer.Option("--in-channels", help="Must match the data. [default: the dataset's channels]", rich_help_panel=LAYER)
    ] = None,
    out_channels: Annotated[Optional[int], typer.Option("--out-channels", "-c", help="[default: 6]", rich_help_panel=LAYER)] = None,
    kernel: KernelOpt = None,
    stride: Annotated[Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="[default: 1]", rich_help_panel=LAYER)] = None,
    padding: Annotated[
        Optional[str], typer.Option("--padding", "-p", metavar="P|HxW|same|valid", help="[default: 0]", rich_help_panel=LAYER)
    ] = None,
    padding_mode: Annotated[Optional[PaddingMode], typer.Option("--padding-mode", help="[default: zeros]", rich_help_panel=LAYER)] = None,
    dilation: DilationOpt = None,
    groups: Annotated[Optional[int], typer.Option("--groups", "-g", help="[default: 1]", rich_help_panel=LAYER)] = None,
    bias: Annotated[Optional[bool], typer.Option("--bias/--no-bias", help="[default: bias]", rich_help_panel=LAYER)] = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None,
    max_batches: MaxBatchesOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    logdir: LogdirOpt = None,
    run_name: RunNameOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.Conv2d over the dataset; log tags 'input' and 'output' (the reshape view)."""
    layer = dict(
        in_channels=in_channels, out_channels=out_channels, kernel_size=kernel, stride=stride,
        padding=padding, padding_mode=_str(padding_mode), dilation=dilation, groups=groups, bias=bias,
    )
    shared = _data_and_run(
        dataset=dataset, split=split, data_dir=data_dir, download=download, batch_size=batch_size,
        max_batches=max_batches, device=device, seed=seed, logdir=logdir, run_name=run_name,
    )
    exp = resolve("conv", {"conv": layer, **shared}, config)
    _execute(exp, dry_run=dry_run, quiet=quiet)


@app.command()
def pool(
    kernel: KernelOpt = None,
    stride: Annotated[
        Optional[str], typer.Option("--stride", "-s", metavar="S|HxW", help="[default: the kernel size]", rich_help_panel=LAYER)
    ] = None,
    padding: Annotated[Optional[str], typer.Option("--padding", "-p", metavar="P|HxW", help="[default: 0]", rich_help_panel=LAYER)] = None,
    dilation: DilationOpt = None,
    ceil: Annotated[
        Optional[bool], typer.Option("--ceil/--no-ceil", help="ceil_mode: keep windows that hang over the edge. [default: no-ceil]", rich_help_panel=LAYER)
    ] = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    batch_size: BatchSizeOpt = None,
    max_batches: MaxBatchesOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    logdir: LogdirOpt = None,
    run_name: RunNameOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a torch.nn.MaxPool2d over the dataset; log tags 'input' and 'maxpool'."""
    layer = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil)
    shared = _data_and_run(
        dataset=dataset, split=split, data_dir=data_dir, download=download, batch_size=batch_size,
        max_batches=max_batches, device=device, seed=seed, logdir=logdir, run_name=run_name,
    )
    exp = resolve("pool", {"pool": layer, **shared}, config)
    _execute(exp, dry_run=dry_run, quiet=quiet)


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


def _fail(message: str, code: int) -> None:
    # One line, no traceback: the message already says what is wrong and how to fix it.
    message = " ".join(str(message).split())
    typer.echo(f"convlab: error: {message}", err=True)
    sys.exit(code)


def _debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Take ``--debug`` out of the arguments wherever it is, so every command accepts it."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--debug"]
    debug = len(head) < end or os.environ.get("CONVLAB_DEBUG", "") not in ("", "0")
    return head + argv[end:], debug


def _quiet_thread_errors(args: threading.ExceptHookArgs) -> None:
    # TensorBoard's writer thread dies on a write error (disk full) and the main thread raises
    # the same error on its next write, where it is reported in one line; don't print it twice.
    if issubclass(args.exc_type, OSError):
        return
    threading.__excepthook__(args)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every user error ends in one line and exit code 2.

    Exit codes: 0 done, 1 internal error (a bug), 2 user error, 128 + N stopped by signal N
    (130 Ctrl-C, 143 SIGTERM).
    """
    argv, debug = _debug_flag(list(sys.argv[1:] if argv is None else argv))
    hook = threading.excepthook
    if not debug:
        threading.excepthook = _quiet_thread_errors
    try:
        _run_app(argv, debug)
    finally:
        threading.excepthook = hook


def _run_app(argv: list[str], debug: bool) -> None:
    try:
        code = app(args=argv, prog_name="convlab", standalone_mode=False)
    except Interrupted as exc:
        typer.echo(f"convlab: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ConvlabError as exc:
        _fail(str(exc), exc.exit_code)
    except _UsageError as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see: {ctx.command_path} --help)"
        _fail(exc.format_message() + hint, getattr(exc, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        typer.echo("convlab: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]  # torch appends C++ frames
        what = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        fix = "please report it with the traceback above" if debug else "rerun with --debug for the traceback and report it"
        _fail(f"internal error ({what}); this is a bug in convlab: {fix}", 1)
    sys.exit(code or 0)
