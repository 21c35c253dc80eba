"""What each command is for, as ``--help`` shows it: a one-line summary (the command lists), a
description, and examples to paste. Torch-free text; :mod:`convlab.cli` declares the options.

Every example is written as it is typed in a shell (values with spaces, ``;`` or parentheses
quoted) and runs as shown: tests/test_usage.py runs each one with ``--dry-run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APP = (
    "See what convolution, pooling and whole networks do to real images: run torch.nn layers over a dataset, "
    "train them, and stream every stage to TensorBoard, with the arithmetic worked out in the terminal."
)


@dataclass(frozen=True)
class Usage:
    summary: str  # one line, a whole sentence: the command list shows it
    description: str = ""  # more, on the command's own --help
    examples: tuple[str, ...] = ()


USAGES: dict[str, Usage] = {
    "conv": Usage(
        "Run a torch.nn.Conv2d over a dataset and log its input and output to TensorBoard.",
        "Logs the lesson's tags 'input' and 'output' (the 6 -> 3 channel reshape view) every batch, and the views "
        "'channels' (every output channel as its own grey tile), 'kernels' and 'stats'.",
        ("convlab conv --out-channels 6",
         "convlab conv --kernel 5 --stride 2 --padding 2 --dataset shapes",
         "convlab conv --init sobel-x,sobel-y --padding 1"),
    ),
    "pool": Usage(
        "Run a torch.nn.MaxPool2d (or AvgPool2d) over a dataset and log its input and output.",
        "Logs the tags 'input' and 'maxpool' (or 'avgpool') every batch; --unpool also logs MaxUnpool2d's partial "
        "inverse.",
        ("convlab pool --kernel 3 --ceil",
         "convlab pool --kernel 2 --mode avg --dataset shapes",
         "convlab pool --kernel 3 --stride 2 --unpool"),
    ),
    "stack": Usage(
        "Run a stack of torch.nn layers, written as PyTorch code, and log every stage in order.",
        "Each layer is one argument, exactly as in PyTorch (read with ast, never run). TensorBoard gets the images as "
        "'00-input', then each stage's view in stage order ('01-conv2d', '02-relu', ...); one activation alone logs the lesson's "
        "'input' and 'output'.",
        ("convlab stack 'Conv2d(3, 32, 5, padding=2)' 'ReLU()' 'MaxPool2d(2)'",
         "convlab stack --config configs/cifar10-model.toml",
         "convlab stack 'Sigmoid()' --dataset shapes"),
    ),
    "train": Usage(
        "Train a stack of torch.nn layers as a classifier and watch its kernels and feature maps learn.",
        "Trains with nn.CrossEntropyLoss and logs train/ and test/ loss and accuracy, a confusion matrix and the "
        "mistakes, each stage's gradient norm, the kernels at step 0 beside now, and every stage's view of fixed probe "
        "images as they learn; saves model.pt in the run directory (in logs/train unless --logdir says).",
        ("convlab train --config configs/cifar10-model.toml --optimizer adam --lr 0.001 --epochs 2",
         "convlab train 'Conv2d(3, 8, 5, stride=2, padding=2)' 'ReLU()' 'MaxPool2d(4)' 'Flatten()' 'Linear(128, 10)' "
         "--dataset shapes --max-steps 200"),
    ),
    "top": Usage(
        "What each channel looks for: its top-k image patches over a whole dataset, in one pass.",
        "For each map stage (or --stages) and channel (the first --max-channels, or --channels): the k images whose "
        "largest activation in that channel is largest, each cropped to that value's receptive field (padding shown "
        "as a checkerboard); beside them the channel's mean activation and how often it is dead (never above 0 after "
        "its activation). The network of a training run (--run), of LAYER... (--weights, --config) or of "
        "--pretrained NAME --upto K. One image per stage in TensorBoard, the tables in the terminal; --out DIR for "
        "PNG sheets, --json for scripts.",
        ("convlab top --config configs/cifar10-model.toml --stages 1,3 --dataset shapes",
         "convlab top 'Conv2d(3, 16, 5, padding=2)' 'ReLU()' 'MaxPool2d(2)' --dataset shapes --k 4 --out sheets",
         "convlab top --config configs/cifar10-model.toml --dataset shapes --class circle --channels 0,1,2 --json"),
    ),
    "predict": Usage(
        "Your own images through a trained classifier: what it says, and why.",
        "Each image is read as the model's training images were (upright, transparency over white, grey or RGB, "
        "shorter side resized, centre crop), and what was done is said; then its top classes as a bar chart, every "
        "stage's maps, and Grad-CAM, saliency and occlusion pictures of why, in TensorBoard (and --out sheets). "
        "A folder of class subfolders also gets its accuracy and confusion.",
        ("convlab predict --run logs/train/lesson photo.jpg",
         "convlab predict --run logs/train/lesson photo.jpg --target cat --trace 1:0:10:12 --out why.png",
         "convlab predict --run logs/train/lesson my_photos --attributions none --json",
         "convlab predict --config configs/cifar10-model.toml --weights model.pt photo.jpg"),
    ),
    "board": Usage(
        "Start TensorBoard on the logs, keeping every logged step of every image tag.",
        "Plain TensorBoard keeps a random 10 images per tag; this keeps them all. Ctrl-C stops it.",
        ("convlab board", "convlab board --logdir logs --port 6007"),
    ),
    "sweep": Usage(
        "Compare settings side by side: every combination of --vary values, in one pass over the same images.",
        "One run per combination, each exactly what the single command logs, and a run 'compare' with them side by "
        "side.",
    ),
    "sweep conv": Usage(
        "Sweep torch.nn.Conv2d settings over the same images.",
        "Alternatives of init (a list itself) are separated by ';': quote the --vary value in a shell.",
        ("convlab sweep conv --vary kernel_size=3,5 --vary stride=1,2",
         "convlab sweep conv --padding 1 --vary 'init=sobel-x;sobel-y;laplacian'"),
    ),
    "sweep pool": Usage(
        "Sweep torch.nn.MaxPool2d or AvgPool2d settings over the same images.",
        "",
        ("convlab sweep pool --vary kernel_size=2,3 --vary ceil_mode=false,true",
         "convlab sweep pool --config configs/sweep-ceil.toml"),
    ),
    "sweep stack": Usage(
        "Sweep whole stacks of torch.nn layers over the same images.",
        "Each alternative is a layer list written as nn.Sequential's arguments, alternatives separated by ';' (quote "
        "the value in a shell); each must end in a map (C, H, W).",
        ("convlab sweep stack --vary 'layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Tanh()'",
         "convlab sweep stack --config configs/sweep-activations.toml"),
    ),
    "demo": Usage(
        "The classic 5x5 worked examples, every window and its result, in the terminal.",
    ),
    "demo pool": Usage(
        "MaxPool2d by hand: every window over the lesson's 5x5 and its max, with ceil_mode off and on.",
        "The input reshaped to (1, 1, H, W) as the lesson does, each window drawn with its cells.",
        ("convlab demo pool", "convlab demo pool --kernel 2 --ceil", "convlab demo pool --input '1 2 0; 3 2 4; 5 1 1'"),
    ),
    "demo conv": Usage(
        "F.conv2d by hand: one output cell's multiply-accumulate and the whole output.",
        "With the lesson's 5x5 input and 3x3 kernel: stride 1, stride 2 and padding 1, unless layer options say which.",
        ("convlab demo conv", "convlab demo conv --stride 2 --cell 1,1", "convlab demo conv --weight '1 0; 0 -1'"),
    ),
    "demo convtranspose": Usage(
        "F.conv_transpose2d by hand: the input with zeros put between its values, the kernel flipped, the output.",
        "By default it goes back up from each of 'demo conv''s three outputs to the lesson's 5x5 (choosing the "
        "output_padding that gets there): the size comes back, the values do not. --case: one of conv_arithmetic's.",
        ("convlab demo convtranspose", "convlab demo convtranspose --stride 2 --cell 2,2",
         "convlab demo convtranspose --case padding-strides-odd"),
    ),
    "explain": Usage(
        "The arithmetic of a layer or a stack: output sizes with the numbers, receptive fields, parameters, costs.",
    ),
    "explain conv": Usage(
        "Explain a torch.nn.Conv2d: output size, receptive field, parameters, multiply-adds, rows never read.",
        "What 'convlab conv' with these options does to each image; --animate draws the kernel sliding.",
        ("convlab explain conv --stride 2", "convlab explain conv -k 3 -s 2 -p 1 --animate conv.gif"),
    ),
    "explain pool": Usage(
        "Explain a torch.nn.MaxPool2d (or AvgPool2d): output size, windows, and ceil_mode's rule.",
        "",
        ("convlab explain pool --kernel 3 --ceil", "convlab explain pool --kernel 2 --mode avg --size 7x7"),
    ),
    "explain stack": Usage(
        "Explain a stack: per stage its output shape, parameters, multiply-adds, receptive field and jump.",
        "",
        ("convlab explain stack --config configs/cifar10-model.toml",
         "convlab explain stack 'Conv2d(3, 16, 3, stride=2)' 'ReLU()' 'MaxPool2d(2)' --size 64x64"),
    ),
    "explain convtranspose": Usage(
        "Explain a torch.nn.ConvTranspose2d: output size, the convolution it is the gradient of, output_padding.",
        "Also the direct convolution it equals (zeros between the input values, padding, the kernel flipped), what "
        "each output reads, parameters and multiply-adds. By default its input is what Conv2d with the same arguments "
        "makes of the dataset's images; --animate draws the kernel sliding over the zeros, as conv_arithmetic does.",
        ("convlab explain convtranspose -k 3 -s 2 -p 1", "convlab explain convtranspose -k 4 -s 2 -p 1 --size 16x16",
         "convlab explain convtranspose --case padding-strides --animate up.gif"),
    ),
    "explain unpool": Usage(
        "Explain a torch.nn.MaxUnpool2d, the inverse of MaxPool2d with the same kernel, stride and padding.",
        "",
        ("convlab explain unpool -k 2", "convlab explain unpool -k 3 -s 2 --output-size 32x32"),
    ),
}


def _rich(text: str) -> str:
    """typer's help is rich markup: a literal '[' must be escaped."""
    return text.replace("[", "\\[")


def help_of(command: str) -> dict[str, Any]:
    """The ``help``/``short_help``/``epilog`` keywords of a typer command or group (by path, e.g. 'sweep conv')."""
    u = USAGES[command]
    text = "\n\n".join(part for part in (u.summary, u.description) if part)
    out: dict[str, Any] = {"help": _rich(text), "short_help": _rich(u.summary)}
    if u.examples:
        out["epilog"] = _rich("Examples:\n\n" + "\n".join(f"  {example}" for example in u.examples))
    return out
