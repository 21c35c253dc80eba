"""Re-make docs/stack-cifar10-model.png: the lesson's CIFAR-10 model, every stage on real images.

    python docs/stack_picture.py [--data-dir ../shared/data] [--out docs/stack-cifar10-model.png]
    python docs/stack_picture.py --config configs/encoder-decoder.toml --out docs/stack-encoder-decoder.png

A harness, not part of convlab: it runs ``convlab stack --config configs/cifar10-model.toml`` (or ``--config``)
on the re-packed CIFAR-10 copy in ../shared/data (whose MD5s differ from the official
archive's, so it registers them, as the tests do), reads each stage's picture back from the
event file with TensorBoard's loader, and stacks them with their tags, top to bottom.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from tensorboard.backend.event_processing import event_accumulator

from convlab.__main__ import main
from convlab.data.downloaded import register_checksums

REPO = Path(__file__).resolve().parents[1]
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}
IMAGES = 4
MARGIN, LABEL = 8, 18


def stage_pictures(run_dir: Path) -> list[tuple[str, Image.Image]]:
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    tags = [t for t in sorted(acc.Tags()["images"]) if "/" not in t]
    out = []
    for tag in tags:  # 00-input first, then the stages in order
        picture = Image.open(io.BytesIO(acc.Images(tag)[0].encoded_image_string)).convert("RGB")
        if tag.endswith("-input"):  # add_images' grid of the batch: the first images, as large as the first stage's tiles
            picture = picture.crop((0, 0, 32 * IMAGES, 32)).resize((64 * IMAGES, 64), Image.NEAREST)
            tag = f"input: the first {IMAGES} test images"
        out.append((tag, picture))
    return out


def compose(pictures: list[tuple[str, Image.Image]]) -> Image.Image:
    width = max(p.width for _, p in pictures) + 2 * MARGIN
    height = sum(p.height + LABEL + MARGIN for _, p in pictures) + MARGIN
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = MARGIN
    for tag, picture in pictures:
        draw.text((MARGIN, y), tag, fill="black")
        sheet.paste(picture, (MARGIN, y + LABEL))
        y += picture.height + LABEL + MARGIN
    return sheet


def run(data_dir: Path, out: Path, config: Path = REPO / "configs" / "cifar10-model.toml") -> None:
    register_checksums("cifar10", SHARED_MD5)
    with tempfile.TemporaryDirectory() as logdir:
        try:
            main([
                "stack", "--config", str(config), "--data-dir", str(data_dir),
                "--no-download", "-n", "1", "--view-images", str(IMAGES), "--max-channels", "8", "--logdir", logdir,
                "--run-name", "picture", "--device", "cpu", "-q",
            ])
        except SystemExit as exc:  # the CLI exits; 0 is success
            if exc.code:
                raise
        compose(stage_pictures(Path(logdir) / "picture")).save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "stack-cifar10-model.png")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cifar10-model.toml")
    args = parser.parse_args()
    run(args.data_dir, args.out, args.config)
