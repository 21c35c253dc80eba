"""Named kernels (classic image filters) and weights from a file, put into an ``nn.Conv2d``.

The kernels are written as PyTorch applies them: ``Conv2d`` computes a cross-correlation
(no flip), so ``sobel-x`` is positive where the image gets brighter to the right and
``sobel-y`` where it gets brighter downwards.

A named kernel ``K`` fills one output channel. It sees every input channel of its group
with the weight ``K / in_channels_per_group``, so it filters the *average* of those
channels (the grey image for RGB input): a blur or the identity keeps the brightness range
of the input. With ``groups = in_channels`` each output channel sees one input channel, so
``--groups 3 --init identity,identity,identity`` reproduces the input exactly. The bias of
a channel with a named kernel is 0.

This module is torch-free at import (the CLI lists the names in its help).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from convlab.errors import ConfigError
from convlab.files import open_regular
from convlab.geometry import pair_tuple
from convlab.stages import ConvConfig
from convlab.state import MAX_WEIGHTS_BYTES, load_file, reach_problem, tensor_problem
from convlab.values import names

if TYPE_CHECKING:
    import torch
    from torch import nn


class KernelError(ConfigError):
    """An unknown kernel name, a kernel that does not fit, or a bad weights file."""


Matrix = list[list[float]]

FIXED: dict[str, Matrix] = {
    "sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel-y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def _binomial(n: int) -> list[float]:
    row = [1.0]
    for _ in range(n - 1):
        row = [a + b for a, b in zip([0.0, *row], [*row, 0.0])]
    return row


def _identity(kh: int, kw: int) -> Matrix:
    if kh % 2 == 0 or kw % 2 == 0:
        raise KernelError(f"identity needs an odd kernel size to have a centre, got {kh}x{kw}; use --kernel 3")
    return [[1.0 if (i, j) == (kh // 2, kw // 2) else 0.0 for j in range(kw)] for i in range(kh)]


def _box(kh: int, kw: int) -> Matrix:
    return [[1.0 / (kh * kw)] * kw for _ in range(kh)]


def _gaussian(kh: int, kw: int) -> Matrix:
    # Binomial weights: the classic [1 2 1] x [1 2 1] / 16 at 3x3, [1 4 6 4 1]... at 5.
    rows, cols = _binomial(kh), _binomial(kw)
    total = sum(rows) * sum(cols)
    return [[r * c / total for c in cols] for r in rows]


# Kernels that fit any size (identity: any odd size).
SIZED: dict[str, Callable[[int, int], Matrix]] = {"identity": _identity, "box": _box, "gaussian": _gaussian}

KERNEL_NAMES = ("identity", "sobel-x", "sobel-y", "laplacian", "gaussian", "box", "sharpen", "emboss")
INIT_NAMES = ("random", *KERNEL_NAMES)


def kernel(name: str, size: tuple[int, int] = (3, 3)) -> Matrix:
    """The named kernel as a ``size`` matrix of floats, or a KernelError saying why not."""
    kh, kw = size
    if name in SIZED:
        return SIZED[name](kh, kw)
    if name in FIXED:
        if (kh, kw) != (3, 3):
            raise KernelError(
                f"{name} is a 3x3 filter but kernel_size is {kh}x{kw}; use --kernel 3 "
                f"({', '.join(SIZED)} fit any size)"
            )
        return [[float(v) for v in row] for row in FIXED[name]]
    raise KernelError(f"unknown kernel {name!r} in --init; choose from {', '.join(INIT_NAMES)}")


def init_conv(conv: nn.Conv2d, cfg: ConvConfig) -> None:
    """Set ``conv``'s weights from ``cfg.init`` or ``cfg.weights``; "random" keeps PyTorch's init."""
    import torch

    if cfg.weights is not None:
        weight, bias = load_weights(cfg.weights, tuple(conv.weight.shape), conv.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if conv.bias is not None:
                conv.bias.copy_(bias if bias is not None else torch.zeros_like(conv.bias))
        problem = reach_problem("conv", conv)
        if problem is not None:
            raise KernelError(f"--weights {cfg.weights} holds {problem}; scale them down")
        return
    chosen = names(cfg.init)
    if chosen == ["random"]:
        return
    _, per_group, kh, kw = conv.weight.shape
    with torch.no_grad():
        for channel, name in enumerate(chosen):
            if name == "random":
                continue
            k = torch.tensor(kernel(name, (kh, kw)), dtype=conv.weight.dtype)
            conv.weight[channel] = k / per_group
            if conv.bias is not None:
                conv.bias[channel] = 0.0


# A .npy file of one conv's weights; a few GiB is already past any layer convlab builds.
MAX_NPY_BYTES = MAX_WEIGHTS_BYTES


def load_weights(path: str, shape: tuple[int, ...], has_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A weight tensor of exactly ``shape`` (and maybe a bias) from a .npy or .pt file, each
    checked by state.py's checker (the layer's reach is checked once they are in it).

    A .pt file holds a tensor, or a state dict with ``weight`` and optionally ``bias`` (what
    ``torch.save(conv.state_dict(), path)`` writes). Anything else is a KernelError.
    """
    import numpy as np
    import torch

    file = Path(path)
    expected = "(out_channels, in_channels/groups, kH, kW) = " + pair_tuple(shape)
    if file.suffix not in (".npy", ".pt"):
        with open_regular(file, limit=MAX_NPY_BYTES, what="--weights file"):  # a missing file or a pipe said as such
            pass
        raise KernelError(f"--weights {file}: expected a .npy or .pt file")
    bias = None
    if file.suffix == ".npy":
        with open_regular(file, limit=MAX_NPY_BYTES, what="--weights file", hint="give a .npy file numpy.save wrote") as f:
            try:
                weight = torch.from_numpy(np.load(f, allow_pickle=False))
            except Exception as exc:  # np.load raises many kinds for a file that is not its own
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise KernelError(f"cannot read --weights {file}: not a file numpy.save wrote ({reason})") from None
    else:
        data = load_file(file, "--weights")
        if isinstance(data, dict):
            if "weight" not in data:
                raise KernelError(f"{file} holds a dict without a 'weight' entry; expected a tensor of shape {expected}")
            weight, bias = data["weight"], data.get("bias")
        else:
            weight = data
    weight = _plain_tensor(weight, file, "weight", expected)
    if tuple(weight.shape) != shape:
        raise KernelError(
            f"{file} holds weights of shape {pair_tuple(weight.shape)}, but this layer's weight is {expected}; "
            "match --out-channels, --kernel and --groups to the file"
        )
    if bias is not None:
        if not has_bias:
            raise KernelError(f"{file} holds a bias but the layer has none (--no-bias); drop --no-bias")
        bias = _plain_tensor(bias, file, "bias", f"({shape[0]},), one per output channel")
        if tuple(bias.shape) != (shape[0],):
            raise KernelError(f"{file} holds a bias of shape {pair_tuple(bias.shape)}; expected ({shape[0]},), one per output channel")
    return weight, bias


def _plain_tensor(value: object, file: Path, what: str, expected: str) -> torch.Tensor:
    """A tensor state.py's checker passes, as float32, or a KernelError naming it."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise KernelError(f"{file} holds a {type(value).__name__} as its {what}, not a tensor of shape {expected}")
    problem = tensor_problem(value, f"its {what}", what)
    if problem is not None:
        raise KernelError(f"--weights {file}: {problem}")
    return value.to(torch.float32)
