"""docs/notebooks/lesson.ipynb runs clean, headless, in a real Jupyter kernel (nbclient) on this
checkout's convlab: no cell errs, every cell tagged 'image' shows an image, 'text' text and
'widget' a widget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "notebooks" / "lesson.ipynb"
WHERE = "import convlab, sys; print(convlab.__file__); print(sorted(m for m in ('torch', 'ipywidgets') if m in sys.modules))"
SHOWS = {
    "image": lambda output: "image/png" in output.get("data", {}),
    "text": lambda output: "text/plain" in output.get("data", {}) or output.get("output_type") == "stream",
    "widget": lambda output: "application/vnd.jupyter.widget-view+json" in output.get("data", {}),
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run in a fresh kernel in an empty folder (no data: the built-in shapes)."""
    work = tmp_path_factory.mktemp("lesson")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(WHERE))
    # The kernel imports this checkout's convlab, whatever is installed; one OpenBLAS thread, as the command sets.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "OPENBLAS_NUM_THREADS": "1"}
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    client.execute(env=env)
    return nb, work


def test_the_lesson_runs_clean_on_this_checkouts_convlab(executed):
    nb, work = executed
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    where = "".join(o.get("text", "") for o in nb.cells[-1].outputs).splitlines()
    assert Path(where[0]) == REPO / "src" / "convlab" / "__init__.py" and where[1] == "['ipywidgets', 'torch']"
    assert sorted(p.name.split("-")[0] for p in (work / "logs").iterdir()) == [
        "conv", "maxpool", "predict", "stack", "stack", "stack", "stack", "sweep", "sweep", "train"]


def test_every_display_cell_shows_what_it_is_tagged_with(executed):
    nb, _ = executed
    tagged = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.metadata.get("tags")]
    assert sum(c.metadata.tags == ["image"] for _, c in tagged) >= 10
    missing = [(i, c.metadata.tags[0]) for i, c in tagged if not any(SHOWS[c.metadata.tags[0]](o) for o in c.outputs)]
    assert missing == []
