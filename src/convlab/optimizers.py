"""SGD, Adam and AdamW, the updates ``torch.optim.SGD(params, lr, weight_decay=wd)``,
``torch.optim.Adam(params, lr, weight_decay=wd)`` and ``torch.optim.AdamW(params, lr, weight_decay=wd)``
make with their other arguments at PyTorch's defaults, step for step (tests/test_optimizers.py
holds them equal to torch.optim's).

Weight decay as torch.optim computes it: SGD and Adam add ``wd * weight`` to the gradient (an
L2 penalty, which Adam then rescales with everything else); AdamW shrinks each weight by
``lr * wd`` before its Adam step (decoupled weight decay, Loshchilov & Hutter). Either pulls
the random initial weights towards 0, so what the data teaches is what remains.

Written here rather than imported: the first step of any ``torch.optim`` optimizer imports
``torch._dynamo``, about 2 s on this project's 2-core machine (``python -X importtime``), more
than a tenth of a whole epoch of the lesson's model on CIFAR10's 10,000 test images; the
views avoid torchvision's ``make_grid`` for the same reason. torch is imported inside.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
# torch.optim's default weight_decay of each optimizer (what --weight-decay left out gives).
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 0.01}


class SGD:
    """``torch.optim.SGD(params, lr, weight_decay=weight_decay)``: no momentum, as the lesson uses it."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0):
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        with torch.no_grad():
            for p in self.params:
                if p.grad is None:
                    continue
                grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
                p.add_(grad, alpha=-self.lr)


class Adam:
    """``torch.optim.Adam(params, lr, weight_decay=weight_decay)``: betas (0.9, 0.999), eps 1e-8, no
    amsgrad; with ``decoupled``, ``torch.optim.AdamW`` (each weight shrunk by ``lr * weight_decay`` first)."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, *, decoupled: bool = False,
    ):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.steps = [0] * len(self.params)
        self.exp_avg: list[torch.Tensor | None] = [None] * len(self.params)
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        beta1, beta2 = self.betas
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                if self.exp_avg[i] is None:
                    self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                grad, exp_avg, exp_avg_sq = p.grad, self.exp_avg[i], self.exp_avg_sq[i]
                self.steps[i] += 1
                step = float(self.steps[i])
                if self.weight_decay != 0:
                    if self.decoupled:
                        p.mul_(1 - self.lr * self.weight_decay)
                    else:
                        grad = grad.add(p, alpha=self.weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = self.lr / (1 - beta1**step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def create_optimizer(name: str, params: Iterable[torch.Tensor], lr: float, weight_decay: float | None = None) -> SGD | Adam:
    """``name``'s optimizer; ``weight_decay`` None: torch.optim's default for it (DEFAULT_WEIGHT_DECAY)."""
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_NAMES)}")
    decay = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay
    if name == "sgd":
        return SGD(params, lr, weight_decay=decay)
    return Adam(params, lr, weight_decay=decay, decoupled=name == "adamw")
