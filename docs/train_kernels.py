"""Re-make docs/train-kernels.png: the lesson model's first-layer kernels at the start, at the end
of a convlab train run on the real CIFAR-10 images, and what training added, as the run logged them.

    python docs/train_kernels.py RUN_DIR [--out docs/train-kernels.png]

RUN_DIR is a run of (the README's Training section says how it was made):

    convlab train --config configs/cifar10-model.toml --split test --holdout 0.2 --epochs 10 \\
        --optimizer adam --lr 0.001 --snapshot-every 125

A harness, not part of convlab: the run logs this picture itself (tag 01-conv2d/kernels: step 0 |
now | the change, on one fixed range); this takes its last step and writes a caption above it.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw
from tensorboard.backend.event_processing import event_accumulator

from convlab.pictures import label_font

REPO = Path(__file__).resolve().parents[1]
TAG = "01-conv2d/kernels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "train-kernels.png")
    args = parser.parse_args()

    acc = event_accumulator.EventAccumulator(str(args.run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    summary = json.loads((args.run_dir / "summary.json").read_text())
    limit = summary["kernel_scale"][TAG]
    last = acc.Images(TAG)[-1]
    picture = Image.open(io.BytesIO(last.encoded_image_string)).convert("RGB")
    lines = [
        f"The 32 kernels of Conv2d(3, 32, 5, padding=2) at step 0 and after {last.step} steps "
        f"({summary['test_accuracy']:.1%} on held-out images), and what training added (now - step 0):",
        f"each an RGB tile (its weights on the red, green and blue input), all on one fixed range: mid-grey = 0, "
        f"black/white = -/+{limit:.3f}.",
    ]
    font = label_font(13)
    width = max(picture.width, *(int(font.getlength(line)) + 16 for line in lines))
    sheet = Image.new("RGB", (width, picture.height + 16 + 18 * len(lines)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(lines):
        draw.text((8, 6 + 18 * i), line, fill=(40, 40, 40), font=font)
    sheet.paste(picture, (0, 12 + 18 * len(lines)))
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}, step {last.step}")


if __name__ == "__main__":
    main()
