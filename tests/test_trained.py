"""A training run read back as the settings that rebuild its network (--run DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convlab import planning
from convlab.config import resolve
from convlab.errors import ConfigError
from convlab.train.run import train
from convlab.trained import MODEL_FILE, run_settings

LAYERS = ("Conv2d(3, 4, 5, stride=2, padding=2)", "ReLU()", "MaxPool2d(4)", "Flatten()", "Linear(64, 10)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs")
    exp = resolve("train", {"stack": {"layers": list(LAYERS)}, "data": {"dataset": "shapes", "batch_size": 16},
                            "train": {"max_steps": 3, "eval_batches": 1}, "run": {"logdir": str(logdir), "device": "cpu"}})
    return train(exp)["run_dir"]


def test_the_settings_rebuild_the_trained_network(run_dir):
    settings = run_settings(run_dir)
    assert settings["stack"]["weights"].endswith(MODEL_FILE)
    assert settings["data"]["dataset"] == "shapes"
    exp = resolve("stack", settings | {"run": {"device": "cpu"}})
    assert exp.stack.layers == LAYERS
    model = torch.nn.Sequential(*(s.module for s in planning.plan(exp).stages))
    saved = torch.load(f"{run_dir}/{MODEL_FILE}", weights_only=True)
    for (key, value), loaded in zip(saved.items(), model.state_dict().values()):
        assert torch.equal(value, loaded), key


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "nothing", "does not exist"),
    (lambda d: d, "has no config.toml"),
])
def test_what_is_no_training_run_is_one_line(tmp_path, make, says):
    with pytest.raises(ConfigError, match=says):
        run_settings(make(tmp_path))


def test_a_run_without_model_pt_or_train_section_is_refused(tmp_path, run_dir):
    (tmp_path / "config.toml").write_text((Path(run_dir) / "config.toml").read_text())
    with pytest.raises(ConfigError, match="has no model.pt"):
        run_settings(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"")
    (tmp_path / "config.toml").write_text('command = "stack"\n[stack]\nlayers = ["ReLU()"]\n')
    with pytest.raises(ConfigError, match="not a training run"):
        run_settings(tmp_path)
