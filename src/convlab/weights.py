"""A saved model's parameters put into a stack's modules, matched by order and shape.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only.
A whole model saved with ``torch.save(model, path)`` is read too when it is built only of
the torch.nn classes convlab builds (an allow-list; their code is PyTorch's, not the
file's); any other class is refused before anything is unpickled. Nothing from a file is
ever executed. torch is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.experiment import Experiment
from convlab.modules import call_text
from convlab.stages import StageConfig
from convlab.state import StateError, load_file, reach_problem, tensor_problem
from convlab.validation import weights_option

if TYPE_CHECKING:
    import torch
    from torch import nn


class WeightsError(StateError):
    """A weights file that cannot be read or does not fit the stack."""


SUFFIXES = (".pt", ".pth")
# Keys under which training scripts commonly keep the state_dict inside a checkpoint dict.
_NESTED = ("state_dict", "model_state_dict", "model")


def read_state(path: str | Path, option: str = "--weights", *, unreadable: str = "") -> list[tuple[str, torch.Tensor]]:
    """The tensors a .pt/.pth file holds, in order: a state_dict, a checkpoint dict with one,
    or the state of a whole model built of allow-listed torch.nn classes (read by state.load_file)."""
    import torch
    from torch import nn

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise WeightsError(f"{option} {path}: expected a .pt or .pth file saved with torch.save")
    try:
        data = load_file(path, option, unreadable=unreadable)
    except StateError as exc:
        raise WeightsError(str(exc)) from None
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


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _counts_batches(state: Sequence[tuple[str, Any]], position: int) -> bool:
    """Whether the file's tensor at ``position`` is a BatchNorm's num_batches_tracked (a count: no dims, integers)."""
    import torch

    if position >= len(state):
        return False
    key, value = state[position]
    return key.endswith("num_batches_tracked") or (
        isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point()
    )


def load_into(
    modules: Sequence[nn.Module], stages: Sequence[StageConfig], state: Sequence[tuple[str, Any]], path: str | Path,
    option: str = "--weights", fix: str = "",
) -> list[str]:
    """Copy ``state`` into ``modules``: the file's tensors in order into the stack's (each module's
    state_dict, in stage order), shapes equal, each checked by state.py's checker, then each layer's
    reach. A BatchNorm's num_batches_tracked that the file lacks (files saved before PyTorch 0.4,
    such as torchvision's ImageNet ResNets) stays 0, as torch's own load_state_dict fills it in. A
    file with tensors left over is taken as a longer model whose first layers the stack is.
    Returns notes to show."""
    import torch

    path = Path(path)
    # A state_dict's tensors share the module's storage: copying into them sets the module.
    targets = [(i, name, t) for i, m in enumerate(modules, 1) for name, t in m.state_dict().items()]
    position, filled, keys = 0, [], {}
    for index, name, target in targets:
        stage = f"stage {index} {call_text(stages[index - 1])}"
        if name.endswith("num_batches_tracked") and not _counts_batches(state, position):
            filled.append(stage)
            continue
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
        problem = tensor_problem(value, repr(key), name.rsplit(".", 1)[-1])
        if problem is not None:
            raise WeightsError(f"{stage}: {option} {path}: {problem}{fix and '; ' + fix}")
        with torch.no_grad():
            target.copy_(value)
        keys.setdefault(index, []).append(key)
        position += 1
    for index, module in enumerate(modules, 1):
        problem = reach_problem(stages[index - 1].kind, module)
        if problem is not None:
            named = ", ".join(repr(k) for k in keys.get(index, []))
            raise WeightsError(f"stage {index} {call_text(stages[index - 1])}: {option} {path} ({named}) holds {problem}; {fix or 'scale them down'}")
    notes = [f"weights: {position} tensor(s) from {path}, matched by order and shape"]
    if filled:
        notes.append(f"weights: the file has no num_batches_tracked for {', '.join(filled)} (saved before PyTorch 0.4); "
                     "it starts at 0, as torch's load_state_dict fills it in")
    if len(state) > position:
        rest = len(state) - position
        notes.append(f"weights: the file's last {rest} tensor(s) (from {state[position][0]!r}) are not used: the stack is its first layers")
    return notes


def stack_weights(exp: Experiment, modules: Sequence[nn.Module]) -> tuple[list[str], Any]:
    """``--weights FILE`` (``--init-weights``) or ``--pretrained NAME`` into the stack's modules: notes, normalisation."""
    stack = exp.stack
    if stack.weights is not None:
        option = weights_option(exp.command)
        return load_into(modules, exp.stages, read_state(stack.weights, option), stack.weights, option), None
    if stack.pretrained is not None:
        from convlab.pretrained import fetch_weights, get_pretrained

        model = get_pretrained(stack.pretrained)
        path = fetch_weights(model)
        option = f"--pretrained {model.name}"
        fix = f"it is the cached download of {model.url}: delete it and run again to download it afresh"
        notes = load_into(modules, exp.stages, read_state(path, option, unreadable=fix), path, option, fix)[1:]
        notes.insert(0, f"weights: {model.name}'s ImageNet weights ({path}); images normalised with its mean and std")
        return notes, (model.mean, model.std)
    return [], None  # PyTorch's own init, seeded: nothing to say
