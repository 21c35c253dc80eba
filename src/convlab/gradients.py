"""How training moves each stage's weights, the classic dashboard for vanishing and exploding
gradients: every step, per weighted stage (Conv2d, Linear, BatchNorm2d), the norm of the gradient
of its weight (``gradient-norm/01-conv2d``) and the size of the step's update against the weight,
``||w_after - w_before|| / ||w_before||`` (``update-ratio/01-conv2d``; around 1e-3 is healthy, much
less is a layer that does not learn); at each snapshot, histograms of the weights and of their
gradients (``weights/01-conv2d``, ``gradients/01-conv2d``). A Sigmoid stack's early stages show
gradients orders of magnitude smaller than a ReLU stack's.

Measured on the device without reading anything back: :meth:`Gradients.measure` returns one
tensor, which the training loop reads with the next step's loss (one host sync a step in all).
torch is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from convlab.modelrun import ModelPlan
    from convlab.planning import Plan
    from convlab.writer import RunWriter

NORM_TAG, RATIO_TAG = "gradient-norm", "update-ratio"
WEIGHTS_TAG, GRADIENTS_TAG = "weights", "gradients"


@dataclass(frozen=True)
class Watched:
    prefix: str  # the stage's tag, '01-conv2d'
    weight: torch.Tensor  # the parameter being trained
    before: torch.Tensor  # its value before the step's update (the training loop's copy)


class Gradients:
    """The weighted stages of a model being trained, and what each step does to them."""

    def __init__(self, watched: Sequence[Watched]):
        self.watched = list(watched)

    @classmethod
    def of(cls, p: Plan | ModelPlan, model: torch.nn.Module, before: dict[str, torch.Tensor]) -> Gradients:
        """Every stage of ``model`` with a trained weight: an ``nn.Sequential`` of a stack's stages, or a
        Python model's calls (each module once, under its first call's tag); ``before``: the model's
        state_dict copy that the loop refreshes before each update."""
        import torch

        if hasattr(p, "calls"):  # a Python model (modelrun.ModelPlan)
            stages = [(c.tag, c.module, f"{c.name}.weight") for c in p.calls if c.shared_with is None]
        else:
            stages = [(s.prefix, module, f"{i}.weight") for i, (s, module) in enumerate(zip(p.stages, model))]
        watched = [
            Watched(tag, module.weight, before[key]) for tag, module, key in stages
            if isinstance(getattr(module, "weight", None), torch.nn.Parameter) and module.weight.requires_grad and key in before
        ]
        return cls(watched)

    @property
    def tags(self) -> list[str]:
        return [f"{tag}/{w.prefix}" for tag in (NORM_TAG, RATIO_TAG) for w in self.watched]

    def measure(self) -> list[torch.Tensor]:
        """After ``optimizer.step()``: per stage, the gradient's norm, the update's and the weight's
        before it, as 0-d tensors on the device (nothing read back)."""
        import torch

        if not self.watched:
            return []
        weights = [w.weight.detach() for w in self.watched]
        before = [w.before for w in self.watched]
        grads = [w.weight.grad if w.weight.grad is not None else torch.zeros_like(w.weight) for w in self.watched]
        return [*torch._foreach_norm(grads), *torch._foreach_norm(torch._foreach_sub(weights, before)), *torch._foreach_norm(before)]

    def log(self, writer: RunWriter, values: Sequence[float], step: int) -> None:
        """What :meth:`measure` gave at ``step``, read back as floats, as scalars."""
        n = len(self.watched)
        for i, w in enumerate(self.watched):
            grad, update, weight = values[i], values[n + i], values[2 * n + i]
            writer.scalar(f"{NORM_TAG}/{w.prefix}", grad, step)
            writer.scalar(f"{RATIO_TAG}/{w.prefix}", update / weight if weight else 0.0, step)

    def histograms(self, writer: RunWriter, step: int) -> None:
        """The weights now and, after a step, the gradients that step computed."""
        for w in self.watched:
            writer.histogram(f"{WEIGHTS_TAG}/{w.prefix}", w.weight, step)
            if w.weight.grad is not None:
                writer.histogram(f"{GRADIENTS_TAG}/{w.prefix}", w.weight.grad, step)
