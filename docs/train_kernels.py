"""Re-make docs/train-kernels.png: the lesson model's first-layer kernels at the start and at the
end of a convlab train run on the real CIFAR-10 images, read back from the run's event file.

    python docs/train_kernels.py RUN_DIR [--out docs/train-kernels.png]

RUN_DIR is a run of (the README's Training section says how it was made):

    convlab train --config configs/cifar10-model.toml --split test --holdout 0.2 --epochs 10 \\
        --optimizer adam --lr 0.001 --snapshot-every 125

A harness, not part of convlab: it only reads what the run logged (tag 01-conv2d/kernels, the same
fixed range at every snapshot) and labels the two pictures.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tensorboard.backend.event_processing import event_accumulator

REPO = Path(__file__).resolve().parents[1]
TAG = "01-conv2d/kernels"


COLUMNS, GAP = 8, 4  # the 32 tiles of one logged row, laid out 4 x 8


def tiles(picture: Image.Image, count: int) -> list[Image.Image]:
    """The tiles of a logged kernel picture: one row of ``count`` tiles, 2 px between and around them."""
    size = (picture.width - 2) // count - 2
    return [picture.crop((2 + i * (size + 2), 2, 2 + i * (size + 2) + size, 2 + size)) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "train-kernels.png")
    args = parser.parse_args()

    acc = event_accumulator.EventAccumulator(str(args.run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    summary = json.loads((args.run_dir / "summary.json").read_text())
    limit = summary["kernel_scale"][TAG]
    first, last = acc.Images(TAG)[0], acc.Images(TAG)[-1]
    change = acc.Images(f"{TAG}-change")[-1]
    panels = [
        (f"step {first.step}: PyTorch's initial weights", first),
        (f"step {last.step}: trained ({summary['test_accuracy']:.1%} on held-out images)", last),
        (f"step {last.step} minus step {first.step}: what training added", change),
    ]
    font = ImageFont.load_default(size=14)
    grids = []
    for _, event in panels:
        parts = tiles(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"), 32)
        size = parts[0].width
        grid = Image.new("RGB", (COLUMNS * (size + GAP) - GAP, 4 * (size + GAP) - GAP), (51, 115, 217))
        for i, part in enumerate(parts):
            grid.paste(part, ((i % COLUMNS) * (size + GAP), (i // COLUMNS) * (size + GAP)))
        grids.append(grid)
    note = (f"The 32 kernels of the first layer, Conv2d(3, 32, 5, padding=2), each an RGB tile (its weights on the red, green "
            f"and blue input); all three on one fixed range: mid-grey = 0, black/white = -/+{limit:.3f}.")
    panel_w = max(max(g.width for g in grids), max(int(font.getlength(c)) for c, _ in panels)) + 24
    width = max(panel_w * len(grids), int(font.getlength(note)) + 16)
    height = 8 + 22 + max(g.height for g in grids) + 12 + 22
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for k, ((caption, _), grid) in enumerate(zip(panels, grids)):
        draw.text((8 + k * panel_w, 8), caption, fill="black", font=font)
        sheet.paste(grid, (8 + k * panel_w, 30))
    draw.text((8, 30 + max(g.height for g in grids) + 12), note, fill=(90, 90, 90), font=font)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}, steps {first.step} and {last.step}")


if __name__ == "__main__":
    main()
