"""Re-make docs/sweep-compare.png: step 0 of the run 'compare' of configs/sweep-ceil.toml on real CIFAR-10
(with --sweep activations: docs/sweep-activations.png, of configs/sweep-activations.toml).

    python docs/sweep_compare.py [--sweep ceil|activations] [--data-dir ../shared/data] [--out FILE.png]

A harness, not part of convlab: it reads the re-packed CIFAR-10 copy in ../shared/data,
whose MD5s differ from the official archive's, so it registers them here (as the tests do).
The PNG is the image TensorBoard shows, byte for byte as logged.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator

from convlab.__main__ import main
from convlab.data import register_checksums

REPO = Path(__file__).resolve().parents[1]
SHARED_MD5 = {
    "batches.meta": "da61d5246d030a1cd73eb9ed999fa3d1",
    "test_batch": "112779d0709b0875faa8754d1828a9aa",
}
# --sweep NAME: (command, ready config, picture)
SWEEPS = {
    "ceil": ("pool", "sweep-ceil.toml", "sweep-compare.png"),
    "activations": ("stack", "sweep-activations.toml", "sweep-activations.png"),
}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sweep", choices=SWEEPS, default="ceil")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    command, config, picture = SWEEPS[args.sweep]
    out = args.out or REPO / "docs" / picture
    register_checksums("cifar10", SHARED_MD5)
    with tempfile.TemporaryDirectory(prefix="convlab-sweep-") as tmp:
        try:
            main(["sweep", command, "--config", str(REPO / "configs" / config), "--data-dir", str(args.data_dir),
                  "--no-download", "--logdir", tmp, "--run-name", "ceil", "--max-batches", "1", "--quiet"])
        except SystemExit as exc:  # main exits like the command does, 0 included
            if exc.code:
                raise
        acc = event_accumulator.EventAccumulator(str(Path(tmp) / "ceil" / "compare"), size_guidance={event_accumulator.IMAGES: 0})
        acc.Reload()
        (first, *_) = acc.Images("compare")
        out.write_bytes(first.encoded_image_string)
    print(f"wrote {out} ({first.width}x{first.height})")


if __name__ == "__main__":
    run()
