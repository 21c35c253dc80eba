"""SGD and Adam, the update ``torch.optim.SGD(params, lr)`` and ``torch.optim.Adam(params, lr)``
make with their other arguments at PyTorch's defaults, step for step (tests/test_optimizers.py
holds them equal to torch.optim's).

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

OPTIMIZER_NAMES = ("sgd", "adam")


class SGD:
    """``torch.optim.SGD(params, lr)``: no momentum, no weight decay, as the lesson uses it."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float):
        self.params, self.lr = list(params), lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.lr)


class Adam:
    """``torch.optim.Adam(params, lr)``: betas (0.9, 0.999), eps 1e-8, no weight decay, no amsgrad."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
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
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = self.lr / (1 - beta1**step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def create_optimizer(name: str, params: Iterable[torch.Tensor], lr: float) -> SGD | Adam:
    if name == "sgd":
        return SGD(params, lr)
    if name == "adam":
        return Adam(params, lr)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_NAMES)}")
