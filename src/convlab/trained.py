"""A training run read back: the stack it trained, its ``model.pt`` and the data it was trained on,
as the settings that rebuild that network (``--run DIR`` of ``convlab predict`` and ``convlab top``).
torch-free: the weights are loaded, and checked, where every ``--weights`` file is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convlab.config import read_config_file
from convlab.errors import ConfigError

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.toml"
# What a network needs to see images as it was trained on them (the rest of [data] is where they were read).
DATA_KEYS = ("dataset", "data_dir", "image_size", "grayscale")


def run_settings(run_dir: str | Path, option: str = "--run") -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` that make a stack experiment the network of the training run in
    ``run_dir``: its layers, the weights it ended with and the dataset it was trained on."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise ConfigError(f"{option} {run_dir} {what}; give a training run's directory (logs/train/train-...)")
    config, model = run_dir / CONFIG_FILE, run_dir / MODEL_FILE
    if not config.exists():  # one that is no regular file is said so by the reader (files.py)
        raise ConfigError(f"{option} {run_dir} has no {CONFIG_FILE}: it is not a convlab run directory")
    try:
        raw = read_config_file(config, "train")
    except ConfigError as exc:
        raise ConfigError(f"{option} {run_dir} is not a training run: {exc}") from None
    if "train" not in raw:
        raise ConfigError(f"{option} {run_dir} is not a training run (its {CONFIG_FILE} has no [train] section)")
    if not model.exists():
        raise ConfigError(
            f"{option} {run_dir} has no {MODEL_FILE} (the run stopped before its first step was saved); "
            "train again, or give another run"
        )
    stack = raw.get("stack", {})
    if not stack.get("layers") and not stack.get("pretrained"):
        # convlab.train(model=...) in Python: its config.toml holds the other settings, not the class.
        raise ConfigError(f"{option} {run_dir} trained a Python nn.Module (model=), which its {CONFIG_FILE} cannot rebuild: "
                          f"give the model's layers as text with --weights {model}")
    settings: dict[str, dict[str, Any]] = {
        "stack": {k: stack.get(k) for k in ("layers", "pretrained", "upto")} | {"weights": str(model)},
        "data": {k: raw.get("data", {}).get(k) for k in DATA_KEYS},
    }
    return settings
