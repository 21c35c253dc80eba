"""The layout a newcomer can walk: every module in one order, each importing only modules
before it (no cycles, nothing climbing back up), and torch kept out of the instant commands."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import convlab

SRC = Path(convlab.__file__).resolve().parent

# The order of README.md's layout section: data flows from the top down.
ORDER = [
    "errors", "files", "values", "stages", "modules", "calls", "pretrained", "optimizers", "experiment", "validation", "config", "geometry", "upsampling", "coverage",
    "data.imageset", "data.shapes", "data.folder", "data.downloaded", "data",
    "state", "kernels", "layers", "fields", "stack", "hooks", "pictures", "views", "confusion", "gallery", "runs", "trained", "writer", "weights", "interrupts",
    "explain.explanation", "explain.inputs", "explain.windows", "explain.unpooling", "explain.transposed", "explain", "planning", "pipeline",
    "snapshots", "modelrun", "gradients", "top.running", "top.patches", "top.sheet", "top.plan", "top.result", "top.run", "top",
    "train.plan", "train.data", "train.evaluation", "train.report", "train.run", "train",
    "terminal", "lessons", "demo", "animate", "sweep.compare", "sweep.grid", "sweep.run", "sweep",
    "predict.images", "predict.attributions", "predict.trace", "predict.pictures", "predict.report", "predict.plan", "predict.run", "predict",
    "board", "commands", "notebook.charts", "notebook.results", "notebook.api", "notebook.arithmetic", "notebook.server", "notebook.interact", "notebook", "options", "usage", "cli", "__main__",
]


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__").removesuffix("__init__")
        if name:
            found[name] = path
    return found


def convlab_imports(path: Path) -> set[str]:
    """Every convlab module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("convlab"):
            if node.module == "convlab":
                out |= {a.name for a in node.names if a.name != "__version__"}
            else:
                out.add(node.module.removeprefix("convlab."))
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix("convlab.") for a in node.names if a.name.startswith("convlab.")}
    return out


def test_every_module_has_its_place_in_the_order():
    assert sorted(modules()) == sorted(ORDER)


def test_each_module_imports_only_modules_before_it():
    climbing = []
    for name, path in modules().items():
        for dep in convlab_imports(path) - {name}:
            if ORDER.index(dep) >= ORDER.index(name):
                climbing.append(f"{name} imports {dep}")
    assert climbing == []


def test_the_readme_lists_every_module_in_this_order():
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Layout (data flows one way") :]
    listed = []
    for line in section.splitlines():
        line = line.strip()
        if line.startswith("src/convlab/"):
            listed.append(line.split()[0].removeprefix("src/convlab/").removesuffix(".py").rstrip("/"))
    packages = {"data", "explain", "sweep", "notebook", "predict", "top", "train"}
    expected = [m for m in ORDER if "." not in m or m.split(".")[0] not in packages]
    assert listed == expected


def test_help_demo_and_explain_import_no_torch():
    code = (
        "import sys\n"
        "from convlab.__main__ import main\n"
        "for argv in (['--help'], ['demo', 'pool'], ['explain', 'conv', '-s', '2']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_import_convlab_and_the_api_names_import_no_torch_and_no_typer():
    code = (
        "import sys\n"
        "import convlab\n"
        "names = [convlab.conv, convlab.pool, convlab.stack, convlab.train, convlab.sweep, convlab.explain, convlab.demo,\n"
        "         convlab.board, convlab.interact]\n"
        "import pydoc\n"
        "text = pydoc.render_doc(convlab.conv)\n"
        "print('kernel_size' in text, all(callable(n) for n in names), 'torch' in sys.modules, 'typer' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "True True False False"


def test_the_api_names_stay_the_apis_when_their_modules_are_imported():
    import importlib

    import convlab
    from convlab.notebook import api, server

    for name, where in convlab.API.items():
        module = importlib.import_module(f"convlab.{name}") if (SRC / f"{name}.py").exists() or (SRC / name).is_dir() else None
        assert getattr(convlab, name) is getattr(importlib.import_module(f"convlab.notebook.{where}"), name)
        if module is not None:
            assert module.__name__ == f"convlab.{name}" and callable(getattr(convlab, name))
    assert convlab.train is api.train and convlab.board is server.board


def test_no_module_is_imported_under_an_api_name():
    """``from convlab import train`` (or ``import convlab.train``) would give the API's function:
    import from the module itself (``from convlab.train.plan import plan_training``)."""
    import convlab

    found = []
    for folder in ("src", "tests", "bench", "docs"):
        for path in (SRC.parents[1] / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "convlab":
                    found += [f"{path.name}: from convlab import {a.name}" for a in node.names if a.name in convlab.API]
                elif isinstance(node, ast.Import):
                    found += [f"{path.name}: import {a.name}" for a in node.names
                              if a.name.split(".")[:2][-1] in convlab.API and a.name.startswith("convlab.")]
    assert found == []
