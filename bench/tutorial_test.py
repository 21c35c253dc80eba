"""The lesson's ``test.py``, the baseline ``bench/predict_bench.py`` measures ``convlab predict`` against.

The tutorial's last script: one image through the trained model, ``Image.open`` -> ``convert('RGB')``
-> ``Resize((32, 32))`` + ``ToTensor`` -> ``reshape(1, 3, 32, 32)`` -> ``model(image)`` ->
``print(output.argmax(1))``. The lesson saves its whole model with ``torch.save(model)``; here
the same network is built in code and its ``state_dict`` loaded (``weights_only=True``), as
``convlab predict --run`` reads ``model.pt``. Prints the output and the class index, as the
lesson does. ``--device cuda``: the lesson's GPU version, the model and the image ``.to(device)``
(printing the output reads it back, so the GPU has finished).

    python bench/tutorial_test.py --image photo.png --weights logs/train-.../model.pt [--device cpu|cuda]
"""

import time  # noqa: I001 - imports are timed: this block is what "after imports" is measured from

import torch
import torchvision
from PIL import Image
from torch import nn

import argparse
import json
import os

IMPORTED = time.time()


class Tudui(nn.Module):
    """The lesson's model, as its scripts name it."""

    def __init__(self) -> None:
        super().__init__()
        self.model1 = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model1(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--weights", required=True, help="a state_dict of nn.Sequential (convlab's model.pt)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if os.environ.get("BENCH_MARK_FILE"):
        with open(os.environ["BENCH_MARK_FILE"], "w") as f:
            json.dump({"imported": IMPORTED}, f)

    image = Image.open(args.image)
    image = image.convert("RGB")
    transform = torchvision.transforms.Compose([torchvision.transforms.Resize((32, 32)), torchvision.transforms.ToTensor()])
    image = transform(image)

    model = Tudui()
    model.model1.load_state_dict(torch.load(args.weights, map_location=torch.device("cpu"), weights_only=True))
    model = model.to(args.device)
    image = torch.reshape(image, (1, 3, 32, 32)).to(args.device)
    model.eval()
    with torch.no_grad():
        output = model(image)
    print(output)
    print(output.argmax(1))


if __name__ == "__main__":
    main()
