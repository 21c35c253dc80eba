"""The tutorial's hand-written loop, the baseline that ``bench.py`` measures convlab against.

This is the loop from the PyTorch tutorials (``nn_conv2d.py`` / ``nn_maxpool.py``): CIFAR10
through ``ToTensor()`` and a ``DataLoader(batch_size=64)``, one ``add_images`` for the input
and one for the output of every batch. Two changes, neither of which costs time: the layer is
seeded like convlab's (so both logs hold the same pixels), and the pool output is logged as
``maxpool`` (convlab's tag) rather than ``output``. ``--device cuda`` is the tutorial's GPU
version: the layer and each batch ``.to(device)``; ``add_images`` copies every output back to the
CPU, so each step's GPU work is finished before the next step starts.

    python bench/hand_loop.py conv --data-dir DIR --logdir DIR [--device cpu|cuda]
"""

import time  # noqa: I001 - imports are timed: this block is what "after imports" is measured from

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

import argparse
import json
import os

IMPORTED = time.time()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("layer", choices=["conv", "pool"])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    # pool only: the bench's sweep runs the loop once per combination it compares.
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--ceil", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--md5", help="JSON {file name: md5} of a non-official CIFAR10 copy (bench harness only)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.md5:
        register_checksums(json.loads(args.md5))
    if os.environ.get("BENCH_MARK_FILE"):
        with open(os.environ["BENCH_MARK_FILE"], "w") as f:
            json.dump({"imported": IMPORTED}, f)

    dataset = torchvision.datasets.CIFAR10(
        args.data_dir, train=False, transform=torchvision.transforms.ToTensor(), download=False
    )
    dataloader = DataLoader(dataset, batch_size=args.batch_size)

    torch.manual_seed(0)
    if args.layer == "conv":
        layer = nn.Conv2d(in_channels=3, out_channels=6, kernel_size=3, stride=1, padding=0)
    else:
        layer = nn.MaxPool2d(kernel_size=args.kernel_size, ceil_mode=args.ceil)
    layer = layer.to(args.device)

    writer = SummaryWriter(args.logdir)
    step = 0
    for imgs, _targets in dataloader:
        imgs = imgs.to(args.device)
        output = layer(imgs)
        writer.add_images("input", imgs, step)
        if args.layer == "conv":
            output = torch.reshape(output, (-1, 3, 30, 30))
            writer.add_images("output", output, step)
        else:
            writer.add_images("maxpool", output, step)
        step = step + 1
    writer.close()


def register_checksums(md5: dict) -> None:
    """Accept a CIFAR10 copy whose files are not the official ones (same as tests/conftest.py)."""
    from torchvision.datasets import CIFAR10

    CIFAR10.train_list = [[n, m] for n, m in sorted(md5.items()) if n.startswith("data_batch")]
    CIFAR10.test_list = [[n, m] for n, m in md5.items() if n == "test_batch"]
    CIFAR10.meta = {**CIFAR10.meta, "md5": md5["batches.meta"]}


if __name__ == "__main__":
    main()
