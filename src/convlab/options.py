"""Every option of the convlab command line, declared once as an ``Annotated`` alias.

Option parameters are named as the config keys they set (``kernel_size`` for ``--kernel``), so
config.overrides hands them to config.resolve without a table per command (the notebook API
passes its keyword arguments the same way). Every setting
defaults to None: an option left out never overrides the config file or the built-in default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from convlab.data import DATASETS
from convlab.kernels import INIT_NAMES
from convlab.lessons import TRANSPOSED_CASES
from convlab.modules import SIGNATURES
from convlab.optimizers import OPTIMIZER_NAMES
from convlab.predict.attributions import ATTRIBUTIONS
from convlab.pretrained import PRETRAINED
from convlab.stages import PADDING_MODES, POOL_MODES
from convlab.validation import SCALES, SPLITS
from convlab.views import VIEWS

PaddingMode = Enum("PaddingMode", {m: m for m in PADDING_MODES}, type=str)
PoolMode = Enum("PoolMode", {m: m for m in POOL_MODES}, type=str)
Scale = Enum("Scale", {s: s for s in SCALES}, type=str)
Split = Enum("Split", {s: s for s in SPLITS}, type=str)
Optimizer = Enum("Optimizer", {o: o for o in OPTIMIZER_NAMES}, type=str)

LAYER, DATA, RUN, VIEW, INPUT, ANIMATION, SWEEP, TRAIN = "Layer", "Data", "Run", "Views", "Input", "Animation", "Sweep", "Training"
MODEL, PREDICT = "Model", "Prediction"
TOP = "Top patches"

# Every option, declared once. Every setting defaults to None: an option left out never
# overrides the config file or the built-in default (see config.resolve).

# Layer
InChannelsOpt = Annotated[
    int | None, typer.Option("--in-channels", help="Must match the data. \\[default: the dataset's channels]", rich_help_panel=LAYER)
]
OutChannelsOpt = Annotated[int | None, typer.Option("--out-channels", "-c", help="\\[default: 6]", rich_help_panel=LAYER)]
KernelOpt = Annotated[
    str | None, typer.Option("--kernel", "--kernel-size", "-k", metavar="K|HxW", help="\\[default: 3]", rich_help_panel=LAYER)
]
ConvStrideOpt = Annotated[str | None, typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: 1]", rich_help_panel=LAYER)]
PoolStrideOpt = Annotated[
    str | None, typer.Option("--stride", "-s", metavar="S|HxW", help="\\[default: the kernel size]", rich_help_panel=LAYER)
]
ConvPaddingOpt = Annotated[
    str | None, typer.Option("--padding", "-p", metavar="P|HxW|same|valid", help="\\[default: 0]", rich_help_panel=LAYER)
]
PoolPaddingOpt = Annotated[str | None, typer.Option("--padding", "-p", metavar="P|HxW", help="\\[default: 0]", rich_help_panel=LAYER)]
PaddingModeOpt = Annotated[PaddingMode | None, typer.Option("--padding-mode", help="\\[default: zeros]", rich_help_panel=LAYER)]
DilationOpt = Annotated[str | None, typer.Option("--dilation", "-d", metavar="D|HxW", help="\\[default: 1]", rich_help_panel=LAYER)]
GroupsOpt = Annotated[int | None, typer.Option("--groups", "-g", help="\\[default: 1]", rich_help_panel=LAYER)]
BiasOpt = Annotated[bool | None, typer.Option("--bias/--no-bias", help="\\[default: bias]", rich_help_panel=LAYER)]
InitOpt = Annotated[
    str | None,
    typer.Option("--init", metavar="NAMES", help=f"Weights: random (PyTorch's init) or one kernel per output channel, "
                 f"comma-separated, from: {', '.join(INIT_NAMES)}. \\[default: random]", rich_help_panel=LAYER),
]
# Paths convlab saves in config.toml are taken as typed: a Path would turn '' into '.'.
WeightsOpt = Annotated[
    str | None,
    typer.Option("--weights", metavar="FILE", help="Load the weight (out, in/groups, kH, kW) from a .pt or .npy file.", rich_help_panel=LAYER),
]
CeilOpt = Annotated[
    bool | None,
    typer.Option("--ceil/--no-ceil", help="ceil_mode: keep windows that hang over the edge. \\[default: no-ceil]", rich_help_panel=LAYER),
]
PoolModeOpt = Annotated[PoolMode | None, typer.Option("--mode", help="max (MaxPool2d) or avg (AvgPool2d). \\[default: max]", rich_help_panel=LAYER)]
UnpoolOpt = Annotated[
    bool | None,
    typer.Option("--unpool/--no-unpool", help="Also log tag 'unpool': MaxUnpool2d(pool(x)), only the maxima, "
                 "at the input's size. \\[default: no-unpool]", rich_help_panel=LAYER),
]
OutputSizeOpt = Annotated[
    str | None,
    typer.Option("--output-size", metavar="HxW", help="MaxUnpool2d's output_size. \\[default: (in - 1)*stride - 2*padding + kernel]", rich_help_panel=LAYER),
]

# Stack
LayersArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="LAYER", show_default=False, help=f"Each layer as PyTorch code, e.g. \"Conv2d(3, 32, 5, padding=2)\" "
                   f"\"ReLU()\"; literal arguments only, never run as code. Layers: {', '.join(SIGNATURES)}."),
]
StackWeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", metavar="FILE", help="A .pt/.pth state_dict (or whole model of torch.nn layers) whose parameters "
                 "match the stack's in order and shape; read with torch.load(weights_only=True).", rich_help_panel=LAYER),
]
PretrainedOpt = Annotated[
    str | None,
    typer.Option("--pretrained", metavar="NAME", help=f"The first stages of a torchvision model with its ImageNet weights: "
                 f"{', '.join(PRETRAINED)}.", rich_help_panel=LAYER),
]
UptoOpt = Annotated[int | None, typer.Option("--upto", metavar="K", help="With --pretrained: its first K stages. \\[default: all convlab knows]", rich_help_panel=LAYER)]
MaxChannelsOpt = Annotated[
    int | None, typer.Option("--max-channels", help="Channels shown per map stage (the first ones). \\[default: 16]", rich_help_panel=VIEW)
]

# Training
InitWeightsOpt = Annotated[
    Path | None,
    typer.Option("--init-weights", metavar="FILE", help="Start from these weights: a .pt/.pth state_dict (e.g. a run's model.pt) "
                 "matching the stack's parameters in order and shape. \\[default: PyTorch's init, seeded with --seed]", rich_help_panel=LAYER),
]
OptimizerOpt = Annotated[Optimizer | None, typer.Option("--optimizer", help="torch.optim.SGD, Adam or AdamW. \\[default: sgd]", rich_help_panel=TRAIN)]
WeightDecayOpt = Annotated[
    float | None, typer.Option("--weight-decay", metavar="WD", help="As torch.optim computes it: sgd and adam add WD x weight to "
                               "each gradient, adamw shrinks each weight by lr x WD a step. \\[default: 0; adamw 0.01]", rich_help_panel=TRAIN),
]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Learning rate. \\[default: 0.01, as the lesson]", rich_help_panel=TRAIN)]
ShuffleOpt = Annotated[
    bool | None, typer.Option("--shuffle/--no-shuffle", help="A new random order of the training images each epoch (seeded; the "
                              "built-in shapes are drawn in random order either way). \\[default: shuffle]", rich_help_panel=TRAIN),
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Passes over the training images. \\[default: 1]", rich_help_panel=TRAIN)]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps (batches) in all. \\[default: when the epochs end]", rich_help_panel=TRAIN)]
EvalEveryOpt = Annotated[
    int | None, typer.Option("--eval-every", metavar="STEPS", help="Evaluate (test/loss, test/accuracy, confusion matrix, model.pt) every this many "
                             "steps, and at the end. \\[default: each epoch's end]", rich_help_panel=TRAIN),
]
SnapshotEveryOpt = Annotated[
    int | None, typer.Option("--snapshot-every", metavar="STEPS", help="Log the kernels and the probe images' views every this many steps, "
                             "at step 0 and at the end. \\[default: 100]", rich_help_panel=TRAIN),
]
EvalSplitOpt = Annotated[Split | None, typer.Option("--eval-split", help="The split evaluated on. \\[default: test]", rich_help_panel=TRAIN)]
EvalBatchesOpt = Annotated[int | None, typer.Option("--eval-batches", help="Evaluate on the first N batches of it. \\[default: all]", rich_help_panel=TRAIN)]
HoldoutOpt = Annotated[
    float | None, typer.Option("--holdout", metavar="FRACTION", help="Evaluate on this fraction of the training images, kept out of "
                               "training, instead of --eval-split. \\[default: none; 0.2 for --dataset folder]", rich_help_panel=TRAIN),
]

# Top patches (convlab top)
TrainingRunOpt = Annotated[
    Path | None,
    typer.Option("--run", metavar="DIR", help="The network of a training run (logs/train/train-...): its layers, its model.pt and the "
                 "dataset it was trained on (flags override the dataset).", rich_help_panel=LAYER),
]
PatchesOpt = Annotated[int | None, typer.Option("--k", help="Patches per channel: the images that excite it most, each once. \\[default: 9]", rich_help_panel=TOP)]
TopStagesOpt = Annotated[
    str | None, typer.Option("--stages", metavar="N,N", help="The stages shown, counted from 1, e.g. 1,3,5. \\[default: every map stage]", rich_help_panel=TOP),
]
TopChannelsOpt = Annotated[
    str | None, typer.Option("--channels", metavar="C,C", help="The channels shown in each stage, e.g. 0,4,7. \\[default: the first --max-channels]", rich_help_panel=TOP),
]
ClassOpt = Annotated[str | None, typer.Option("--class", metavar="NAME", help="Count only the images of this class.", rich_help_panel=TOP)]
SheetsOpt = Annotated[Path | None, typer.Option("--out", metavar="DIR", help="Also save each stage's sheet as a PNG here (never overwritten).", rich_help_panel=TOP)]
TopJsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (per stage and channel: the top-k image, y, x, value; the mean; "
                       "the dead fraction), and nothing else.", rich_help_panel=TOP),
]
TrainTopOpt = Annotated[
    bool | None, typer.Option("--top/--no-top", help="At the end, log each map stage's top patches over the evaluation images "
                              "(as convlab top), beside the kernels. \\[default: no-top]", rich_help_panel=TRAIN),
]

# Views


def views_option(kinds: tuple[str, ...] | None = None) -> Any:
    """``--views``, listing the views that apply to these stage kinds (None: a stack's, every view)."""
    listed = [name for name, view in VIEWS.items() if kinds is None or set(kinds) & set(view.kinds)]
    return Annotated[
        str | None,
        typer.Option("--views", metavar="NAMES", help=f"Extra views beside the tutorial's tags, comma-separated: {', '.join(listed)}, "
                     "or none. \\[default: every one that applies]", rich_help_panel=VIEW),
    ]


ScaleOpt = Annotated[
    Scale | None,
    typer.Option("--scale", help="Grey levels of the extra views: raw (as TensorBoard), minmax, or symmetric "
                 "(0 = mid-grey). \\[default: symmetric]", rich_help_panel=VIEW),
]
ViewImagesOpt = Annotated[int | None, typer.Option("--view-images", help="Images per batch in the 'channels' view. \\[default: 4]", rich_help_panel=VIEW)]
ZoomOpt = Annotated[int | None, typer.Option("--zoom", help="Nearest-neighbour upscaling of the extra views. \\[default: auto]", rich_help_panel=VIEW)]

# Data
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help=f"Dataset: {', '.join(DATASETS)}. \\[default: cifar10]", rich_help_panel=DATA)]
SplitOpt = Annotated[Split | None, typer.Option("--split", help="\\[default: test]", rich_help_panel=DATA)]
TrainSplitOpt = Annotated[Split | None, typer.Option("--split", help="The split trained on. \\[default: train]", rich_help_panel=DATA)]
DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", metavar="PATH", help="Where datasets live or are downloaded to; for --dataset folder, your images (a folder or one file). \\[default: ./data]", rich_help_panel=DATA),
]
DownloadOpt = Annotated[bool | None, typer.Option("--download/--no-download", help="Download a missing dataset. \\[default: download]", rich_help_panel=DATA)]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", "-b", help="\\[default: 64]", rich_help_panel=DATA)]
MaxBatchesOpt = Annotated[int | None, typer.Option("--max-batches", "-n", help="Stop after this many batches. \\[default: all]", rich_help_panel=DATA)]
ImageSizeOpt = Annotated[
    int | None,
    typer.Option("--image-size", metavar="N", rich_help_panel=DATA,
                 help="For --dataset folder: shorter side resized to N, then the centre NxN crop; 0 keeps each image's size. \\[default: 128]"),
]
GrayscaleOpt = Annotated[
    bool | None,
    typer.Option("--grayscale/--rgb", help="For --dataset folder: read images as 1-channel grey instead of RGB. \\[default: rgb]", rich_help_panel=DATA),
]

# Run
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N; auto = cuda when available. \\[default: auto]", rich_help_panel=RUN)]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seeds the layer's weights and built-in data. \\[default: 0]", rich_help_panel=RUN)]
LogdirOpt = Annotated[str | None, typer.Option("--logdir", metavar="DIR", help="\\[default: logs]", rich_help_panel=RUN)]
RunNameOpt = Annotated[str | None, typer.Option("--run-name", help="Directory name inside --logdir. \\[default: what ran and when]", rich_help_panel=RUN)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML experiment file; flags given here override it.", rich_help_panel=RUN)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the resolved config, the module and its shapes; run nothing.", rich_help_panel=RUN)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.", rich_help_panel=RUN)]

# Input and animation (explain, demo)
SizeOpt = Annotated[
    str | None,
    typer.Option("--size", metavar="HxW", help="Input height and width. \\[default: the dataset's, 32x32 for CIFAR10]", rich_help_panel=INPUT),
]
UnpoolSizeOpt = Annotated[
    str | None,
    typer.Option("--size", metavar="HxW", help="The unpooling's input (a MaxPool2d's output). \\[default: what MaxPool2d makes of the dataset's 32x32]", rich_help_panel=INPUT),
]
ChannelsOpt = Annotated[int | None, typer.Option("--channels", min=1, help="Input channels. \\[default: the dataset's, 3 for CIFAR10]", rich_help_panel=INPUT)]
MatrixOpt = Annotated[
    str | None,
    typer.Option("--input", metavar="ROWS", help="The input matrix: '1 2 0; 3 2 4' or '[[1, 2, 0], [3, 2, 4]]'. \\[default: the lesson's 5x5]", rich_help_panel=INPUT),
]
WeightOpt = Annotated[
    str | None,
    typer.Option("--weight", metavar="ROWS", help="The kernel's weights, as --input. \\[default: the lesson's 3x3, or ones for another --kernel]", rich_help_panel=INPUT),
]
CellOpt = Annotated[str | None, typer.Option("--cell", metavar="R,C", help="The output cell whose multiply-adds are shown. \\[default: 0,0]", rich_help_panel=INPUT)]
AnimateOpt = Annotated[
    Path | None,
    typer.Option("--animate", metavar="FILE.gif", help="Also draw the layer sliding over a small input (or --size) as a GIF.", rich_help_panel=ANIMATION),
]
FramesLogdirOpt = Annotated[
    Path | None,
    typer.Option("--logdir", help="With --animate: also log the frames to TensorBoard here (tag 'animation', step = frame).", rich_help_panel=ANIMATION),
]

# Going back up (explain and demo convtranspose)
TransposedCase = Enum("TransposedCase", {name: name for name in TRANSPOSED_CASES}, type=str)
TransposedPaddingOpt = Annotated[str | None, typer.Option("--padding", "-p", metavar="P|HxW", help="Cropped from each side of the output. \\[default: 0]", rich_help_panel=LAYER)]
OutputPaddingOpt = Annotated[
    str | None,
    typer.Option("--output-padding", metavar="P|HxW", help="Added after the bottom and right edges: below the stride or the dilation. "
                 "\\[default: 0; demo: what gets the lesson's 5x5 back]", rich_help_panel=LAYER),
]
TransposedChannelsOpt = Annotated[
    int | None, typer.Option("--channels", min=1, help="Input channels, the layer's in_channels. \\[default: 6, what explain conv makes]", rich_help_panel=INPUT)
]
TransposedOutChannelsOpt = Annotated[
    int | None, typer.Option("--out-channels", "-c", help="\\[default: the dataset's channels, 3 for CIFAR10: back to an image]", rich_help_panel=LAYER)
]
TransposedSizeOpt = Annotated[
    str | None,
    typer.Option("--size", metavar="HxW", help="The input's height and width. \\[default: what Conv2d with the same arguments makes of the dataset's 32x32]", rich_help_panel=INPUT),
]
TransposedCaseOpt = Annotated[
    TransposedCase | None,
    typer.Option("--case", help="One of conv_arithmetic's transposed animations: its layer and input size (other layer options are then left out).", rich_help_panel=LAYER),
]

# Sweep
VaryOpt = Annotated[
    list[str] | None,
    typer.Option("--vary", metavar="KEY=V1,V2", rich_help_panel=SWEEP,
                 help="A layer key (as in config files) and the values to compare, e.g. kernel_size=2,3 or ceil_mode=false,true "
                 "(init and a stack's layers: alternatives separated by ';', e.g. \"layers=Conv2d(3, 8, 3), ReLU(); "
                 "Conv2d(3, 8, 3), Tanh()\"). Repeatable: every combination runs."),
]
SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="Skip (and list) invalid combinations instead of refusing to start.", rich_help_panel=SWEEP)
]
SweepNameOpt = Annotated[
    str | None, typer.Option("--run-name", help="The sweep's directory inside --logdir. \\[default: sweep-<command>-<time>]", rich_help_panel=RUN)
]

# Predict
PredictArgs = Annotated[
    list[str] | None,
    typer.Argument(metavar="LAYER|IMAGE", show_default=False,
                   help="The images: files, or folders of them (a folder of class subfolders is scored against them). "
                   "Without --run, the model's layers come first, each as PyTorch code (an argument written as a call, "
                   "e.g. \"Linear(64, 10)\", that names no file)."),
]
FromRunOpt = Annotated[
    Path | None,
    typer.Option("--run", metavar="DIR", help="A convlab train run (logs/train/train-...): its layers, its model.pt, its classes, and "
                 "how its images were read (dataset, image size, grey or RGB).", rich_help_panel=MODEL),
]
PredictWeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", metavar="FILE", help="Without --run: the model's .pt/.pth state_dict, matched to the layers in order "
                 "and shape. \\[default: PyTorch's initial weights, an untrained model]", rich_help_panel=MODEL),
]
PredictDatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help=f"The dataset the model was trained on: its class names and how its images were read "
                 f"({', '.join(DATASETS)}). \\[default: the run's; cifar10]", rich_help_panel=MODEL),
]
TopKOpt = Annotated[int | None, typer.Option("--top", metavar="K", help="Classes listed per image, the most probable "
                    "first. \\[default: 3]", rich_help_panel=PREDICT)]
TargetOpt = Annotated[str | None, typer.Option("--target", metavar="NAME", help="The class the attributions explain. "
                      "\\[default: each image's predicted class]", rich_help_panel=PREDICT)]
GradcamLayerOpt = Annotated[int | None, typer.Option("--layer", metavar="N", help="The conv stage Grad-CAM reads (its number in "
                            "the stage table), after its activation. \\[default: the last conv stage]", rich_help_panel=PREDICT)]
AttributionsOpt = Annotated[
    str | None,
    typer.Option("--attributions", metavar="NAMES", help=f"Comma-separated: {', '.join(ATTRIBUTIONS)}; or none (the fastest). "
                 "\\[default: every one that applies]", rich_help_panel=PREDICT),
]
TraceOpt = Annotated[
    str | None,
    typer.Option("--trace", metavar="STAGE:CHANNEL:Y:X", help="Print how that value of that stage's output was computed: the "
                 "input window, the kernel, the products, their sum, + bias, and what the next activation and pool made of it.",
                 rich_help_panel=PREDICT),
]
PicturesOpt = Annotated[
    int | None,
    typer.Option("--pictures", metavar="N", help="Show the first N images (the input as seen, every stage, attributions, in "
                 "TensorBoard and the terminal); every image is predicted. \\[default: 16]", rich_help_panel=PREDICT),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", metavar="FILE.png", help="Also write a PNG sheet per image shown: FILE.png for one image, FILE-0.png, "
                 "FILE-1.png, ... (by the image's number) for several.", rich_help_panel=PREDICT),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the classes and probabilities of every image as JSON, and nothing "
                    "else, on stdout.", rich_help_panel=PREDICT)]

# ----------------------------------------------------------------------------- option groups
# Options several commands share, declared once as a group; a command lists its own options and
# names the groups it takes (:func:`with_options`). Each group is (parameter name, option type,
# default); every setting defaults to None, so an option left out never overrides anything.

OptionGroup = tuple[inspect.Parameter, ...]


def option_group(**options: Any) -> OptionGroup:
    """``name=OptionType`` (default None) or ``name=(OptionType, default)``, in the order --help lists them."""
    params = []
    for name, spec in options.items():
        annotation, default = spec if isinstance(spec, tuple) else (spec, None)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return tuple(params)


def views_group(kinds: tuple[str, ...] | None = None) -> OptionGroup:
    """The extra views' options; ``--views`` lists those that apply to these stage kinds (None: every view)."""
    return option_group(show=views_option(kinds), scale=ScaleOpt, images=ViewImagesOpt, zoom=ZoomOpt)


_DATA = dict(dataset=DatasetOpt, split=SplitOpt, data_dir=DataDirOpt, download=DownloadOpt, batch_size=BatchSizeOpt,
             max_batches=MaxBatchesOpt, image_size=ImageSizeOpt, grayscale=GrayscaleOpt)
_RUN = dict(device=DeviceOpt, seed=SeedOpt, logdir=LogdirOpt, run_name=RunNameOpt, config=ConfigOpt,
            dry_run=(DryRunOpt, False), quiet=(QuietOpt, False))
DATA_OPTIONS = option_group(**_DATA)
# Training reads every batch of --split (no --max-batches: --epochs and --max-steps bound it).
TRAIN_DATA_OPTIONS = option_group(**({k: v for k, v in _DATA.items() if k != "max_batches"} | {"split": TrainSplitOpt}))
RUN_OPTIONS = option_group(**_RUN)
SWEEP_RUN_OPTIONS = option_group(**{**_RUN, "run_name": SweepNameOpt})
# A prediction reads your images, not a dataset: the dataset's options say how the model's images were read.
PREDICT_DATA_OPTIONS = option_group(dataset=PredictDatasetOpt, data_dir=DataDirOpt, image_size=ImageSizeOpt, grayscale=GrayscaleOpt,
                                    batch_size=BatchSizeOpt)

# One layer's options, shared by its command and its sweep (explain and demo take some of them, listed there).
CONV_LAYER_OPTIONS = option_group(
    in_channels=InChannelsOpt, out_channels=OutChannelsOpt, kernel_size=KernelOpt, stride=ConvStrideOpt, padding=ConvPaddingOpt,
    padding_mode=PaddingModeOpt, dilation=DilationOpt, groups=GroupsOpt, bias=BiasOpt, init=InitOpt, weights=WeightsOpt,
)
POOL_LAYER_OPTIONS = option_group(kernel_size=KernelOpt, stride=PoolStrideOpt, padding=PoolPaddingOpt, dilation=DilationOpt,
                                  ceil_mode=CeilOpt, mode=PoolModeOpt, unpool=UnpoolOpt)
# A stack's network besides its layers: weights for it, or a pretrained network's first stages, and how much is shown.
STACK_NETWORK_OPTIONS = option_group(weights=StackWeightsOpt, pretrained=PretrainedOpt, upto=UptoOpt, max_channels=MaxChannelsOpt)
# What explain works a layer out on (a size, its channels, a config's layer), and its --animate.
EXPLAIN_INPUT_OPTIONS = option_group(size=SizeOpt, channels=ChannelsOpt, config=ConfigOpt)
ANIMATE_OPTIONS = option_group(animate=AnimateOpt, frames_logdir=FramesLogdirOpt)

Command = TypeVar("Command", bound=Callable[..., None])


def with_options(*groups: OptionGroup) -> Callable[[Command], Command]:
    """Give a typer command the options of ``groups`` after its own. typer reads a command's
    options from its signature, so the wrapper's signature lists them all; the command is called
    with its own parameters, and reads every option's value from ``ctx.params``, as
    :func:`convlab.config.overrides` does."""

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        shared = [p for group in groups for p in group]
        params = [*own.parameters.values(), *shared]

        @functools.wraps(command)
        def wrapper(*args: Any, **values: Any) -> None:
            return command(*args, **{k: v for k, v in values.items() if k in own.parameters})

        wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        del wrapper.__wrapped__  # inspect.signature would follow it back to the command's own options
        return wrapper  # type: ignore[return-value]

    return decorate
