"""Re-make docs/top-stage1.png and docs/top-stage3.png: one stage's top-patch sheet of an untrained
and of a trained model side by side, read back from two ``convlab top`` runs' event files.

    python docs/top_sheets.py UNTRAINED_RUN TRAINED_RUN [--tags 01-conv2d,03-conv2d] [--out-dir docs]

The README's "What each channel looks for" section says how the two runs were made. A harness, not
part of convlab: it only reads what the runs logged (tag ``NN-kind/top``, the same picture as
``--out``'s PNG) and puts a title above each.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tensorboard.backend.event_processing import event_accumulator

REPO = Path(__file__).resolve().parents[1]
GAP = 16


def sheet(run_dir: Path, tag: str) -> Image.Image:
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    (event,) = acc.Images(f"{tag}/top")
    return Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("untrained", type=Path)
    parser.add_argument("trained", type=Path)
    parser.add_argument("--tags", default="01-conv2d,03-conv2d")
    parser.add_argument("--titles", default="untrained: PyTorch's initial weights|trained")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    font = ImageFont.load_default(size=15)
    titles = args.titles.split("|")
    for tag in args.tags.split(","):
        panels = [sheet(run, tag) for run in (args.untrained, args.trained)]
        width = sum(p.width for p in panels) + GAP * (len(panels) + 1)
        height = max(p.height for p in panels) + 24 + 2 * GAP
        out = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(out)
        x = GAP
        for title, panel in zip(titles, panels):
            draw.text((x, GAP // 2), title, fill="black", font=font)
            out.paste(panel, (x, GAP // 2 + 24))
            x += panel.width + GAP
        path = args.out_dir / f"top-stage{int(tag.split('-')[0])}.png"
        out.save(path, optimize=True)
        summary = json.loads((args.trained / "summary.json").read_text())
        print(f"{path}: {out.width}x{out.height} ({summary['images']} images of {summary['dataset']}/{summary['split']})")


if __name__ == "__main__":
    main()
