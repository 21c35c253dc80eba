"""What every benchmark program shares: the real CIFAR-10 copy (checked by its MD5s) or the built-in
shapes written as one, a program timed in its own process, the floor (importing torch), and the
device asked for. bench.py and the programs it runs import it; it imports none of them."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SRC = REPO / "src"
SHARED_DATA = Path(os.environ.get("CONVLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
# The re-packed real CIFAR-10 test split in ../shared/data (see its README): its own MD5s,
# registered here, in the harness, never in convlab.
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def shared_data() -> Path | None:
    folder = SHARED_DATA / "cifar-10-batches-py"
    if not (folder / "test_batch").exists():
        return None
    for name, expected in SHARED_MD5.items():
        if md5(folder / name) != expected:
            sys.exit(f"bench: {folder / name} is not the expected copy (MD5 differs); see {SHARED_DATA}/README.md")
    return SHARED_DATA


def export_shapes(root: Path) -> dict[str, str]:
    """The built-in shapes test split (seed 0), written as a CIFAR10 test batch; its MD5s."""
    sys.path.insert(0, str(SRC))
    from convlab.data import CIFAR10_CLASSES, SHAPES_SPLITS, make_shapes

    images, labels = make_shapes(SHAPES_SPLITS["test"], seed=0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {
        "batch_label": "testing batch 1 of 1",
        "labels": labels.tolist(),
        "data": images.reshape(len(images), -1).numpy(),  # channel-planar rows, as CIFAR
        "filenames": [f"shape_{i}.png" for i in range(len(images))],
    }
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(batch, f, protocol=2)
    meta = {"num_cases_per_batch": len(images), "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump(meta, f, protocol=2)
    return {p.name: md5(p) for p in folder.iterdir()}


def measure(cmd: list[str], workdir: Path) -> dict[str, float]:
    """Run ``cmd`` in its own process: wall time, time after its imports (when it marks them),
    peak RSS."""
    mark = workdir / "mark.json"
    mark.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(SRC), "BENCH_MARK_FILE": str(mark)}
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.time()
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{err}")
    imported = json.loads(mark.read_text())["imported"] if mark.exists() else ended
    return {
        "wall_s": ended - started,
        "after_imports_s": ended - imported,
        "imports_s": imported - started,
        "imported_at": imported,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def floor_command(device: str) -> list[str]:
    """The floor no program using torch on ``device`` can beat: importing torch (and starting CUDA)."""
    code = "import torch" if device == "cpu" else f"import torch; torch.zeros(1, device={device!r})"
    return [sys.executable, "-c", code]


def check_device(device: str) -> dict[str, object] | None:
    """``--device cuda`` where PyTorch sees no GPU: one line, before anything runs. The GPU otherwise."""
    if not DEVICE.fullmatch(device):
        sys.exit(f"bench: --device {device}: use cpu, cuda or cuda:N")
    if device == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        sys.exit(f"bench: --device {device}: no CUDA GPU is available to PyTorch here (torch {torch.__version__}, {built}); "
                 "run it on a GPU machine (bench/cuda_check.sh) or use --device cpu")
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        sys.exit(f"bench: --device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    props = torch.cuda.get_device_properties(index)
    return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
