"""SGD and Adam step for step as torch.optim's (bitwise on the CPU), without importing torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from convlab.optimizers import SGD, Adam, create_optimizer


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


@pytest.mark.parametrize("ours, theirs", [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam)], ids=["sgd", "adam"])
@pytest.mark.parametrize("lr", [0.01, 0.3])
def test_each_step_equals_torch_optim(ours, theirs, lr):
    a, b = _model(), _model()
    mine, reference = ours(a.parameters(), lr), theirs(b.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)
        for model, optimizer in ((a, mine), (b, reference)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), _model().parameters()))


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
        "for name in ('sgd', 'adam'):\n"
        "    o = create_optimizer(name, m.parameters(), 0.1)\n"
        "    m(torch.ones(1, 3)).sum().backward(); o.step(); o.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
