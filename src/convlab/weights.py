"""A saved model's parameters put into a stack's modules, matched by order and shape.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only.
A whole model saved with ``torch.save(model, path)`` is read too when it is built only of
the torch.nn classes convlab builds (an allow-list; their code is PyTorch's, not the
file's); any other class is refused before anything is unpickled. Nothing from a file is
ever executed. torch is imported inside the functions.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import ConfigError, Experiment, StageConfig
from convlab.modules import SIGNATURES, call_text

if TYPE_CHECKING:
    import torch
    from torch import nn


class WeightsError(ConfigError):
    """A weights file that cannot be read or does not fit the stack."""


SUFFIXES = (".pt", ".pth")
# Keys under which training scripts commonly keep the state_dict inside a checkpoint dict.
_NESTED = ("state_dict", "model_state_dict", "model")


def allowed_classes() -> list[type]:
    """The torch.nn classes a whole saved model may be built of."""
    from torch import nn

    return [nn.Sequential, *(getattr(nn, name) for name in SIGNATURES)]


def _how_to_save(path: Path) -> str:
    return f"save its parameters instead: torch.save(model.state_dict(), '{path.name}')"


def read_state(path: str | Path, option: str = "--weights") -> list[tuple[str, torch.Tensor]]:
    """The tensors a .pt/.pth file holds, in order: a state_dict, a checkpoint dict with one,
    or the state of a whole model built of allow-listed torch.nn classes."""
    import torch
    from torch import nn

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise WeightsError(f"{option} {path}: expected a .pt or .pth file saved with torch.save")
    if not path.is_file():
        raise WeightsError(f"{option} file not found: {path}" if not path.exists() else f"{option} {path} is not a file")
    allowed = allowed_classes()
    names = {f"{c.__module__}.{c.__qualname__}" for c in allowed}
    try:
        foreign = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if g not in names]
    except Exception:  # an old-format or foreign file: torch.load below says what it is
        foreign = []
    if foreign:
        raise WeightsError(
            f"{path} holds {foreign[0]}, which convlab does not load (unpickling it could run its code); {_how_to_save(path)}"
        )
    try:
        # torch warns about pickle protocols it may not read; the error below says it all.
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise WeightsError(
                f"{path} holds {found.group(1)}, which convlab does not load (unpickling it could run its code); "
                f"{_how_to_save(path)}"
            ) from None
        inner = re.search(r"WeightsUnpickler error: ([^\n]*)", str(exc))
        reason = " ".join((inner.group(1) if inner else str(exc)).split())[:160] or type(exc).__name__
        raise WeightsError(f"cannot read {option} {path}: not a file torch.save wrote ({reason})") from None
    if isinstance(data, nn.Module):
        data = data.state_dict()
    if isinstance(data, Mapping) and not all(isinstance(v, torch.Tensor) for v in data.values()):
        nested = [data[k] for k in _NESTED if isinstance(data.get(k), Mapping)]
        if nested:
            data = nested[0]
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        what = f"a {type(data).__name__}" if not isinstance(data, Mapping) else "a dict that is not a state_dict"
        raise WeightsError(f"{path} holds {what}; expected a state_dict, e.g. torch.save(model.state_dict(), '{path.name}')")
    return [(str(k), v) for k, v in data.items()]


def _check_tensor(key: str, value: torch.Tensor, path: Path) -> None:
    import torch

    if value.is_quantized or value.layout != torch.strided:
        raise WeightsError(f"{path}: {key!r} is a quantized or sparse tensor; save plain dense tensors")
    if value.is_complex():
        raise WeightsError(f"{path}: {key!r} holds complex numbers; expected real ones")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise WeightsError(f"{path}: {key!r} holds NaN or infinite values")


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def load_into(
    modules: Sequence[nn.Module], stages: Sequence[StageConfig], state: Sequence[tuple[str, Any]], path: str | Path
) -> list[str]:
    """Copy ``state`` into ``modules``: the i-th tensor of the file into the i-th tensor of the
    stack (each module's state_dict, in stage order), shapes equal. A file with tensors left
    over is taken as a longer model whose first layers the stack is. Returns notes to show."""
    import torch

    path = Path(path)
    # A state_dict's tensors share the module's storage: copying into them sets the module.
    targets = [(i, name, t) for i, m in enumerate(modules, 1) for name, t in m.state_dict().items()]
    for position, (index, name, target) in enumerate(targets):
        stage = f"stage {index} {call_text(stages[index - 1])}"
        if position >= len(state):
            raise WeightsError(
                f"{stage}: {path} has no tensor left for its {name} {_shape(target)}; the file holds "
                f"{len(state)} tensor(s), the stack needs {len(targets)}"
            )
        key, value = state[position]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(target.shape):
            shape = _shape(value) if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
            raise WeightsError(
                f"{stage}: its {name} is {_shape(target)} but the file's tensor {position + 1}, {key!r}, is "
                f"{shape}; the stack's layers must match the saved model's, in order"
            )
        _check_tensor(key, value, path)
        with torch.no_grad():
            target.copy_(value)
    notes = [f"weights: {len(targets)} tensor(s) from {path}, matched by order and shape"]
    if len(state) > len(targets):
        rest = len(state) - len(targets)
        notes.append(f"weights: the file's last {rest} tensor(s) (from {state[len(targets)][0]!r}) are not used: the stack is its first layers")
    return notes


def load_weights(modules: Sequence[nn.Module], stages: Sequence[StageConfig], path: str | Path) -> list[str]:
    """``--weights FILE`` into the stack's modules; returns notes to show."""
    return load_into(modules, stages, read_state(path), path)


def stack_weights(exp: Experiment, modules: Sequence[nn.Module]) -> tuple[list[str], Any]:
    """``--weights FILE`` or ``--pretrained NAME`` into the stack's modules: notes, normalisation."""
    stack = exp.stack
    if stack.weights is not None:
        return load_weights(modules, exp.stages, stack.weights), None
    if stack.pretrained is not None:
        from convlab.pretrained import fetch_weights, get_pretrained

        model = get_pretrained(stack.pretrained)
        path = fetch_weights(model)
        notes = load_into(modules, exp.stages, read_state(path), path)[1:]
        notes.insert(0, f"weights: {model.name}'s ImageNet weights ({path}); images normalised with its mean and std")
        return notes, (model.mean, model.std)
    return [], None  # PyTorch's own init, seeded: nothing to say
