"""The input ``convlab explain`` explains a layer on: ``--size`` and ``--channels``, or the
experiment's dataset images."""

from __future__ import annotations

from convlab.data import get_dataset
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.stages import ConvConfig
from convlab.values import Pair, parse_pair

# PyTorch's sizes are 32-bit, as config holds every layer setting to.
MAX_SIZE = 2**31 - 1


def parse_size(value: str, name: str = "--size", minimum: int = 1) -> Pair:
    size = parse_pair(value, name)
    if isinstance(size, str) or min(size) < minimum:
        least = "at least 1x1" if minimum == 1 else f"{minimum} or more"
        raise ConfigError(f"{name} must be {least}, got {value}")
    if max(size) > MAX_SIZE:
        raise ConfigError(f"{name}: {max(size)} is far too large; PyTorch takes at most {MAX_SIZE}")
    return size


def input_shape(exp: Experiment, size: str | None = None, channels: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) to explain: ``--size``/``--channels`` where given, else the experiment's dataset images."""
    c, h, w = get_dataset(exp.data.dataset).shape(exp.data)
    if isinstance(exp.layer, ConvConfig) and exp.layer.in_channels is not None:
        c = exp.layer.in_channels
    if channels is not None:
        c = channels
    if size is not None:
        h, w = parse_size(size)
    return (c, h, w)
