"""SGD, Adam and AdamW step for step as torch.optim's (bitwise on the CPU), with and without weight decay,
without importing torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from convlab.optimizers import DEFAULT_WEIGHT_DECAY, create_optimizer


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


OPTIMIZERS = [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]


@pytest.mark.parametrize("name, theirs", OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
@pytest.mark.parametrize("lr, weight_decay", [(0.01, None), (0.3, None), (0.01, 0.05), (0.3, 0.5)])
def test_each_step_equals_torch_optim(name, theirs, lr, weight_decay):
    a, b = _model(), _model()
    mine = create_optimizer(name, a.parameters(), lr, weight_decay)
    # weight_decay None: each optimizer's own default (AdamW's is 0.01, the others' 0).
    reference = theirs(b.parameters(), lr=lr, **({} if weight_decay is None else {"weight_decay": weight_decay}))
    assert reference.defaults["weight_decay"] == (DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)
        for model, optimizer in ((a, mine), (b, reference)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), _model().parameters()))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_weight_decay_pulls_weights_towards_zero(name):
    """With no gradient signal at all (a loss that does not depend on the weights' values),
    only the decay acts: every weight shrinks, and none without it."""
    norms = {}
    for decay in (0.0, 0.5):
        model = _model()
        optimizer = create_optimizer(name, model.parameters(), 0.1, decay)
        for _ in range(3):
            optimizer.zero_grad()
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            optimizer.step()
        norms[decay] = [float(p.detach().norm()) for p in model.parameters()]
    start = [float(p.detach().norm()) for p in _model().parameters()]
    assert norms[0.0] == pytest.approx(start)
    assert all(after < before * 0.99 for after, before in zip(norms[0.5], start))


def test_a_parameter_without_a_gradient_is_left_alone():
    model = _model()
    frozen = copy.deepcopy(model[0].weight.detach())
    optimizer = create_optimizer("adam", model.parameters(), 0.1)
    model[0].weight.requires_grad_(False)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 8, 8)), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert torch.equal(model[0].weight, frozen)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        create_optimizer("rmsprop", model.parameters(), 0.1)


def test_a_step_imports_no_torch_dynamo():
    code = (
        "import sys, torch\n"
        "from convlab.optimizers import create_optimizer\n"
        "m = torch.nn.Linear(3, 2)\n"
        "for name in ('sgd', 'adam', 'adamw'):\n"
        "    o = create_optimizer(name, m.parameters(), 0.1, 0.01)\n"
        "    m(torch.ones(1, 3)).sum().backward(); o.step(); o.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
