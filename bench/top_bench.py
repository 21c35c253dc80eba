"""``convlab top``'s pass against one plain evaluation pass of the same model, run by ``bench/bench.py``
(``make bench``; ``--layers top`` alone), or on its own: ``python bench/top_bench.py``.

The lesson's model (configs/cifar10-model.toml, seeded, untrained) over the CIFAR10 test split,
batch 64, one intra-op thread (as convlab runs a pass on the CPU), each program in its own process:

- ``eval``: the model's forward pass over every batch (``torch.inference_mode``), nothing kept: what
  any evaluation of the model costs at the least, in the layout convlab runs it in (channels_last
  on the CPU, planning.Plan.memory_format);
- ``eval-contiguous``: the same in PyTorch's default layout, as a plain evaluation loop runs it (for
  the record: its MaxPool2d is several times slower on one thread);
- ``top``: convlab top's pass over the same batches (every map stage, the first 16 channels each,
  k 9: the running top-k, the means, the dead counts, the images kept for the patches).

Both are timed from the first batch to the last (imports and loading the split are the same for
both and left out), taking turns; medians, of the wall time and of the process's CPU time (on a
machine shared with other work the wall time swings with the load, the CPU time much less; the
target is held on the CPU time, and on a quiet machine the two agree). Issue 22's targets: the
pass costs at most 1.2x the evaluation pass, and its memory is flat in the number of images: the largest resident memory
(VmRSS, read after every batch) over the whole pass against that after its first quarter. (The
process's peak RSS is printed too; it is reached while the split is loaded, before the pass. glibc's
allocator sometimes settles a few tens of MB higher within the first few thousand images, then stays.)

``--device cuda``: both passes run on the GPU, each batch moved there as convlab moves it
(``Plan.batch_input``), the clock read after ``torch.cuda.synchronize()``. convlab runs CUDA in
PyTorch's default layout, so ``eval-contiguous`` would be ``eval`` again and is left out; the target
is held on the wall time (waiting for the GPU is CPU time too).

    python bench/top_bench.py [--repeat 3] [--data auto|shared|shapes] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL_CONFIG = REPO / "configs" / "cifar10-model.toml"
RATIO_TARGET = 1.2  # the pass / one plain evaluation pass
MEMORY_LIMIT = 1.05  # the largest resident memory during the pass / that after its first quarter


def worker(which: str, data_dir: str, md5: str, images: int, out: Path, device: str = "cpu") -> None:
    """One program: load the split, plan the model, then time the pass (``which``) over ``images`` on ``device``."""
    import torch

    from convlab import data as datasets
    from convlab.config import resolve
    from convlab.top.plan import plan_top
    from convlab.top.run import forward, top_pass

    datasets.register_checksums("cifar10", json.loads(md5))
    torch.set_num_threads(1)
    exp = resolve("top", {"data": {"dataset": "cifar10", "data_dir": data_dir, "batch_size": 64}, "run": {"device": device}},
                  MODEL_CONFIG)
    tp = plan_top(exp)
    loaded = datasets.load(exp.data, 0)
    count = min(images, len(loaded))
    result: dict = {"images": count}
    started, cpu = time.perf_counter(), time.process_time()
    if which.startswith("eval"):
        layout = tp.stack.memory_format if which == "eval" else torch.contiguous_format
        modules = [s.module.to(device, memory_format=layout).eval() for s in tp.stack.stages]
        for start in range(0, count, 64):
            x = loaded.batch(start, min(start + 64, count)).to(device).float().div_(255).contiguous(memory_format=layout)
            forward(modules, x)
    else:
        resident: list[int] = []

        def advance(status: str | None = None) -> None:
            with open("/proc/self/status") as f:
                resident.append(int(f.read().split("VmRSS:")[1].split()[0]) // 1024)

        top = top_pass(tp, loaded, advance, count=count)
        result["rss_mb"], result["rss_quarter_mb"] = max(resident), resident[len(resident) // 4]
        result["kept_images"] = len(top.store)
        result["bound"] = sum(len(s.channels) for s in tp.stages) * tp.k
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # the eval pass keeps nothing: its last batches may still be running
    result["seconds"], result["cpu_seconds"] = time.perf_counter() - started, time.process_time() - cpu
    out.write_text(json.dumps(result))


def run_top_bench(measure: Callable[..., dict], data_dir: Path, md5_arg: str, tmp: Path, *, repeat: int, device: str = "cpu",
                  reference: bool = True) -> dict:
    """The programs taking turns over the whole split; a report. ``reference``: the evaluation pass
    in PyTorch's default layout too (once; on the CPU only, where convlab's layout differs)."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reference = reference and device == "cpu"
    samples: dict[str, list] = {"eval": [], "top": [], **({"eval-contiguous": []} if reference else {})}
    try:
        for i in range(repeat):
            order = ["eval", "top"] if i % 2 == 0 else ["top", "eval"]
            for which in order + (["eval-contiguous"] if i == 0 and reference else []):
                out = tmp / f"top-{which}-{i}.json"
                m = measure([sys.executable, str(HERE / "top_bench.py"), "--worker", which, "--data-dir", str(data_dir),
                             "--md5", md5_arg, "--images", str(10**9), "--out", str(out), "--device", device], tmp)
                m.update(json.loads(out.read_text()))
                samples[which].append(m)
                during = f", resident {m['rss_quarter_mb']} MB after a quarter, {m['rss_mb']} MB at most" if "rss_mb" in m else ""
                print(f"  top {which:15s} run {i + 1}: pass {m['seconds']:6.2f} s ({m['cpu_seconds']:5.2f} s CPU) over {m['images']} images, "
                      f"{m['wall_s']:6.2f} s wall, {m['peak_rss_mb']:5.0f} MB peak{during}", flush=True)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    keys = ("seconds", "cpu_seconds", "wall_s", "peak_rss_mb")
    med = {who: {k: statistics.median(s[k] for s in runs) for k in keys} for who, runs in samples.items()}
    top = samples["top"][0]
    basis = "cpu_seconds" if device == "cpu" else "seconds"
    report = {
        "device": device,
        "basis": basis,
        "repeat": repeat,
        "median": med,
        "kept_images": top["kept_images"],
        "bound": top["bound"],
        "ratios": {
            "pass": med["top"][basis] / med["eval"][basis],
            "pass_cpu": med["top"]["cpu_seconds"] / med["eval"]["cpu_seconds"],
            "pass_wall": med["top"]["seconds"] / med["eval"]["seconds"],
            **({"pass_vs_contiguous": med["top"]["cpu_seconds"] / med["eval-contiguous"]["cpu_seconds"]} if reference else {}),
            "memory": statistics.median(s["rss_mb"] / s["rss_quarter_mb"] for s in samples["top"]),
        },
        "check": {"same": top["kept_images"] <= top["bound"],
                  "why": f"images kept for the patches: {top['kept_images']} (at most {top['bound']} = channels x k)"},
    }
    print_top_table(report)
    return report


def print_top_table(r: dict) -> None:
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    m, q = r["median"], r["ratios"]
    print(f"\ntop: the lesson's model over CIFAR10's test split, batch 64, 1 thread, on {r['device']}; medians of {r['repeat']} run(s)\n")
    print(f"{'':16s} {'pass s':>8s} {'pass CPU s':>11s} {'process wall s':>15s} {'peak RSS MB':>12s}")
    for who, x in m.items():
        print(f"{who:16s} {x['seconds']:8.2f} {x['cpu_seconds']:11.2f} {x['wall_s']:15.2f} {x['peak_rss_mb']:12.0f}")
    basis, other = ("CPU time", f"wall time {q['pass_wall']:.2f}x") if r["basis"] == "cpu_seconds" else \
        ("wall time", f"CPU time {q['pass_cpu']:.2f}x")
    contiguous = f"; {q['pass_vs_contiguous']:.2f}x one in PyTorch's default layout" if "pass_vs_contiguous" in q else ""
    print(f"\ntop pass / evaluation pass, {basis}: {q['pass']:.2f}x ({ok(q['pass'] <= RATIO_TARGET)}, target <= {RATIO_TARGET}x; "
          f"{other}{contiguous}); "
          f"largest resident memory during the pass / after its first quarter: {q['memory']:.3f}x "
          f"({ok(q['memory'] <= MEMORY_LIMIT)}, target <= {MEMORY_LIMIT}x)")
    print(f"check: {r['check']['why']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["eval", "eval-contiguous", "top"])
    parser.add_argument("--data-dir")
    parser.add_argument("--md5")
    parser.add_argument("--images", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", choices=["auto", "shared", "shapes"], default="auto")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data_dir, args.md5, args.images, args.out, args.device)
        return
    sys.path.insert(0, str(HERE))
    from harness import SHARED_MD5, check_device, export_shapes, measure, shared_data

    check_device(args.device)

    with tempfile.TemporaryDirectory(prefix="convlab-top-bench-") as tmp:
        tmp = Path(tmp)
        data_dir = shared_data() if args.data in ("auto", "shared") else None
        checksums = SHARED_MD5
        if data_dir is None:
            data_dir = tmp / "data"
            checksums = export_shapes(data_dir)
        print(f"load average: {os.getloadavg()[0]:.1f}", flush=True)
        run_top_bench(measure, data_dir, json.dumps(checksums), tmp, repeat=args.repeat, device=args.device)
        print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
