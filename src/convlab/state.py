"""Weights files read, and a layer's state checked: the one reader and the one checker behind every
weights file convlab takes (``conv --weights``, ``stack --weights``, ``train --init-weights``, a
config's ``weights =``, ``--pretrained``'s cached download, a training run's ``model.pt``).

A file is read as :mod:`convlab.files` reads every file (a regular file, at most
MAX_WEIGHTS_BYTES) with ``torch.load(weights_only=True)``: tensors and plain containers only;
a whole model is read when it is built only of the torch.nn classes convlab builds (their code
is PyTorch's, not the file's), any other class is refused before anything is unpickled.

Each tensor must hold real data (not meta, sparse or quantized), real numbers within float32's
range, and a running variance never below 0 (:func:`tensor_problem`); each weighted layer's
*reach*, the largest output an input of values in [-1, 1] can give, must stay within float32
(:data:`REACH`, one entry per stage kind with weights): past it the output is inf from the
first step on. torch is imported inside the functions.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.errors import ConfigError
from convlab.files import open_regular
from convlab.modules import SIGNATURES

if TYPE_CHECKING:
    import torch
    from torch import nn


class StateError(ConfigError):
    """A weights file that cannot be read, or values no layer can run with."""


# vgg16's whole ImageNet file is 528 MB; one tensor convlab builds is at most 4 GiB (layers.py).
MAX_WEIGHTS_BYTES = 4 << 30
FLOAT32_MAX = 3.4028234663852886e38


def allowed_classes() -> list[type]:
    """The torch.nn classes a whole saved model may be built of."""
    from torch import nn

    return [nn.Sequential, *(getattr(nn, name) for name in SIGNATURES)]


def how_to_save(path: Path) -> str:
    return f"save its parameters instead: torch.save(model.state_dict(), '{path.name}')"


def _reason(exc: BaseException) -> str:
    """Why torch.load failed, in a few words: torch's own account of a broken archive or a refused
    object, else the kind of error (never Python's internals, nor torch's advice to load unsafely)."""
    if isinstance(exc, EOFError):
        return "it ends too early"
    text = str(exc)
    inner = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if inner and inner.group(1).strip() and "weights_only" not in inner.group(1):
        return " ".join(inner.group(1).split())[:160]
    if isinstance(exc, RuntimeError) and "PytorchStreamReader" in text:  # its first sentence: what is broken
        return " ".join((text.splitlines() or [""])[0].split(". ")[0].split())[:160]
    return type(exc).__name__


def load_file(path: str | Path, option: str, *, unreadable: str = "") -> Any:
    """What a weights file holds, read with ``torch.load(weights_only=True)`` from a regular file.

    ``option`` names the file in every message (``--weights``, ``--init-weights``); ``unreadable``
    is the advice after a file torch cannot read (e.g. to delete a cached download)."""
    import torch

    path = Path(path)
    allowed = allowed_classes()
    names = {f"{c.__module__}.{c.__qualname__}" for c in allowed}
    fix = f"; {unreadable}" if unreadable else ""
    with open_regular(path, limit=MAX_WEIGHTS_BYTES, what=f"{option} file", hint="give a file torch.save wrote") as f:
        if f.read(1) == b"":
            raise StateError(f"cannot read {option} {path}: it is empty (0 bytes), not a file torch.save wrote{fix}")
        f.seek(0)
        try:
            foreign = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(f) if g not in names]
        except Exception:  # an old-format or foreign file: torch.load below says what it is
            foreign = []
        if foreign:
            raise StateError(
                f"{path} holds {foreign[0]}, which convlab does not load (unpickling it could run its code); {how_to_save(path)}"
            )
        f.seek(0)
        try:
            # torch warns about old storages and pickle protocols; the error below says it all.
            with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            if found:
                raise StateError(
                    f"{path} holds {found.group(1)}, which convlab does not load (unpickling it could run its code); "
                    f"{how_to_save(path)}"
                ) from None
            raise StateError(f"cannot read {option} {path}: not a file torch.save wrote ({_reason(exc)}){fix}") from None


# ----------------------------------------------------------------------------- the checker


def tensor_problem(value: torch.Tensor, name: str, role: str = "") -> str | None:
    """What is wrong with a tensor a layer would take as its state, or None: ``name`` is how the
    message names it (``'1.running_var'``, ``its bias``), ``role`` the layer's own name for it
    (``running_var``)."""
    import torch

    if value.is_meta:
        return (f"{name} holds no data: it is a meta tensor (a model built on the 'meta' device has shapes but no "
                "values); save the model's real weights")
    if value.is_quantized:
        return f"{name} is a quantized tensor; save plain dense tensors (tensor.dequantize())"
    if value.layout != torch.strided:
        return f"{name} is a sparse tensor ({str(value.layout).removeprefix('torch.')}); save plain dense tensors (tensor.to_dense())"
    if value.is_complex() or value.dtype == torch.bool:
        return f"{name} holds {str(value.dtype).removeprefix('torch.')} values; expected real numbers"
    if value.is_floating_point():
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            nan = int(torch.isnan(value).sum())
            counts = ", ".join(f"{n:,} {what}" for n, what in ((nan, "NaN"), (int((~finite).sum()) - nan, "infinite")) if n)
            return f"{name} holds NaN or infinite values ({counts} of {value.numel():,})"
        largest = float(value.abs().max()) if value.numel() else 0.0
        if largest > FLOAT32_MAX:
            return f"{name} holds values beyond float32's range (largest |value| {largest:.3g}; float32 holds up to {FLOAT32_MAX:.3g})"
    if role == "running_var" and value.numel() and bool((value < 0).any()):
        channel = int((value < 0).nonzero()[0, 0]) if value.dim() else 0
        return (f"{name} holds a negative variance ({float(value.flatten()[channel]):.3g} in channel {channel}); "
                "a variance is never below 0, so this is no BatchNorm's running_var")
    return None


def _weighted_sum(module: nn.Module) -> tuple[torch.Tensor, str]:
    """Conv2d, Linear: per output, sum |weight| over its inputs + |bias|."""
    reach = module.weight.detach().double().abs().flatten(1).sum(1)
    if module.bias is not None:
        reach = reach + module.bias.detach().double().abs()
    return reach, "sum |weight| + |bias|"


def _transposed(module: nn.Module) -> tuple[torch.Tensor, str]:
    """ConvTranspose2d: per output channel, sum |weight| over its group's inputs and every tap + |bias|
    (each output value adds at most every tap of every input channel of its group)."""
    weight = module.weight.detach().double().abs()  # (in, out/groups, kH, kW)
    groups = module.groups
    reach = weight.view(groups, weight.shape[0] // groups, *weight.shape[1:]).sum((1, 3, 4)).flatten()
    if module.bias is not None:
        reach = reach + module.bias.detach().double().abs()
    return reach, "sum |weight| + |bias|"


def _batchnorm(module: nn.Module) -> tuple[torch.Tensor, str] | None:
    """(x - running_mean) / sqrt(running_var + eps) * weight + bias, for |x| <= 1."""
    import torch

    if module.running_var is None:  # batch statistics: the normalised values are at most sqrt(batch - 1)
        return None
    scale = 1 / torch.sqrt(module.running_var.detach().double() + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.detach().double().abs()
    reach = (1 + module.running_mean.detach().double().abs()) * scale
    if module.bias is not None:
        reach = reach + module.bias.detach().double().abs()
    return reach, "(1 + |running_mean|) / sqrt(running_var + eps) * |weight| + |bias|"


# Stage kind -> a layer's reach per output channel (and how it is computed), for every kind with weights.
REACH: dict[str, Callable[[Any], tuple[Any, str] | None]] = {
    "conv": _weighted_sum,
    "convtranspose": _transposed,
    "linear": _weighted_sum,
    "batchnorm2d": _batchnorm,
}


def reach_problem(kind: str, module: nn.Module) -> str | None:
    """None when an input of values in [-1, 1] keeps ``module``'s output within float32."""
    found = REACH[kind](module) if kind in REACH else None
    if found is None:
        return None
    reach, formula = found
    channel = int(reach.nan_to_num(math.inf).argmax()) if reach.numel() else 0
    largest = float(reach.flatten()[channel]) if reach.numel() else 0.0
    if not largest < FLOAT32_MAX:
        return (f"weights so large that the output would overflow float32: {formula} is {largest:.3g} for output channel "
                f"{channel}, past float32's {FLOAT32_MAX:.3g}")
    return None
