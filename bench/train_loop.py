"""The lesson's plain training loop, the baseline ``bench/train_bench.py`` measures ``convlab train``
against.

The loop of the PyTorch tutorial's training script: CIFAR10 through ``ToTensor()`` and a
``DataLoader(batch_size=64)``, the lesson's model (``nn.Sequential`` of three conv/pool pairs,
``Flatten``, two ``Linear``), ``nn.CrossEntropyLoss``, ``torch.optim.SGD(lr=0.01)`` and one
``add_scalar`` of the loss each step. One epoch over the split given. The model is seeded like
convlab's (``torch.manual_seed(seed)`` before it is built), so both start from the same weights.

``--feed convlab``: the same loop fed from convlab's data path (the split as one uint8 tensor,
sliced into batches, ``.float() / 255``) and logging nothing: what convlab's own logging and
snapshots are measured against.

``--device cuda``: the lesson's GPU version, the model and each batch ``.to(device)`` (the uint8
batch of ``--feed convlab`` is moved before ``.float()``, as convlab does); ``loss.item()`` waits
for each step's GPU work.

    python bench/train_loop.py --data-dir DIR --logdir DIR [--feed torchvision|convlab] [--device cpu|cuda]
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


def lesson_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--feed", choices=["torchvision", "convlab"], default="torchvision")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--md5", help="JSON {file name: md5} of a non-official CIFAR10 copy (bench harness only)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    md5 = json.loads(args.md5) if args.md5 else None
    if os.environ.get("BENCH_MARK_FILE"):
        with open(os.environ["BENCH_MARK_FILE"], "w") as f:
            json.dump({"imported": IMPORTED}, f)

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = lesson_model().to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    losses = []

    def train_step(imgs: torch.Tensor, targets: torch.Tensor) -> float:
        imgs, targets = imgs.to(device), targets.to(device)
        outputs = model(imgs)
        loss = loss_fn(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    if args.feed == "torchvision":
        if md5:
            from hand_loop import register_checksums  # the bench's one copy, beside this file

            register_checksums(md5)
        dataset = torchvision.datasets.CIFAR10(args.data_dir, train=False, transform=torchvision.transforms.ToTensor(), download=False)
        dataloader = DataLoader(dataset, batch_size=args.batch_size)
        writer = SummaryWriter(args.logdir)
        step = 0
        for imgs, targets in dataloader:
            loss = train_step(imgs, targets)
            step = step + 1
            writer.add_scalar("train_loss", loss, step)
            losses.append(loss)
        writer.close()
    else:
        from convlab.data import load
        from convlab.data import register_checksums as accept
        from convlab.experiment import DataConfig

        if md5:
            accept("cifar10", md5)
        images = load(DataConfig(dataset="cifar10", split="test", data_dir=args.data_dir, download=False), args.seed)
        bs = args.batch_size
        for start in range(0, len(images), bs):
            losses.append(train_step(images.batch(start, start + bs).to(device).float().div_(255), images.batch_labels(start, start + bs)))
    os.makedirs(args.logdir, exist_ok=True)
    with open(os.path.join(args.logdir, "losses.json"), "w") as f:
        json.dump(losses, f)


if __name__ == "__main__":
    main()
