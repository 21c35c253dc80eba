"""Re-make docs/edges-emerge.png: the first-layer kernels of a ``configs/edges-emerge.toml`` run at
step 0 and at its end, side by side, each kernel on its own symmetric scale (mid-grey = 0).

    python docs/edges_emerge.py RUN_DIR [--out docs/edges-emerge.png]

RUN_DIR is a run of (the README's training section says how it was made):

    convlab train --config configs/edges-emerge.toml --split test --holdout 0.2

A harness, not part of convlab. The run logs its kernels on one fixed range (step 0's largest
|weight|), on which weight decay's shrinking shows as fading; here each kernel is scaled on its
own, so its shape shows. Step 0's weights are rebuilt from the run's config.toml and seed (and
checked pixel for pixel against the run's own step-0 picture); the end's are its model.pt.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tensorboard.backend.event_processing import event_accumulator

from convlab.config import resolve
from convlab.pictures import display_scale, kernel_view, tile_grid, to_pixels, upscale
from convlab.planning import plan
from convlab.snapshots import kernel_zoom
from convlab.writer import image_grid

REPO = Path(__file__).resolve().parents[1]
TAG = "01-conv2d/kernels"
ZOOM, COLUMNS, GAP = 10, 8, 16


def panel(weight: torch.Tensor) -> Image.Image:
    """Each kernel as one RGB tile on its own symmetric scale, COLUMNS a row."""
    tiles = upscale(display_scale(weight.detach().float(), "symmetric"), ZOOM)
    return Image.fromarray(to_pixels(tile_grid(tiles, columns=COLUMNS))[0].permute(1, 2, 0).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "edges-emerge.png")
    args = parser.parse_args()

    summary = json.loads((args.run_dir / "summary.json").read_text())
    exp = resolve("train", {"run": {"device": "cpu"}}, args.run_dir / "config.toml")
    start = plan(exp).stages[0].module.weight.detach()
    end = torch.load(args.run_dir / "model.pt", weights_only=True)["0.weight"]

    acc = event_accumulator.EventAccumulator(str(args.run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    logged = np.asarray(Image.open(io.BytesIO(acc.Images(TAG)[0].encoded_image_string)).convert("RGB"))
    limit = summary["kernel_scale"][TAG]
    rebuilt = image_grid(kernel_view(start, zoom=kernel_zoom(tuple(start.shape)), limit=limit)).numpy()
    if not np.array_equal(logged, rebuilt):
        raise SystemExit(f"{args.run_dir}: the rebuilt step-0 kernels differ from the run's own step-0 picture")

    steps = summary["steps"]
    titles = [f"step 0: PyTorch's initial weights (|w| up to {float(start.abs().max()):.3f})",
              f"step {steps}: trained, {summary['test_accuracy']:.1%} on held-out images (|w| up to {float(end.abs().max()):.3f})"]
    panels = [panel(start), panel(end)]
    font = ImageFont.load_default(size=15)
    width = sum(p.width for p in panels) + GAP * 3
    out = Image.new("RGB", (width, panels[0].height + 30 + GAP), "white")
    draw = ImageDraw.Draw(out)
    x = GAP
    for title, picture in zip(titles, panels):
        draw.text((x, 6), title, fill="black", font=font)
        out.paste(picture, (x, 30))
        x += picture.width + GAP
    out.save(args.out, optimize=True)
    print(f"{args.out}: {out.width}x{out.height}")


if __name__ == "__main__":
    main()
