"""``convlab predict`` against the lesson's ``test.py`` (``bench/tutorial_test.py``) and a bare
``import torch``, and over a folder of 10,000 CIFAR-10 PNGs; run by ``bench/bench.py``
(``make bench``; ``--layers predict`` alone).

The model is the lesson's (configs/cifar10-model.toml) as a training run leaves it (``config.toml``
and ``model.pt``; its weights are PyTorch's seeded initial ones: the time does not depend on
them). Each program runs in its own process, so imports count, taking turns:

- one image, end to end: ``python -c "import torch"`` (the floor of any program using torch), the
  lesson's ``test.py``, ``convlab predict --run RUN photo.png`` with its defaults (a run directory,
  every stage's pictures, Grad-CAM, saliency and occlusion) and with ``--attributions none``;
- a folder of the CIFAR-10 test images as PNG files in class subfolders (ImageFolder), 2,500 and
  10,000 of them, ``--attributions none``: images per second after imports (issue 20's target:
  2,000 or more on this project's 2-core CPU) and peak memory (flat in the folder's size: the
  images are streamed, two batches at a time).

Checks that ``test.py`` and ``convlab predict`` give the image the same class, and that the
folder's accuracy is the model's on those images as convlab's own loader reads them.

``device``: every program runs the model there (``test.py`` moves the model and the image
``.to(device)``; convlab gets ``--device``), and so does the accuracy it is checked against. On the
GPU the two may differ in an image or two: a batch of another size may take other cuDNN kernels,
and an untrained model's top two scores can be that close; the check says how many.
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SRC = REPO / "src"
MODEL_CONFIG = REPO / "configs" / "cifar10-model.toml"
FOLDER_SIZES = (2_500, 10_000)
QUICK_FOLDER_SIZES = (1_000, 4_000)  # bench.py --quick: the same ratios over smaller folders
RATE_TARGET = 2_000  # images per second after imports, attributions off (issue 20)
MEMORY_LIMIT = 1.15  # peak RSS of 10,000 images against 2,500: flat, up to noise
DIFFERING_ON_CUDA = 2  # images of the folder whose class may differ from the reference's on the GPU (see above)


def make_inputs(data_dir: Path, tmp: Path, sizes: tuple[int, int] = FOLDER_SIZES) -> dict[str, Path]:
    """The lesson model's run, one image, and the folders of PNGs, written from the CIFAR-10
    test batch in ``data_dir`` (already MD5-checked by bench.py)."""
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(SRC))
    from convlab import planning
    from convlab.config import resolve

    run = tmp / "logs" / "train-lesson"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(MODEL_CONFIG.read_text().replace('command = "stack"', 'command = "train"') + "\n[train]\n")
    p = planning.plan(resolve("stack", {"run": {"device": "cpu", "seed": 0}}, MODEL_CONFIG))
    torch.save(torch.nn.Sequential(*(s.module for s in p.stages)).state_dict(), run / "model.pt")

    folder = data_dir / "cifar-10-batches-py"
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")
    names = pickle.loads((folder / "batches.meta").read_bytes(), encoding="latin1")["label_names"]
    pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    paths = {}
    for size in sizes:
        root = tmp / f"cifar-{size}"
        for i in range(size):
            target = root / names[batch["labels"][i]] / f"{i:05d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).save(target)
        paths[f"folder {size:,}"] = root
    Image.fromarray(pixels[0]).save(tmp / "photo.png")
    return {"run": run, "photo": tmp / "photo.png", **paths}


def programs(inputs: dict[str, Path], tmp: Path, device: str = "cpu",
             sizes: tuple[int, int] = FOLDER_SIZES) -> dict[str, tuple[list[str], Path | None]]:
    """name -> (command, the run directory it leaves)."""
    from harness import floor_command

    entry = [sys.executable, str(HERE / "convlab_entry.py"), "predict", "--run", str(inputs["run"]), "--device", device, "-q"]
    out = {
        "import torch": (floor_command(device), None),
        "test.py": ([sys.executable, str(HERE / "tutorial_test.py"), "--image", str(inputs["photo"]),
                     "--weights", str(inputs["run"] / "model.pt"), "--device", device], None),
        "convlab predict": ([*entry, str(inputs["photo"]), "--logdir", str(tmp / "one"), "--run-name", "run"], tmp / "one" / "run"),
        "convlab predict, no attributions": ([*entry, str(inputs["photo"]), "--attributions", "none", "--logdir", str(tmp / "none"),
                                              "--run-name", "run"], tmp / "none" / "run"),
    }
    for size in sizes:
        name = f"folder {size:,}"
        out[name] = ([*entry, str(inputs[name]), "--attributions", "none", "--logdir", str(tmp / f"f{size}"), "--run-name", "run"],
                     tmp / f"f{size}" / "run")
    return out


def folder_accuracy(data_dir: Path, run: Path, count: int, device: str = "cpu") -> float:
    """The model's accuracy on the first ``count`` test images as the CIFAR-10 batch holds them
    (what convlab's own loader reads), to hold the folder's PNGs, read back, to; run on ``device``."""
    import numpy as np
    import torch

    from convlab import planning
    from convlab.config import resolve
    from convlab.trained import run_settings

    batch = pickle.loads((data_dir / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="latin1")
    pixels = torch.from_numpy(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)[:count].copy())
    labels = torch.tensor(batch["labels"][:count])
    p = planning.plan(resolve("stack", run_settings(run) | {"run": {"device": device}}))
    model = torch.nn.Sequential(*(s.module for s in p.stages)).to(device).eval()
    with torch.inference_mode():
        predicted = torch.cat([model(p.batch_input(pixels[i : i + 256])).argmax(1).cpu() for i in range(0, count, 256)])
    return float((predicted == labels).float().mean())


def check(inputs: dict[str, Path], data_dir: Path, tmp: Path, device: str = "cpu", size: int = FOLDER_SIZES[1]) -> dict[str, object]:
    """test.py and convlab predict give the photo the same class; the folder's accuracy is the
    model's on the same images read from the dataset's own file."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    lesson = subprocess.run([sys.executable, str(HERE / "tutorial_test.py"), "--image", str(inputs["photo"]),
                             "--weights", str(inputs["run"] / "model.pt"), "--device", device],
                            capture_output=True, text=True, check=True, env=env)
    index = int(lesson.stdout.strip().splitlines()[-1].split("[")[1].split("]")[0])
    ours = subprocess.run([sys.executable, "-m", "convlab", "predict", "--run", str(inputs["run"]), str(inputs["photo"]),
                           "--attributions", "none", "--json", "--device", device, "--logdir", str(tmp / "check")],
                          capture_output=True, text=True, check=True, env=env)
    doc = json.loads(ours.stdout)
    said = doc["images"][0]["predicted"]
    classes = doc["model"]["classes"]
    logged = json.loads((tmp / f"f{size}" / "run" / "summary.json").read_text())["accuracy"]
    expected = folder_accuracy(data_dir, inputs["run"], size, device)
    allowed = 0 if device == "cpu" else DIFFERING_ON_CUDA
    return {"same": classes[index] == said and round(abs(logged - expected) * size) <= allowed,
            "why": f"test.py's output.argmax(1) is {index} ({classes[index]}); convlab predict says {said}; the folder of "
                   f"{size:,} PNGs: accuracy {logged:.4f}, the same images from the dataset's file: {expected:.4f} "
                   f"(on {device}; {allowed} image(s) may differ)"}


def run_predict_bench(measure: Callable[..., dict], data_dir: Path, tmp: Path, *, repeat: int, device: str = "cpu",
                      sizes: tuple[int, int] = FOLDER_SIZES) -> dict:
    inputs = make_inputs(data_dir, tmp, sizes)
    runs = programs(inputs, tmp, device, sizes)
    samples: dict[str, list] = {name: [] for name in runs}
    for i in range(repeat):
        names = list(runs)
        for name in names[i % len(names):] + names[: i % len(names)]:  # take turns
            cmd, run_dir = runs[name]
            if run_dir is not None and run_dir.exists():
                import shutil

                shutil.rmtree(run_dir.parent)
            m = measure(cmd, tmp)
            if run_dir is not None:
                summary = json.loads((run_dir / "summary.json").read_text())
                m.update(predicted=summary["predicted"], loop_s=summary["seconds"])
            samples[name].append(m)
            print(f"  predict {name:34s} run {i + 1}: {m['wall_s']:6.2f} s, {m['imports_s']:5.2f} s imports, "
                  f"{m['peak_rss_mb']:5.0f} MB", flush=True)
    med = {name: {k: statistics.median(s[k] for s in runs_) for k in ("wall_s", "imports_s", "after_imports_s", "peak_rss_mb")}
           for name, runs_ in samples.items()}
    small, large = (f"folder {size:,}" for size in sizes)
    rate = sizes[1] / med[large]["after_imports_s"]
    report = {
        "device": device,
        "repeat": repeat,
        "folder_sizes": list(sizes),
        "median": med,
        "ratios": {
            "one_image_vs_torch": med["convlab predict"]["wall_s"] / med["import torch"]["wall_s"],
            "one_image_vs_test_py": med["convlab predict"]["wall_s"] / med["test.py"]["wall_s"],
            "no_attributions_vs_torch": med["convlab predict, no attributions"]["wall_s"] / med["import torch"]["wall_s"],
            "no_attributions_vs_test_py": med["convlab predict, no attributions"]["wall_s"] / med["test.py"]["wall_s"],
            "images_per_s_after_imports": rate,
            "memory_large_vs_small": med[large]["peak_rss_mb"] / med[small]["peak_rss_mb"],
        },
        "check": check(inputs, data_dir, tmp, device, sizes[1]),
    }
    print_predict_table(report)
    return report


def print_predict_table(r: dict) -> None:
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(f"\npredict: the lesson's model, one 32x32 image and folders of CIFAR-10 test PNGs, on {r['device']}; "
          f"medians of {r['repeat']} run(s)\n")
    header = f"{'':34s} {'wall s':>8s} {'imports s':>10s} {'after imports s':>16s} {'peak RSS MB':>12s}"
    print(header)
    print("-" * len(header))
    for name, x in r["median"].items():
        name = "import torch + CUDA start" if name == "import torch" and r["device"] != "cpu" else name
        print(f"{name:34s} {x['wall_s']:8.2f} {x['imports_s']:10.2f} {x['after_imports_s']:16.2f} {x['peak_rss_mb']:12.0f}")
    q = r["ratios"]
    print(f"\none image, convlab predict (defaults) / import torch: {q['one_image_vs_torch']:.2f}x, / test.py: "
          f"{q['one_image_vs_test_py']:.2f}x; with --attributions none: {q['no_attributions_vs_torch']:.2f}x and "
          f"{q['no_attributions_vs_test_py']:.2f}x")
    small, large = r["folder_sizes"]
    print(f"folder of {large:,} PNGs: {q['images_per_s_after_imports']:,.0f} images/s after imports "
          f"({ok(q['images_per_s_after_imports'] >= RATE_TARGET)}, target >= {RATE_TARGET:,}); peak memory "
          f"{large:,} / {small:,} images: {q['memory_large_vs_small']:.2f}x "
          f"({ok(q['memory_large_vs_small'] <= MEMORY_LIMIT)}, target <= {MEMORY_LIMIT}x: streamed)")
    print(f"check: {r['check']['why']} ({'same' if r['check']['same'] else 'DIFFERENT'})")
