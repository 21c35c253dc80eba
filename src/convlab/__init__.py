"""convlab: see what convolution and pooling do to real images.

In Python (a notebook): ``convlab.conv(out_channels=6, dataset="shapes")``, ``convlab.pool``,
``convlab.stack`` (layers, or ``model=`` any ``torch.nn.Module``), ``convlab.train``,
``convlab.sweep``, ``convlab.explain``, ``convlab.demo``, ``convlab.predict``, ``convlab.top``,
``convlab.board`` and ``convlab.interact``: the commands, with their options' names as keywords,
each returning a result that shows itself. ``help(convlab.conv)`` lists its keywords.

Each is defined in :mod:`convlab.notebook` (``api.py``, ``arithmetic.py``, ``server.py``, ``interact.py``) and bound here on first
use, so ``import convlab`` imports neither torch nor typer. Several of these names are also
the names of the modules that do the work (``convlab/train/``, ``convlab/predict/``, ``convlab/top/``,
``convlab/board.py``): here
they are the API's. Python's import system would bind such a module over the function as soon
as it is imported, so the package keeps them, and convlab's own code imports from those modules
(``from convlab.train.plan import plan_training``), never ``from convlab import train``
(tests/test_layout.py checks).
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import Any as _Any

__version__ = "0.1.0"

# The notebook API: each name and the module of convlab.notebook that defines it.
API = {
    "conv": "api", "pool": "api", "stack": "api", "train": "api", "sweep": "api", "predict": "api", "top": "api",
    "explain": "arithmetic", "demo": "arithmetic", "board": "server", "interact": "interact",
}


def __getattr__(name: str) -> _Any:
    where = API.get(name)
    if where is None:
        raise AttributeError(f"module 'convlab' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"convlab.notebook.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*(n for n in globals() if not n.startswith("_")), *API, "__version__"} - {"annotations"})


class _Package(_types.ModuleType):
    """The convlab package: an API name stays the API's when the module of that name is imported."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name in API and isinstance(value, _types.ModuleType):
            return  # the module is in sys.modules, imported from where it is
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
