"""The first stages of a few torchvision models, with their ImageNet weights.

The layers are written here as PyTorch code (torch-free, so a stack with ``--pretrained`` is
planned and explained without importing torchvision); the tests hold them against the real
models. The weights file is torchvision's own, fetched into torch's hub cache on first use,
and read like any ``--weights`` file: ``torch.load(weights_only=True)``, matched by order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from convlab.errors import ConfigError


@dataclass(frozen=True)
class Pretrained:
    name: str
    layers: tuple[str, ...]  # the stages convlab takes, in the model's order
    url: str  # torchvision's weights file (its Weights enum's IMAGENET1K_V1)
    # The normalisation the weights expect, per input channel (RGB in [0, 1]).
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _vgg16_features() -> tuple[str, ...]:
    layers, channels = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append("MaxPool2d(kernel_size=2, stride=2)")
        else:
            layers += [f"Conv2d({channels}, {v}, kernel_size=3, padding=1)", "ReLU(inplace=True)"]
            channels = v
    return tuple(layers)


PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in (
        Pretrained("vgg16", _vgg16_features(), "https://download.pytorch.org/models/vgg16-397923af.pth"),
        Pretrained(
            "alexnet",
            (
                "Conv2d(3, 64, kernel_size=11, stride=4, padding=2)", "ReLU(inplace=True)", "MaxPool2d(kernel_size=3, stride=2)",
                "Conv2d(64, 192, kernel_size=5, padding=2)", "ReLU(inplace=True)", "MaxPool2d(kernel_size=3, stride=2)",
                "Conv2d(192, 384, kernel_size=3, padding=1)", "ReLU(inplace=True)",
                "Conv2d(384, 256, kernel_size=3, padding=1)", "ReLU(inplace=True)",
                "Conv2d(256, 256, kernel_size=3, padding=1)", "ReLU(inplace=True)", "MaxPool2d(kernel_size=3, stride=2)",
            ),
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        ),
        # The stem only: after it come residual blocks, which are not a chain of layers.
        Pretrained(
            "resnet18",
            (
                "Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)", "BatchNorm2d(64)", "ReLU(inplace=True)",
                "MaxPool2d(kernel_size=3, stride=2, padding=1)",
            ),
            "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        ),
    )
}


def get_pretrained(name: str) -> Pretrained:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise ConfigError(f"unknown --pretrained {name!r}; choose from {', '.join(PRETRAINED)}") from None


def pretrained_layers(name: str, upto: int | None) -> tuple[str, ...]:
    """The first ``upto`` stages of ``name`` (all that convlab knows when None)."""
    model = get_pretrained(name)
    count = len(model.layers)
    if upto is not None and not 1 <= upto <= count:
        raise ConfigError(f"--upto {upto}: {name}'s first stages run from 1 to {count} (--upto {count} takes them all)")
    return model.layers[: upto or count]


def weights_path(model: Pretrained) -> Path:
    """Where torchvision keeps the file: torch's hub directory (TORCH_HOME), checkpoints/."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / model.file_name


def fetch_weights(model: Pretrained) -> Path:
    """The weights file, downloaded by torch.hub on first use; offline, one line on where to put it."""
    from torch.hub import download_url_to_file

    path = weights_path(model)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        download_url_to_file(model.url, str(path), progress=False)
    except (OSError, ValueError) as exc:  # URLError is an OSError; no network, a proxy, a full disk
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split())[:120]
        raise ConfigError(
            f"cannot download {model.name}'s ImageNet weights ({reason}); download {model.url} "
            f"and put it at {path} (the folder comes from TORCH_HOME), then run again"
        ) from None
    return path
