"""Re-make docs/predict-cifar10.png: the lesson's model trained on real CIFAR-10 images, a few of
the images it was evaluated on (held out, never trained on), what it said and why.

    python docs/predict_example.py RUN_DIR [--data-dir ../shared/data] [--out docs/predict-cifar10.png]

RUN_DIR is a run of (the README's "Your own images" section says how it was made):

    convlab train --config configs/cifar10-model.toml --split test --holdout 0.2 --optimizer adam --lr 0.001 --epochs 6

A harness, not part of convlab: it writes the chosen held-out test images as PNG files (the
held-out ones are the run's: the same seeded draw convlab train makes), runs ``convlab predict
--run RUN_DIR`` on them with Grad-CAM and occlusion and ``--out``, and stacks the sheets it wrote,
top to bottom. The terminal's report goes to stdout, for the README.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from convlab.__main__ import main

REPO = Path(__file__).resolve().parents[1]
# Held-out test images by class: the first of each of these classes in the held-out draw
# (seed 0), as they come, right or wrong; in class subfolders, so the sheets say the true class.
CLASSES = ("automobile", "cat", "horse", "ship")
GAP = 6


def held_out(data_dir: Path, seed: int = 0, holdout: float = 0.2) -> tuple[np.ndarray, list[int], list[str], list[int]]:
    """The test split's pixels (N, 32, 32, 3), labels, class names and the indices convlab
    train held out (``train.data.load_data``: the first ``round(N * holdout)`` of a seeded permutation)."""
    import torch

    folder = data_dir / "cifar-10-batches-py"
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")
    names = pickle.loads((folder / "batches.meta").read_bytes(), encoding="latin1")["label_names"]
    pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    n = len(pixels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = sorted(perm[: min(n - 1, max(1, round(n * holdout)))].tolist())
    return pixels, batch["labels"], names, held


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "predict-cifar10.png")
    args = parser.parse_args()

    pixels, labels, names, held = held_out(args.data_dir)
    run_dir, out, here = args.run_dir.resolve(), args.out.resolve(), Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)  # the images named as a learner names them (held-out/cat/test-33.png), not by a temporary path
        for name in CLASSES:
            index = next(i for i in held if names[labels[i]] == name)
            (tmp / "held-out" / name).mkdir(parents=True)
            Image.fromarray(pixels[index]).save(tmp / "held-out" / name / f"test-{index}.png")
        try:
            main(["predict", "--run", str(run_dir), "held-out", "--attributions", "gradcam,occlusion", "--out", "sheet.png",
                  "--logdir", "logs", "--device", "cpu"])
        except SystemExit as exc:
            if exc.code:
                raise
        sheets = [Image.open(p).convert("RGB") for p in sorted(tmp.glob("sheet-*.png"))]
        width = max(s.width for s in sheets)
        stacked = Image.new("RGB", (width, sum(s.height for s in sheets) + GAP * (len(sheets) - 1)), (210, 210, 210))
        y = 0
        for s in sheets:
            stacked.paste(s, (0, y))
            y += s.height + GAP
        stacked.save(out, optimize=True)
        os.chdir(here)
    print(f"{out}: {stacked.width}x{stacked.height}, {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main_()
