"""CUDA against the CPU, command by command: the same run on both devices logs the same tags,
steps and picture sizes, and values that agree to float32 rounding (read back with TensorBoard's
own loader). Training (its gradients, mistakes and top patches), top, predict with its
attributions, and a Python model (the notebook's ``model=``); conv, pool, stack, sweep and the
grids have theirs beside their modules' other tests. Every test here skips where PyTorch sees no
GPU; ``pytest -m cuda`` runs them all, and ``bench/cuda_check.sh`` does that first on a lent GPU
machine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import images, load_events

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]

# The block images of the cifar fixture are 4x4 flat blocks: equal activations at neighbouring
# positions are common, so where a top value sits may differ between devices, never its value.
TOP_LAYERS = ("Conv2d(3, 4, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Conv2d(4, 6, 3, stride=2)", "Flatten()", "Linear(294, 10)")
TRAIN_LAYERS = ("Conv2d(3, 4, 5, stride=2)", "ReLU()", "MaxPool2d(2)", "Flatten()", "Linear(196, 10)")
REL, ABS = 1e-4, 1e-6  # float32 on both, summed in another order
DEVICES = {"cpu": "cpu", "gpu": "cuda"}  # run name -> --device


@pytest.fixture(autouse=True)
def float32_on_the_gpu():
    """cuDNN runs float32 convolutions in TF32 by default (10 bits of mantissa, ~1e-3 relative),
    the CPU in float32: these comparisons hold both to float32, so what differs is convlab."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def same_scalars(cpu, gpu) -> None:
    """Every scalar tag of one run is the other's, at the same steps, with the same values."""
    assert sorted(gpu.Tags()["scalars"]) == sorted(cpu.Tags()["scalars"])
    for tag in cpu.Tags()["scalars"]:
        c, g = cpu.Scalars(tag), gpu.Scalars(tag)
        assert [e.step for e in g] == [e.step for e in c], tag
        assert [e.value for e in g] == pytest.approx([e.value for e in c], rel=REL, abs=ABS), tag


def same_pictures(cpu, gpu, exact: set[str] = frozenset(), sizes_only: set[str] = frozenset()) -> None:
    """Every image tag at the same steps and sizes; the ``exact`` ones pixel for pixel (pictures of
    the input images), the ``sizes_only`` ones no further, the rest within a level on average
    (pictures of values, each scaled to 0..255)."""
    assert sorted(gpu.Tags()["images"]) == sorted(cpu.Tags()["images"])
    for tag in cpu.Tags()["images"]:
        c, g = images(cpu, tag), images(gpu, tag)
        assert [(i.step, i.height, i.width) for i in g] == [(i.step, i.height, i.width) for i in c], tag
        if tag in sizes_only:
            continue
        for a, b in zip(c, g):
            apart = np.abs(a.pixels.astype(int) - b.pixels.astype(int))
            assert (apart.max() == 0) if tag in exact else (apart.mean() < 1.0), (tag, a.step, apart.max(), apart.mean())


def text(acc, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


# ----------------------------------------------------------------------------- convlab train


def test_training_on_cuda_logs_the_cpus_losses_gradients_mistakes_and_top_patches(cifar, run_cli, tmp_path):
    """SGD in the data's order (no shuffling), so both devices take the same steps."""
    for name, device in DEVICES.items():
        r = run_cli("train", *TRAIN_LAYERS, "--data-dir", cifar.root, "--batch-size", "16", "--epochs", "2", "--no-shuffle",
                    "--eval-batches", "1", "--top", "--device", device, "--logdir", "logs", "--run-name", name, "-q")
        assert r.code == 0, r.err
    cpu, gpu = load_events(tmp_path / "logs" / "cpu"), load_events(tmp_path / "logs" / "gpu")
    summary = json.loads((tmp_path / "logs" / "gpu" / "summary.json").read_text())
    assert summary["device"] == DEVICES["gpu"] and summary["status"] == "complete" and summary["steps"] == 8

    assert {"train/loss", "gradient-norm/01-conv2d", "update-ratio/05-linear", "test/accuracy"} <= set(gpu.Tags()["scalars"])
    same_scalars(cpu, gpu)
    for tag in ("gradients/01-conv2d", "gradients/05-linear", "weights/01-conv2d"):
        c, g = cpu.Histograms(tag), gpu.Histograms(tag)
        assert [e.step for e in g] == [e.step for e in c], tag
        for a, b in zip(c, g):
            assert b.histogram_value.num == a.histogram_value.num, tag
            assert [b.histogram_value.min, b.histogram_value.max, b.histogram_value.sum] == pytest.approx(
                [a.histogram_value.min, a.histogram_value.max, a.histogram_value.sum], rel=REL, abs=ABS), tag

    # The mistakes: the same images, in the same order, the same classes; confidences as printed (3 decimals).
    mistakes = {}
    for name, acc in (("cpu", cpu), ("gpu", gpu)):
        head, _, *listed = text(acc, "test/mistakes").splitlines()
        mistakes[name] = head, [line.rsplit(" (", 1) for line in listed]
    (head, listed), (gpu_head, gpu_listed) = mistakes["cpu"], mistakes["gpu"]
    assert gpu_head == head and listed
    assert [what for what, _ in gpu_listed] == [what for what, _ in listed]
    assert [float(p.rstrip(")")) for _, p in gpu_listed] == pytest.approx([float(p.rstrip(")")) for _, p in listed], abs=1.5e-3)
    top = {"01-conv2d/top", "02-relu/top", "03-maxpool2d/top"}
    assert top <= set(gpu.Tags()["images"])
    same_pictures(cpu, gpu, exact={"00-input", "test/mistakes", "test/unsure", "test/confusion"}, sizes_only=top)


# ----------------------------------------------------------------------------- convlab top


def _activations(images_nhwc: np.ndarray) -> list[torch.Tensor]:
    """Every stage's output on the CPU, from the same seeded network the command builds."""
    from convlab.config import resolve
    from convlab.pipeline import forward
    from convlab.planning import plan

    p = plan(resolve("stack", {"stack": {"layers": list(TOP_LAYERS)}, "run": {"device": "cpu"}}))
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float() / 255
    return forward([s.module.eval() for s in p.stages], x)


def test_top_on_cuda_finds_the_cpus_top_values_in_the_same_images(cifar, run_cli, tmp_path):
    found = {}
    for name, device in DEVICES.items():
        r = run_cli("top", *TOP_LAYERS, "--dataset", "cifar10", "--data-dir", cifar.root, "--batch-size", "16", "--k", "3",
                    "--json", "--device", device, "--logdir", "logs", "--run-name", name)
        assert r.code == 0, r.err
        found[name] = json.loads(r.out)
    cpu, gpu = found["cpu"], found["gpu"]
    assert gpu["images"] == cpu["images"] == 80 and [s["tag"] for s in gpu["stages"]] == [s["tag"] for s in cpu["stages"]]
    outputs = _activations(cifar.test_images)
    for c, g in zip(cpu["stages"], gpu["stages"], strict=True):
        assert g["dead_fraction"] == pytest.approx(c["dead_fraction"]) and g["mean"] == pytest.approx(c["mean"], rel=REL, abs=ABS)
        out = outputs[g["stage"] - 1]
        for cc, gc in zip(c["channels"], g["channels"], strict=True):
            assert gc["channel"] == cc["channel"]
            assert [h["image"] for h in gc["top"]] == [h["image"] for h in cc["top"]], (g["tag"], gc["channel"])
            assert [h["value"] for h in gc["top"]] == pytest.approx([h["value"] for h in cc["top"]], rel=REL, abs=ABS)
            for hit in gc["top"]:  # where the GPU found it, the CPU's output has that value
                assert out[hit["image"], gc["channel"], hit["y"], hit["x"]].item() == pytest.approx(hit["value"], rel=REL, abs=ABS)
    same_pictures(load_events(tmp_path / "logs" / "cpu"), load_events(tmp_path / "logs" / "gpu"),
                  sizes_only={f"{s['tag']}/top" for s in cpu["stages"]})


# ----------------------------------------------------------------------------- convlab predict


def test_each_attribution_on_cuda_is_the_cpus(shapes_classifier):
    from convlab import planning
    from convlab.config import resolve
    from convlab.data import make_shapes
    from convlab.predict.attributions import ATTRIBUTIONS, Classifier, attribute
    from convlab.trained import run_settings

    pixels, labels = make_shapes(8, seed=5)
    x = pixels.float() / 255
    maps = {}
    for run, device in DEVICES.items():
        classifier = Classifier(planning.plan(resolve("stack", run_settings(shapes_classifier) | {"run": {"device": device}})))
        assert next(classifier.model.parameters()).device.type == device
        maps[run] = {name: attribute(name, classifier, x, labels).cpu() for name in ATTRIBUTIONS}
    assert set(maps["gpu"]) == {"gradcam", "saliency", "occlusion"}
    for name, cpu in maps["cpu"].items():
        gpu = maps["gpu"][name]
        assert gpu.shape == cpu.shape == (8, 32, 32) and cpu.norm() > 0, name
        assert float((gpu - cpu).norm() / cpu.norm()) < 1e-4, name


def test_predict_on_cuda_says_and_shows_what_it_says_on_the_cpu(shapes_classifier, run_cli, tmp_path):
    from convlab.data import make_shapes

    pixels, _ = make_shapes(4, seed=3, split="test")
    files = []
    for i in range(4):
        files.append(tmp_path / f"shape{i}.png")
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy()).save(files[-1])
    said = {}
    for name, device in DEVICES.items():
        r = run_cli("predict", "--run", shapes_classifier, *files, "--json", "--trace", "1:0:3:3", "--device", device,
                    "--logdir", "logs", "--run-name", name)
        assert r.code == 0, r.err
        said[name] = json.loads(r.out)["images"]
    for c, g in zip(said["cpu"], said["gpu"], strict=True):
        assert (g["image"], g["predicted"], g["explained"]) == (c["image"], c["predicted"], c["explained"])
        probabilities = {t["class"]: t["probability"] for t in c["top"]}
        assert {t["class"]: t["probability"] for t in g["top"]} == pytest.approx(probabilities, abs=2e-6)
    cpu, gpu = load_events(tmp_path / "logs" / "cpu"), load_events(tmp_path / "logs" / "gpu")
    assert {"gradcam", "saliency", "occlusion"} <= set(gpu.Tags()["images"])
    same_pictures(cpu, gpu, exact={"00-input"})
    summary = json.loads((tmp_path / "logs" / "gpu" / "summary.json").read_text())
    assert summary["device"] == DEVICES["gpu"] and summary["predicted"] == 4


# ----------------------------------------------------------------------------- a Python model (the notebook's model=)


class Net(nn.Module):
    """A stem, a residual block (a call that is no stage of a stack), a pool, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.block = nn.Conv2d(6, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(4)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        x = self.pool(self.act(self.block(x) + x))
        return self.fc(self.flat(x))


def test_a_python_model_on_cuda_runs_and_trains_as_on_the_cpu(tmp_path, monkeypatch):
    import convlab

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    nets = {"cpu": Net()}
    nets["gpu"] = copy.deepcopy(nets["cpu"]).to(DEVICES["gpu"])
    runs, trained = {}, {}
    for name, net in nets.items():  # a model runs where its parameters are
        runs[name] = convlab.stack(model=net, dataset="shapes", batch_size=8, max_batches=2, run_name=name, quiet=True)
        trained[name] = convlab.train(model=net, dataset="shapes", batch_size=8, max_steps=4, eval_batches=1, shuffle=False,
                                      optimizer="sgd", run_name=f"train-{name}", quiet=True)
    assert runs["gpu"].summary["device"].startswith(DEVICES["gpu"]) and next(nets["gpu"].parameters()).device.type == DEVICES["gpu"]
    for found in (runs, trained):
        cpu, gpu = load_events(Path(found["cpu"].run_dir)), load_events(Path(found["gpu"].run_dir))
        same_scalars(cpu, gpu)
        same_pictures(cpu, gpu, exact={"00-input", "test/mistakes", "test/unsure", "test/confusion"})
    assert trained["gpu"].summary["steps"] == 4
    weights = {device: net.state_dict() for device, net in nets.items()}
    for name, value in weights["cpu"].items():
        assert torch.allclose(weights["gpu"][name].cpu(), value, rtol=REL, atol=ABS), name
