"""The notebook API: ``import convlab``, then ``convlab.conv(out_channels=6, dataset="shapes")``.

Each function is a command of the command line, with the command's name and its options'
names as keyword arguments (the config keys: ``kernel_size``, ``ceil_mode``, ``batch_size``).
They are resolved as the command line resolves its options (``config.resolve``: defaults <
``config=`` file < keywords), validated by the same checks, and a user error is raised as the
same one-line :class:`convlab.errors.ConvlabError` (Jupyter shows that line, no traceback); a
keyword left out or ``None`` is "not given". Each returns a result that shows itself
(:mod:`convlab.notebook.results`). ``convlab/__init__.py`` binds these names lazily, so
``import convlab`` imports no torch until a call runs.

Every keyword is declared once, in :data:`KEYWORDS`; a function's signature (what ``help()``
and Jupyter's Shift-Tab show) and its docstring's keyword list are made from the groups it takes.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from convlab.config import overrides, resolve
from convlab.errors import ConfigError, Interrupted
from convlab.notebook.results import PredictRun, Run, Sweep, Text, TopRun, TrainRun

if TYPE_CHECKING:
    from torch import nn

F = TypeVar("F", bound=Callable[..., Any])
Pair = "int | tuple[int, int] | str"


@dataclass(frozen=True)
class Keyword:
    name: str
    type: Any
    help: str


def _keywords(*rows: tuple[str, Any, str]) -> dict[str, Keyword]:
    return {name: Keyword(name, kind, text) for name, kind, text in rows}


# Keywords that are on/off switches of the call: False unless given.
FLAGS = ("quiet", "dry_run")
# Every keyword of the API, declared once: the command line's option, by its config key.
KEYWORDS = _keywords(
    # a Conv2d
    ("in_channels", "int | None", "must match the images (default: the dataset's channels)"),
    ("out_channels", "int | None", "output channels (default 6)"),
    ("kernel_size", Pair, "N, (H, W) or 'HxW' (default 3)"),
    ("stride", Pair, "N, (H, W) or 'HxW' (default 1; a pool's: its kernel size)"),
    ("padding", Pair, "N, (H, W), 'HxW', or for Conv2d 'same' / 'valid' (default 0)"),
    ("padding_mode", "str | None", "zeros, reflect, replicate or circular (default zeros)"),
    ("dilation", Pair, "N, (H, W) or 'HxW': gaps between kernel taps (default 1)"),
    ("groups", "int | None", "must divide the in and out channels (default 1)"),
    ("bias", "bool | None", "(default True)"),
    ("init", "str | list[str] | None", "'random' (PyTorch's init) or one named kernel per output channel: "
     "'sobel-x,sobel-y' or ['sobel-x', 'sobel-y']"),
    # a pool
    ("ceil_mode", "bool | None", "keep a last window that hangs over the edge (default False)"),
    ("mode", "str | None", "'max' (MaxPool2d) or 'avg' (AvgPool2d) (default max)"),
    ("unpool", "bool | None", "also log 'unpool': MaxUnpool2d(MaxPool2d(x)) (default False)"),
    # a stack
    ("weights", "str | Path | None", "a weights file: the Conv2d's weight (.pt, .npy), a stack's state_dict (.pt), "
     "or for train the weights it starts from"),
    ("pretrained", "str | None", "vgg16, alexnet or resnet18: the stack is its first `upto` stages, ImageNet weights"),
    ("upto", "int | None", "how many stages of the pretrained model"),
    ("max_channels", "int | None", "channels shown per map stage (default 16)"),
    # training
    ("optimizer", "str | None", "sgd or adam (default sgd)"),
    ("lr", "float | None", "learning rate (default 0.01)"),
    ("epochs", "int | None", "(default 1)"),
    ("shuffle", "bool | None", "a new seeded order each epoch (default True)"),
    ("max_steps", "int | None", "stop after this many steps (default: the epochs' end)"),
    ("eval_every", "int | None", "evaluate every this many steps (default: each epoch's end)"),
    ("snapshot_every", "int | None", "kernels and probe views every this many steps (default 100)"),
    ("eval_split", "str | None", "test or train (default test)"),
    ("eval_batches", "int | None", "evaluate on this many batches (default all)"),
    ("holdout", "float | None", "evaluate on this fraction of the training images instead of eval_split"),
    # going back up (explain and demo convtranspose)
    ("output_padding", Pair, "a ConvTranspose2d's: added after the bottom and right edges, below the stride or the dilation "
     "(default 0; demo: what gets the lesson's 5x5 back)"),
    ("case", "str | None", "one of conv_arithmetic's transposed animations (e.g. 'padding-strides'): its layer and input "
     "size; the other layer keywords are then left out"),
    # predict
    ("top_k", "int | None", "classes listed per image, the most probable first (--top; default 3)"),
    ("target", "str | None", "the class the attributions explain (default: each image's predicted class)"),
    ("attributions", "str | list[str] | None", "gradcam, saliency, occlusion (a list or comma-separated), or 'none' "
     "(default every one that applies)"),
    ("layer", "int | None", "the conv stage Grad-CAM reads, by its number in the stage table (default the last conv stage)"),
    ("trace", "str | None", "'STAGE:CHANNEL:Y:X': how that value of that stage's output was computed, for each image shown"),
    ("pictures", "int | None", "the first N images are shown (input as seen, stages, attributions); every one is predicted "
     "(default 16)"),
    # top
    ("k", "int | None", "patches per channel: the images that excite it most, each once (default 9)"),
    ("stages", "str | list[int] | None", "the stages shown, counted from 1: [1, 3] or '1,3' (default every map stage)"),
    ("class_name", "str | None", "count only the images of this class (--class)"),
    # views
    ("show", "str | list[str] | None", "the views (--views): channels, kernels, stats, features, classes, or 'none' "
     "(default every one that applies)"),
    ("scale", "str | None", "grey levels of the views: raw, minmax or symmetric (default symmetric)"),
    ("images", "int | None", "images per batch in the channels view (--view-images; default 4)"),
    ("zoom", "int | None", "nearest-neighbour upscaling of the views (default auto)"),
    # data
    ("dataset", "str | None", "cifar10, cifar100, mnist, fashion-mnist, shapes (built in, offline) or folder "
     "(default cifar10)"),
    ("split", "str | None", "test or train (default test; train's: train)"),
    ("data_dir", "str | Path | None", "where datasets live (default ./data); for folder, your images"),
    ("download", "bool | None", "download a missing dataset (default True)"),
    ("batch_size", "int | None", "(default 64)"),
    ("max_batches", "int | None", "stop after this many batches (default all)"),
    ("image_size", "int | None", "folder only: shorter side resized to N, centre crop (default 128; 0 keeps sizes)"),
    ("grayscale", "bool | None", "folder only: read images as one grey channel (default False)"),
    # run
    ("device", "str | None", "auto, cpu, cuda or cuda:N (default auto; a model: where it is)"),
    ("seed", "int | None", "seeds the layers' weights and the built-in data (default 0)"),
    ("logdir", "str | Path | None", "where runs are written (default logs)"),
    ("run_name", "str | None", "the run's directory in logdir (default: what ran and when)"),
    ("config", "str | Path | None", "a TOML experiment file; keywords given here override it"),
    ("quiet", "bool", "print nothing while it runs (default False)"),
    ("dry_run", "bool", "only say what would run (the resolved settings, the stages, the device), as a Text: "
     "load and write nothing"),
)

CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "padding_mode", "dilation", "groups", "bias",
        "init", "weights")
POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "mode", "unpool")
STACK = ("weights", "pretrained", "upto", "max_channels")
TRAIN = ("weights", "optimizer", "lr", "epochs", "shuffle", "max_steps", "eval_every", "snapshot_every", "eval_split",
         "eval_batches", "holdout", "max_channels")
VIEWS = ("show", "scale", "images", "zoom")
DATA = ("dataset", "split", "data_dir", "download", "batch_size", "max_batches", "image_size", "grayscale")
RUN = ("device", "seed", "logdir", "run_name", "config", "quiet", "dry_run")
PREDICT = ("weights", "pretrained", "upto", "top_k", "target", "attributions", "layer", "trace", "pictures", "max_channels")
# A prediction reads your images, not a dataset: these say how the model's images were read.
PREDICT_DATA = ("dataset", "data_dir", "image_size", "grayscale", "batch_size")
TOP = ("weights", "pretrained", "upto", "k", "stages", "class_name", "max_channels")
TRANSPOSED = ("out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation", "groups", "bias", "case")


def takes(*groups: Sequence[str]) -> Callable[[F], F]:
    """Give ``fn(..., **settings)`` the keywords of ``groups`` as its signature and its docstring's
    keyword list; a keyword it does not take is a TypeError, as for any Python function."""
    names = list(dict.fromkeys(name for group in groups for name in group))

    def decorate(fn: F) -> F:
        own = [p for p in inspect.signature(fn).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own}
        added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=False if n in FLAGS else None,
                                   annotation=KEYWORDS[n].type) for n in names if n not in taken]
        signature = inspect.signature(fn).replace(parameters=[*own, *added])
        width = max(len(n) for n in names)
        listed = "\n".join(f"        {n.ljust(width)}  {KEYWORDS[n].help}" for n in names)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for key in kwargs:
                if key not in signature.parameters:
                    close = difflib.get_close_matches(key, list(signature.parameters), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise TypeError(f"{fn.__name__}() got an unexpected keyword argument {key!r}{hint}")
            signature.bind(*args, **kwargs)  # a missing or doubled argument: Python's own TypeError
            with user_errors():
                return fn(*args, **kwargs)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__doc__ = ((fn.__doc__ or "").rstrip()
                           + "\n\n    Keywords (the command line's options, by their config names; None: not given):\n"
                           + listed + "\n")
        return wrapper  # type: ignore[return-value]

    return decorate


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Ctrl-C or Jupyter's interrupt stops a run keeping every logged step, as on the command line; in
    Python it ends as a KeyboardInterrupt that says where they are. ConvlabErrors go through as they are."""
    try:
        yield
    except Interrupted as exc:
        raise KeyboardInterrupt(f"convlab: {exc}") from None


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], Any, bool, bool]:
    """(the experiment's settings, the config file, quiet, dry_run): how the call runs, apart."""
    flags = [bool(settings.pop(name, False)) for name in FLAGS]
    return settings, settings.pop("config", None), *flags  # type: ignore[return-value]


def _dry_run(lines: list[str]) -> Text:
    from convlab.commands import DRY_RUN_END

    return Text("\n".join([*lines, DRY_RUN_END]))


def _reporter(quiet: bool) -> Any:
    from convlab.terminal import TerminalReporter

    return TerminalReporter(quiet)


def _run(command: str, settings: dict[str, Any]) -> Run | Text:
    from convlab import pipeline

    settings, config, quiet, dry_run = split_settings(settings)
    exp = resolve(command, overrides(command, settings), config)
    if dry_run:
        from convlab.commands import plan_lines

        return _dry_run(plan_lines(exp))
    return Run(pipeline.run(exp, _reporter(quiet))["run_dir"])


# ----------------------------------------------------------------------------- the commands


@takes(CONV, VIEWS, DATA, RUN)
def conv(**settings: Any) -> Run | Text:
    """Run a ``torch.nn.Conv2d`` over the dataset and log it, as ``convlab conv``: tags 'input' and 'output'
    (the lesson's reshape view), the views 'channels' and 'kernels'. Returns the :class:`Run`, which shows
    its pictures; e.g. ``convlab.conv(out_channels=6, dataset="shapes", max_batches=2)``."""
    return _run("conv", settings)


@takes(POOL, VIEWS, DATA, RUN)
def pool(**settings: Any) -> Run | Text:
    """Run a ``torch.nn.MaxPool2d`` (or ``AvgPool2d``, ``mode="avg"``) over the dataset, as ``convlab pool``:
    tags 'input' and 'maxpool' (or 'avgpool'); e.g. ``convlab.pool(kernel_size=3, ceil_mode=True)``."""
    return _run("pool", settings)


@takes(STACK, VIEWS, DATA, RUN)
def stack(*layers: str, model: nn.Module | None = None, **settings: Any) -> Run | Text:
    """Run a network over the dataset and log every stage in order, as ``convlab stack``.

    The network is either ``layers``, each written as in PyTorch (``"Conv2d(3, 32, 5, padding=2)"``, read,
    never run as code), or ``model``: any ``torch.nn.Module`` of yours. A model's leaf modules are hooked
    (forward hooks) and each call is a stage, in call order (a module called twice is two stages); its
    table has each call's output shape, parameters and multiply-adds, and the receptive field where each
    call takes the previous one's output. The model runs in eval mode where its parameters are, and is
    left as it was. E.g. ``convlab.stack("Conv2d(3, 8, 3)", "ReLU()", dataset="shapes")`` or
    ``convlab.stack(model=my_net, dataset="cifar10")``."""
    if model is None:
        return _run("stack", {**settings, "layers": layers})
    if layers:
        raise ConfigError("give the layers or model=, not both")
    from convlab import modelrun

    settings, config, quiet, dry_run = split_settings(settings)
    exp = resolve("stack", overrides("stack", settings), config, model=True)
    if dry_run:
        mp = modelrun.plan_model(exp, model)
        return _dry_run([modelrun.config_text(mp).rstrip(), "", mp.describe(),
                         f"device: {mp.device}; {mp.num_steps} step(s) of up to {exp.data.batch_size} image(s)"])
    return Run(modelrun.run(exp, model, _reporter(quiet))["run_dir"])


@takes(TRAIN, VIEWS, [n for n in DATA if n != "max_batches"], RUN)
def train(*layers: str, model: nn.Module | None = None, **settings: Any) -> TrainRun | Text:
    """Train a network as a classifier with ``nn.CrossEntropyLoss``, as ``convlab train``: the loss and
    accuracy, a confusion matrix, the kernels and every stage's view of fixed probe images as they
    learn, and ``model.pt``. The network is ``layers`` (as :func:`stack` takes them) or ``model``, your
    own ``nn.Module``, which is trained in place (where its parameters are; its last module must give
    one score per class). Returns the :class:`TrainRun`, which shows the loss curve and the kernels at
    the first and last snapshot; e.g. ``convlab.train(model=net, dataset="shapes", max_steps=20)``."""
    from convlab.train.run import train as train_network

    if model is not None and layers:
        raise ConfigError("give the layers or model=, not both")
    settings, config, quiet, dry_run = split_settings(settings)
    if model is None:
        settings["layers"] = layers
    exp = resolve("train", overrides("train", settings), config, model=model is not None)
    if dry_run and model is None:
        from convlab.commands import train_plan_lines

        return _dry_run(train_plan_lines(exp))
    if dry_run:
        from convlab.modelrun import config_text
        from convlab.train.plan import describe_training, plan_training

        tp = plan_training(exp, model)
        return _dry_run([config_text(tp.stack).rstrip(), "", tp.stack.describe(), describe_training(tp), f"device: {tp.stack.device}"])
    return TrainRun(train_network(exp, _reporter(quiet), model=model)["run_dir"])


@takes(CONV, POOL, STACK, VIEWS, DATA, RUN)
def sweep(command: str, *layers: str, vary: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
          skip_invalid: bool = False, **settings: Any) -> Sweep | Text:
    """Settings side by side, as ``convlab sweep conv|pool|stack``: one run for every combination of the
    ``vary`` values over the same images, in one pass, and a run 'compare' with them side by side.

    ``vary`` maps a key of the layer's settings to its values, e.g. ``{"kernel_size": [2, 3],
    "ceil_mode": [False, True]}`` (a stack's ``layers``: a list of layer lists), or is the command line's
    ``["kernel_size=2,3", ...]``. The other keywords are fixed for every run (those of ``command``).
    Returns the :class:`Sweep`, which shows the compare picture; its ``runs`` are the single runs."""
    from convlab.sweep import prepare
    from convlab.sweep import run as run_sweep

    if command not in ("conv", "pool", "stack"):
        raise ConfigError(f"unknown sweep {command!r}; choose from conv, pool, stack")
    settings, config, quiet, dry_run = split_settings(settings)
    if layers:
        settings["layers"] = layers
    flags, table = ([], dict(vary or {})) if vary is None or isinstance(vary, Mapping) else (list(vary), {})
    if isinstance(vary, str):
        flags = [vary]
    sw = prepare(command, overrides(command, settings), config, flags, skip_invalid=skip_invalid, vary=table)
    if dry_run:
        from convlab.commands import sweep_plan_lines

        return _dry_run(sweep_plan_lines(sw))
    return Sweep(run_sweep(sw, _reporter(quiet))["sweep_dir"])


@takes(PREDICT, VIEWS, PREDICT_DATA, RUN)
def predict(*inputs: str | Path, run: str | Path | None = None, model: nn.Module | None = None, out: str | Path | None = None,
            **settings: Any) -> PredictRun | Text:
    """Your own images through a trained classifier, as ``convlab predict``: per image the top-k classes,
    the input as the model sees it (and what was done to it), every stage's maps and why it said so
    (Grad-CAM, saliency, occlusion, by captum), logged as a run.

    ``inputs`` are image files or folders of them (a folder of class subfolders is scored against them);
    the model is the training run ``run`` (its layers, ``model.pt``, classes and how its images were
    read), or, without ``run``, its layers first in ``inputs`` (each as PyTorch code, as :func:`stack`
    takes them) with ``weights`` and ``dataset`` for the class names. ``out``: also write a PNG sheet per
    image shown (``out`` for one image; for several, its name with the image's number: sheet-0.png, ...).
    E.g. ``convlab.predict("photo.jpg", run=trained.run_dir)``. Returns the :class:`PredictRun`, which shows a
    row per image: its classes as bars, the input as seen, each attribution. ``model=`` (a Python
    ``nn.Module``) is not taken: give the layers and their weights, or a training run."""
    from convlab.predict.plan import dry_run_lines, plan_prediction, resolve_prediction, sheet_paths
    from convlab.predict.run import predict as predict_images

    if model is not None:
        raise ConfigError("predict takes no model=: its attributions and trace read convlab's own stages; save the weights "
                          "(torch.save(model.state_dict(), 'net.pt')) and give the layers with weights='net.pt', or train with "
                          "convlab.train(\"Conv2d(...)\", ...) and give run=")
    settings, config, quiet, dry_run = split_settings(settings)
    exp = resolve_prediction([str(i) for i in inputs], overrides("predict", settings), run=run, config=config)
    pp = plan_prediction(exp, out)
    if dry_run:
        return _dry_run(dry_run_lines(pp))
    summary = predict_images(pp, _reporter(quiet))
    shown = summary["pictured"]
    return PredictRun(summary["run_dir"], sheet_paths(pp.out, shown) if pp.out is not None and shown else [])


@takes(TOP, DATA, RUN)
def top(*layers: str, run: str | Path | None = None, channels: int | Sequence[int] | str | None = None,
        out: str | Path | None = None, **settings: Any) -> TopRun | Text:
    """What each channel looks for, as ``convlab top``: for each map stage (or ``stages``) and each channel
    (the first ``max_channels``, or ``channels``, e.g. ``[0, 4, 7]``), the ``k`` dataset patches that excite it
    most, each cropped to that channel's receptive field, in one pass over the data; beside them its mean,
    its top value and how often it is dead (never above 0). The network is ``layers`` (as :func:`stack`
    takes them, with ``weights``), ``pretrained`` and ``upto``, or the training run ``run`` (its layers and
    ``model.pt``). ``out``: a folder for each stage's PNG sheet (never overwritten). E.g.
    ``convlab.top(run=trained.run_dir, stages=[1], k=9)``. Returns the :class:`TopRun`: each stage's sheet and
    channel table."""
    from convlab.top.plan import resolve_top
    from convlab.top.run import run_top

    settings, config, quiet, dry_run = split_settings(settings)
    found = overrides("top", {**settings, "layers": layers})
    found["top"]["channels"] = [channels] if isinstance(channels, int) else channels  # explain's channels are the input's
    exp = resolve_top(found, None if config is None else Path(config), None if run is None else Path(run))
    if dry_run:
        from convlab.commands import top_plan_lines

        return _dry_run(top_plan_lines(exp))
    summary, _ = run_top(exp, _reporter(quiet), out=None if out is None else Path(out))
    return TopRun(summary["run_dir"])
