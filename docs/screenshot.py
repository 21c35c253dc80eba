"""Re-make docs/board-images.png: a real CIFAR-10 conv run, shown by `convlab board` in Chromium;
with --train, docs/board-train-scalars.png and docs/board-train-images.png: a training run of the
lesson's model (2 epochs, Adam, on 80% of the test split), its Custom Scalars and Images tabs.

    python docs/screenshot.py [--data-dir ../shared/data] [--out docs/board-images.png]
    python docs/screenshot.py --train [--data-dir ../shared/data] [--train-logdir DIR]

A harness, not part of convlab: it reads the re-packed CIFAR-10 copy in ../shared/data,
whose MD5s differ from the official archive's, so it registers them here (as the tests do).
Needs Debian's chromium and chromium-driver and the dev extra (selenium).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image, ImageChops
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from convlab.__main__ import main as convlab_main
from convlab.data import register_checksums

REPO = Path(__file__).resolve().parents[1]
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
)
IMAGES_JS = """
const found = [];
(function walk(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'IMG' && el.src.includes('/individualImage') && el.complete && el.naturalWidth > 0) found.push(el.src);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
})(document);
return found.length;
"""
# Every image card's step slider to the first step (a full batch; the last one is partial).
FIRST_STEP_JS = """
(function walk(root, host) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'PAPER-SLIDER' && host === 'TF-IMAGE-LOADER') el.value = 0;
    if (el.shadowRoot) walk(el.shadowRoot, el.tagName);
  }
})(document, null);
"""


def get_json(url: str):
    try:
        with urllib.request.urlopen(url) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:  # 404 until TensorBoard has read the run
        return []


# The Images dashboard's "Show actual image size" box, ticked.
ACTUAL_SIZE_JS = """
(function walk(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'PAPER-CHECKBOX' && el.textContent.includes('Show actual image size') && !el.checked) el.click();
    if (el.shadowRoot) walk(el.shadowRoot);
  }
})(document);
"""
# How many custom-scalars charts have drawn a line.
CHARTS_JS = """
let drawn = 0;
(function walk(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'VZ-LINE-CHART2' && el.shadowRoot && el.shadowRoot.querySelector('path.line, .line path')) drawn += 1;
    if (el.shadowRoot) walk(el.shadowRoot);
  }
})(document);
return drawn;
"""


def start_board(logdir: Path) -> tuple[subprocess.Popen, str]:
    board = subprocess.Popen(
        [sys.executable, "-m", "convlab", "board", "--logdir", str(logdir), "--port", "0"], stdout=subprocess.PIPE, text=True,
    )
    while True:
        line = board.stdout.readline()
        if not line:
            sys.exit("convlab board exited before printing its URL")
        print(line, end="")
        if line.startswith("open "):
            return board, line.split()[1]


def browser(height: int = 1800, width: int = 1280) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def save(png: bytes, out: Path) -> None:
    """Cropped to what is on the page, in a 256-colour palette (small enough for a README)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    bottom = ImageChops.difference(image, background).getbbox()[3]
    image = image.crop((0, 0, image.width, min(image.height, bottom + 16)))
    image = image.quantize(colors=256, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


def train_screenshots(data_dir: Path, logdir: Path | None) -> None:
    """A training run's Custom Scalars and Images tabs (of a new run, or of the runs in ``logdir``,
    copied to logs/train so the page names it as a learner's would be)."""
    if logdir is not None:
        shutil.copytree(logdir, Path("logs") / "train")
        logdir = Path("logs") / "train"
    else:
        logdir = Path("logs") / "train"
        try:
            convlab_main(["train", "--config", str(REPO / "configs" / "cifar10-model.toml"), "--data-dir", str(data_dir),
                      "--no-download", "--split", "test", "--holdout", "0.2", "--optimizer", "adam", "--lr", "0.001",
                      "--epochs", "2", "--snapshot-every", "50", "--device", "cpu", "--logdir", str(logdir)])
        except SystemExit as exc:
            if exc.code:
                raise
    board, url = start_board(logdir)
    try:
        driver = browser(1100)
        try:
            driver.get(url + "#custom_scalars")
            deadline = time.monotonic() + 60
            while driver.execute_script(CHARTS_JS) < 4:
                if time.monotonic() > deadline:
                    sys.exit("the custom scalars dashboard drew no charts in 60s")
                time.sleep(0.5)
            time.sleep(2)
            save(driver.get_screenshot_as_png(), REPO / "docs" / "board-train-scalars.png")
        finally:
            driver.quit()
        driver = browser(1500, 1600)  # a card at actual size is as wide as the window allows
        try:
            driver.get(url + "#images")
            deadline = time.monotonic() + 60
            while driver.execute_script(IMAGES_JS) < 2:
                if time.monotonic() > deadline:
                    sys.exit("the images dashboard rendered no images in 60s")
                time.sleep(0.5)
            driver.execute_script(ACTUAL_SIZE_JS)
            time.sleep(3)
            save(driver.get_screenshot_as_png(), REPO / "docs" / "board-train-images.png")
        finally:
            driver.quit()
    finally:
        board.terminate()
        board.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "board-images.png")
    parser.add_argument("--train", action="store_true", help="the training run's screenshots instead")
    parser.add_argument("--train-logdir", type=Path, help="with --train: a logdir of training runs to show, instead of a new run")
    args = parser.parse_args()

    register_checksums("cifar10", SHARED_MD5)  # the shared copy's own MD5s (harness only)
    data_dir, out = args.data_dir.resolve(), args.out.resolve()
    train_logdir = args.train_logdir.resolve() if args.train_logdir else None
    os.chdir(tempfile.mkdtemp(prefix="convlab-board-"))  # the page shows the logdir as "logs"
    if args.train:
        train_screenshots(data_dir, train_logdir)
        return
    logdir = Path("logs")
    try:
        convlab_main(["conv", "--data-dir", str(data_dir), "--no-download", "--device", "cpu", "--logdir", str(logdir)])
    except SystemExit as exc:
        if exc.code:
            raise
    run_dir = next(logdir.iterdir())
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]

    board, url = start_board(logdir)
    try:
        started = time.monotonic()
        query = urllib.parse.urlencode({"run": run_dir.name, "tag": "output"})
        while len(get_json(f"{url}data/plugin/images/images?{query}")) < steps:
            time.sleep(0.5)
        print(f"TensorBoard had all {steps} steps after {time.monotonic() - started:.1f}s")

        driver = browser()
        try:
            driver.get(url + "#images")
            deadline = time.monotonic() + 60
            while driver.execute_script(IMAGES_JS) < 2:
                if time.monotonic() > deadline:
                    sys.exit("the images dashboard rendered no images in 60s")
                time.sleep(0.5)
            driver.execute_script(FIRST_STEP_JS)
            time.sleep(2)  # let the cards load the new step
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    finally:
        board.terminate()
        board.wait(timeout=30)
    save(png, out)


if __name__ == "__main__":
    main()
