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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "train-kernels.png")
    args = parser.parse_args()

    acc = event_accumulator.EventAccumulator(str(args.run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    events = acc.Images(TAG)
    first, last = events[0], events[-1]
    summary = json.loads((args.run_dir / "summary.json").read_text())
    limit = summary["kernel_scale"][TAG]
    font = ImageFont.load_default(size=14)
    captions = [
        f"step {first.step}: PyTorch's initial weights",
        f"step {last.step}: after training, test accuracy {summary['test_accuracy']:.1%}",
    ]
    pictures = [Image.open(io.BytesIO(ev.encoded_image_string)).convert("RGB") for ev in (first, last)]
    note = f"the 32 kernels of Conv2d(3, 32, 5, padding=2) as RGB tiles; mid-grey = 0, black/white = -/+{limit:.3f} at every step"
    width = max(max(p.width for p in pictures), 8 + int(font.getlength(note))) + 16
    height = 8 + sum(22 + p.height + 10 for p in pictures) + 22
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 8
    for caption, picture in zip(captions, pictures):
        draw.text((8, y), caption, fill="black", font=font)
        sheet.paste(picture, (8, y + 22))
        y += 22 + picture.height + 10
    draw.text((8, y), note, fill=(90, 90, 90), font=font)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}, steps {first.step} and {last.step}")


if __name__ == "__main__":
    main()
