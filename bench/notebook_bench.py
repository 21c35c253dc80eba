"""The first display of a conv run in a fresh Jupyter kernel, against a bare ``import torch`` plus
the run (issue 23), run by ``bench/bench.py`` (``--layers notebook`` alone).

Every measurement starts a fresh kernel, the one Jupyter starts (jupyter_client and ipykernel),
and times one cell from the execute request until the kernel is idle again, everything shown:

- ``first display``: ``import convlab``, ``run = convlab.conv(...)``, ``display(run)`` in a fresh
  kernel: a learner's first cell until its pictures are on the screen (both formats Jupyter asks
  for, HTML and PNG, are made; the pictures are read back from the run's event file);
- ``import torch``: a bare ``import torch`` in a fresh kernel, the floor anything using torch pays;
- ``the run``: the same ``convlab.conv(...)`` in a kernel that has run it once already, not displayed.

Target: the first display takes at most 1.5x ``import torch`` plus the run. The conv run is the
bench's conv layer with its default views (Conv2d 3->6, kernel 3, the whole test split, batch 64);
the checksums of the data (harness only) are registered in an untimed cell first, which imports
neither torch nor numpy. Every kernel gets one OpenBLAS thread, as the ``convlab`` command sets.

``device``: the run takes ``device=`` (``cuda``: on the GPU), and the floor's cell starts CUDA
too (``torch.zeros(1, device=...)``), which a first run on the GPU pays. A cell ends when the kernel
is idle: the run has read its pictures back from the GPU by then.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
FIRST_DISPLAY_LIMIT = 1.5  # x (import torch + the run)


def _kernel(workdir: Path):  # -> (KernelManager, client)
    from jupyter_client.manager import KernelManager

    env = {**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": "1"}
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(workdir), stderr=subprocess.DEVNULL)  # its cells' errors come back as messages
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def _cell(kc, code: str) -> tuple[float, list[dict]]:
    """Seconds from the execute request to idle, and what the cell showed."""
    shown: list[dict] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] in ("display_data", "execute_result", "stream", "error"):
            shown.append({"type": msg["msg_type"], **msg["content"]})

    started = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=900, output_hook=hook)
    seconds = time.perf_counter() - started
    if reply["content"]["status"] != "ok":
        errors = [s for s in shown if s["type"] == "error"]
        sys.exit(f"bench: a notebook cell failed: {errors or reply['content']}")
    return seconds, shown


def run_notebook_bench(data_dir: Path, md5_arg: str, tmp: Path, repeat: int = 3, device: str = "cpu") -> dict:
    register = f"from convlab.data import register_checksums\nregister_checksums('cifar10', {json.loads(md5_arg)!r})"
    floor = "import torch" if device == "cpu" else f"import torch\ntorch.zeros(1, device={device!r})"

    def conv(logdir: Path) -> str:
        return (f"run = convlab.conv(out_channels=6, kernel_size=3, dataset='cifar10', data_dir={str(data_dir)!r}, "
                f"logdir={str(logdir)!r}, device={device!r}, quiet=True)")

    samples: dict[str, list[float]] = {"first display": [], "import torch": [], "the run": []}
    shown_image = []
    for i in range(repeat):
        for who in (["display", "floor"] if i % 2 == 0 else ["floor", "display"]):
            km, kc = _kernel(tmp)
            try:
                if who == "display":
                    _cell(kc, register)
                    seconds, shown = _cell(kc, f"import convlab\n{conv(tmp / f'nb-first-{i}')}\ndisplay(run)")
                    samples["first display"].append(seconds)
                    shown_image.append(any("image/png" in s.get("data", {}) for s in shown))
                    print(f"  notebook first display run {i + 1}: {seconds:6.2f} s", flush=True)
                else:
                    samples["import torch"].append(_cell(kc, floor)[0])
                    _cell(kc, f"{register}\nimport convlab\n{conv(tmp / f'nb-warm-{i}')}")
                    samples["the run"].append(_cell(kc, conv(tmp / f"nb-run-{i}"))[0])
                    print(f"  notebook import torch {samples['import torch'][-1]:6.2f} s, the run (warm kernel) "
                          f"{samples['the run'][-1]:6.2f} s", flush=True)
            finally:
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    median = {k: statistics.median(v) for k, v in samples.items()}
    ratio = median["first display"] / (median["import torch"] + median["the run"])
    report = {"device": device, "samples": samples, "median": median, "ratio": ratio, "limit": FIRST_DISPLAY_LIMIT,
              "check": {"same": all(shown_image), "why": "every first display showed the run's pictures (image/png)"}}
    print_notebook_table(report)
    return report


def print_notebook_table(r: dict) -> None:
    m = r["median"]
    print(f"\nnotebook: the first display of a conv run in a fresh kernel, on {r['device']} (medians)")
    print(f"  first display (import convlab, the run, display)  {m['first display']:6.2f} s")
    floor = "import torch (fresh kernel)" if r["device"] == "cpu" else "import torch + CUDA start (fresh kernel)"
    print(f"  {floor:49s} {m['import torch']:6.2f} s")
    print(f"  the run (warm kernel, not displayed)               {m['the run']:6.2f} s")
    ok = "met" if r["ratio"] <= r["limit"] else "NOT met"
    print(f"  ratio {r['ratio']:.2f}x (target <= {r['limit']}x): {ok}; pictures shown: {r['check']['same']}")
