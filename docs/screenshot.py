"""Re-make docs/board-images.png: a real CIFAR-10 conv run, shown by `convlab board` in Chromium.

    python docs/screenshot.py [--data-dir ../shared/data] [--out docs/board-images.png]

A harness, not part of convlab: it reads the re-packed CIFAR-10 copy in ../shared/data,
whose MD5s differ from the official archive's, so it registers them here (as the tests do).
Needs Debian's chromium and chromium-driver and the dev extra (selenium).
"""

from __future__ import annotations

import argparse
import io
import json
import os
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
from torchvision.datasets import CIFAR10

from convlab import cli

REPO = Path(__file__).resolve().parents[1]
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,1800",
    "--hide-scrollbars",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "board-images.png")
    args = parser.parse_args()

    CIFAR10.train_list = []  # the shared copy holds the test split only
    CIFAR10.test_list = [["test_batch", SHARED_MD5["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": SHARED_MD5["batches.meta"]}
    data_dir, out = args.data_dir.resolve(), args.out.resolve()
    os.chdir(tempfile.mkdtemp(prefix="convlab-board-"))  # the page shows the logdir as "logs"
    logdir = Path("logs")
    try:
        cli.main(["conv", "--data-dir", str(data_dir), "--no-download", "--device", "cpu", "--logdir", str(logdir)])
    except SystemExit as exc:
        if exc.code:
            raise
    run_dir = next(logdir.iterdir())
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]

    board = subprocess.Popen(
        [sys.executable, "-m", "convlab", "board", "--logdir", str(logdir), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = ""
        while not url:
            line = board.stdout.readline()
            if not line:
                sys.exit("convlab board exited before printing its URL")
            print(line, end="")
            url = line.split()[1] if line.startswith("open ") else ""
        started = time.monotonic()
        query = urllib.parse.urlencode({"run": run_dir.name, "tag": "output"})
        while len(get_json(f"{url}data/plugin/images/images?{query}")) < steps:
            time.sleep(0.5)
        print(f"TensorBoard had all {steps} steps after {time.monotonic() - started:.1f}s")

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
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

    # A 256-colour palette keeps the PNG small enough for a README.
    image = Image.open(io.BytesIO(png)).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    bottom = ImageChops.difference(image, background).getbbox()[3]
    image = image.crop((0, 0, image.width, min(image.height, bottom + 16)))
    image = image.quantize(colors=256, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
