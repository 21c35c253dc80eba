"""convlab top: the running top-k against a brute-force sort of every activation, the crops against
a re-run of the stages on each patch, the dead fractions and means against a recount, and the
command's outputs read back (TensorBoard's own loader, the PNG sheets, --json)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from convlab.config import resolve
from convlab.data import ImageSet, load
from convlab.errors import ConfigError
from convlab.geometry import layer_padding, pool_stride
from convlab.layers import ShapeError
from convlab.pipeline import forward
from convlab.planning import plan
from convlab.stack import explain_stack, input_window
from convlab.stages import ConvConfig, PoolConfig
from convlab.top.patches import crop, patch_picture, patch_zoom
from convlab.top.plan import top_plan
from convlab.top.run import TopPass, top_pass
from convlab.top.running import ChannelTops
from convlab.train.run import train

from conftest import assert_user_error, images, load_events, only_run


def _experiment(layers: list[str], **top) -> object:
    return resolve("top", {"stack": {"layers": layers}, "data": {"dataset": "shapes", "batch_size": 7}, "top": top})


def _images(n: int = 40, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 images with flat blocks (many equal activations at neighbouring positions) and noise."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (n, 3, size // 4, size // 4), generator=g, dtype=torch.uint8)
    images = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)
    images[n // 2 :] = torch.randint(0, 256, (n - n // 2, 3, size, size), generator=g, dtype=torch.uint8)
    return images


def _image_set(images: torch.Tensor, labels: torch.Tensor | None = None) -> ImageSet:
    labels = torch.arange(len(images)) % 3 if labels is None else labels
    return ImageSet("test-images", "test", images, labels, ("a", "b", "c"))


def _outputs(p, x: torch.Tensor) -> list[torch.Tensor]:
    return forward([s.module.eval() for s in p.stages], x)


# ----------------------------------------------------------------------------- input windows

STACKS = {
    "padding, pool": ["Conv2d(3, 4, 5, padding=2)", "ReLU()", "MaxPool2d(2)", "Conv2d(4, 5, 3, padding=1)"],
    "stride, dilation": ["Conv2d(3, 4, 3, stride=2, padding=1)", "Tanh()", "Conv2d(4, 6, 3, dilation=2, padding=3)"],
    "same (even kernel), avgpool": ["Conv2d(3, 4, 4, padding='same')", "AvgPool2d(3, stride=2, padding=1)", "Conv2d(4, 4, (3, 1), stride=(1, 2))"],
    "ceil, pool dilation, batchnorm": ["Conv2d(3, 4, 3)", "BatchNorm2d(4)", "MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True)",
                                       "Conv2d(4, 3, 2, stride=2, padding=1)", "LeakyReLU(0.1)"],
}


@pytest.mark.parametrize("layers", STACKS.values(), ids=STACKS)
def test_the_window_has_the_receptive_field_and_jump_of_explain_stack(layers):
    exp = _experiment(layers)
    table = explain_stack(exp.stages, (3, 16, 16))
    for row in table.rows:
        window = input_window(exp.stages, (3, 16, 16), row.index)
        assert (window.field, window.jump) == (row.field, row.jump)


def _pad_value(cfg) -> float:
    """What a layer reads in its padding: zeros, or nothing at all for max pooling."""
    return float("-inf") if isinstance(cfg, PoolConfig) and cfg.mode == "max" else 0.0


def _rerun(stages, modules, sizes, image: torch.Tensor, index: int, top: int, left: int, field: tuple[int, int]) -> torch.Tensor:
    """Stages 1..index re-run on the cropped patch alone. Each window layer runs without padding: where
    the patch (in that layer's input) lies past the map, it holds the layer's padding value instead.
    ``sizes``: (H, W) of the input and of each stage's output, as the whole image gives them."""
    _, height, width = image.shape
    off = max(field) + 64
    padded = F.pad(image, (off, off, off, off))
    x = padded[:, off + top : off + top + field[0], off + left : off + left + field[1]].unsqueeze(0)
    start = [top, left]
    for cfg, module, size in zip(stages[:index], modules[:index], sizes):
        if isinstance(cfg, (ConvConfig, PoolConfig)):
            rows = torch.arange(x.shape[2]) + start[0]
            cols = torch.arange(x.shape[3]) + start[1]
            outside = ((rows < 0) | (rows >= size[0]))[:, None] | ((cols < 0) | (cols >= size[1]))[None, :]
            x = x.masked_fill(outside, _pad_value(cfg))
            (before_h, _), (before_w, _) = layer_padding(cfg)
            if isinstance(cfg, ConvConfig):
                x = F.conv2d(x, module.weight, module.bias, cfg.stride, 0, cfg.dilation, cfg.groups)
                stride = cfg.stride
            elif cfg.mode == "max":
                stride = pool_stride(cfg)
                x = F.max_pool2d(x, cfg.kernel_size, stride, 0, cfg.dilation)
            else:
                stride = pool_stride(cfg)
                x = F.avg_pool2d(x, cfg.kernel_size, stride, 0)
            for axis, before in enumerate((before_h, before_w)):
                moved = start[axis] + before
                assert moved % stride[axis] == 0  # the patch starts on an output of this layer
                start[axis] = moved // stride[axis]
        else:
            x = module(x)
    return x[0]


def _positions(size: int) -> list[int]:
    """Every output row (column) next to the edges, where the padding is read, and every third one inside."""
    return [i for i in range(size) if i < 2 or i >= size - 2 or i % 3 == 0]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("layers", STACKS.values(), ids=STACKS)
def test_rerunning_the_stages_on_each_crop_gives_the_recorded_activation(layers):
    exp = _experiment(layers)
    torch.manual_seed(3)
    p = plan(exp)
    modules = [s.module.eval() for s in p.stages]
    for m in modules:  # BatchNorm's running statistics, so it is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    images = torch.rand(1, 3, 16, 16) - 0.3  # negative values too: max pooling's padding must not win
    outputs = _outputs(p, images)
    sizes = [(16, 16), *(tuple(o.shape[2:]) for o in outputs)]
    checked = 0
    for index, output in enumerate(outputs, 1):
        window = input_window(exp.stages, (3, 16, 16), index)
        c, h, w = output.shape[1:]
        for n in range(len(images)):
            for y in _positions(h):
                for x in _positions(w):
                    top, left = window.at(y, x)
                    with torch.inference_mode():
                        patch = _rerun(exp.stages, modules, sizes, images[n], index, top, left, window.field)
                    assert patch.shape == (c, 1, 1), (index, y, x)
                    torch.testing.assert_close(patch[:, 0, 0], outputs[index - 1][n, :, y, x], rtol=1e-5, atol=1e-5)
                    checked += 1
    assert checked > 50


def test_a_window_that_is_one_pixel_off_does_not_reproduce_the_activation():
    """The check above can fail: the same re-run from a window moved by one pixel gives other values."""
    exp = _experiment(STACKS["padding, pool"])
    torch.manual_seed(0)
    p = plan(exp)
    modules = [s.module.eval() for s in p.stages]
    image = torch.rand(1, 3, 16, 16)
    outputs = _outputs(p, image)
    out = outputs[3][0, :, 3, 4]
    window = input_window(exp.stages, (3, 16, 16), 4)
    sizes = [(16, 16), *(tuple(o.shape[2:]) for o in outputs)]
    top, left = window.at(3, 4)
    with torch.inference_mode():
        right = _rerun(exp.stages, modules, sizes, image[0], 4, top, left, window.field)[:, 0, 0]
        wrong = _rerun(exp.stages, modules, sizes, image[0], 4, top, left + 2, window.field)[:, 0, 0]
    torch.testing.assert_close(right, out)
    assert not torch.allclose(wrong, out, atol=1e-3)


@pytest.mark.parametrize("layers, index, says", [
    (["Conv2d(3, 4, 3)", "Flatten()", "Linear(3600, 2)"], 2, "stage 2 Flatten() gives 3600 features per image, not a map (C, H, W)"),
    (["Conv2d(3, 4, 3)", "Softmax(dim=2)", "ReLU()"], 3, "stage 3 ReLU(): stage 2 Softmax(dim=2) mixes every position"),
    (["Conv2d(3, 4, 3)", "ConvTranspose2d(4, 4, 3, stride=2)", "ReLU()"], 3,
     "stage 3 ReLU(): stage 2 ConvTranspose2d(4, 4, 3, stride=2) goes back up"),
    (["Conv2d(3, 4, 3)", "Upsample(scale_factor=2)"], 2, "stage 2 Upsample(scale_factor=2.0): it goes back up"),
])
def test_a_stage_whose_outputs_have_no_one_window_is_named_with_why(layers, index, says):
    exp = _experiment(layers)
    with pytest.raises(ShapeError, match=re.escape(says)):
        input_window(exp.stages, (3, 32, 32), index)
    assert input_window(exp.stages, (3, 32, 32), 1).field == (3, 3)  # the stage before it has one
    assert input_window(_experiment(["Conv2d(3, 4, 3)", "Softmax(dim=1)"]).stages, (3, 32, 32), 2).field == (3, 3)


def test_the_crop_marks_what_lies_past_the_image():
    image = np.arange(3 * 6 * 6, dtype=np.uint8).reshape(3, 6, 6)
    window = input_window(_experiment(["Conv2d(3, 2, 5, padding=2)"]).stages, (3, 6, 6), 1)
    corner = crop(image, window, 0, 0)
    assert corner.pixels.shape == (5, 5, 3)
    assert corner.inside.sum() == 9 and corner.inside[2:, 2:].all()
    assert (corner.pixels[2:, 2:] == image[:, :3, :3].transpose(1, 2, 0)).all()
    assert (corner.pixels[:2] == 0).all()
    middle = crop(image, window, 3, 2)
    assert middle.inside.all() and (middle.pixels == image[:, 1:6, 0:5].transpose(1, 2, 0)).all()


# ----------------------------------------------------------------------------- the running top-k


def _brute_force(output: torch.Tensor, active: torch.Tensor, numbers: list[int], channels, k: int):
    """Every activation sorted by value, then image index (each image once per channel: its first
    largest position in row-major order); every image's dead flag; the means."""
    n, c, h, w = output.shape
    tops = []
    for ch in channels:
        best = []
        for i in range(n):
            values = output[i, ch].flatten().tolist()
            m = max(values)
            best.append((-m, numbers[i], divmod(values.index(m), w), m))
        best.sort(key=lambda t: (t[0], t[1]))
        tops.append([(image, y, x, value) for _, image, (y, x), value in best[:k]])
    dead = [sum(1 for i in range(n) if not (active[i, ch] > 0).any()) / n for ch in range(c)]
    means = output.double().mean(dim=(0, 2, 3)).tolist()
    return tops, dead, means


def _same_hits(rows, expected) -> None:
    """The same images and positions in the same order, the same values to float rounding (the pass
    runs its batches in convlab's layout, channels_last on the CPU, the brute force contiguous)."""
    assert [[(h.image, h.y, h.x) for h in row] for row in rows] == [[e[:3] for e in row] for row in expected]
    assert [[h.value for h in row] for row in rows] == [pytest.approx([e[3] for e in row], rel=1e-5, abs=1e-6) for row in expected]


def test_the_running_top_k_equals_a_brute_force_sort_with_ties():
    torch.manual_seed(1)
    out = torch.randn(50, 4, 3, 5)
    out[:, 1] = out[:, 1].round()  # many equal values, across images and within one image
    out[10:20, 2] = 7.0  # ten images tie at the top, every position of each
    out[:, 3] = 0.0  # a channel that is 0 everywhere: all tie, and it is dead on every image
    out[3, 0, 1, 1] = float("nan")  # NaN ranks last, never fatal
    tops = ChannelTops([0, 1, 2, 3], 6, 4, 5)
    for start in range(0, 50, 8):
        tops.update(out[start : start + 8], start)
    expected, dead, _ = _brute_force(out.nan_to_num(nan=float("-inf")), out, list(range(50)), range(4), 6)
    got = [[(h.image, h.y, h.x, h.value) for h in row] for row in tops.hits()]
    assert got == expected
    assert [h.image for h in tops.hits()[2]] == [10, 11, 12, 13, 14, 15]
    assert all((h.y, h.x) == (0, 0) for h in tops.hits()[2])
    assert tops.dead_fractions() == pytest.approx(dead) and tops.dead_fractions()[3] == 1.0


@pytest.fixture(scope="module")
def pass_case():
    layers = ["Conv2d(3, 6, 3, padding=1)", "BatchNorm2d(6)", "ReLU()", "MaxPool2d(2)", "Conv2d(6, 5, 3, stride=2)", "ReLU()"]
    exp = resolve("top", {"stack": {"layers": layers, "max_channels": 4}, "data": {"dataset": "shapes", "batch_size": 7},
                          "top": {"k": 5}, "run": {"device": "cpu"}})
    torch.manual_seed(0)
    p = plan(exp)
    bn = p.stages[1].module
    bn.running_mean.fill_(0.3)  # pushes some channels below 0 on most images: dead fractions between 0 and 1
    images = _images(40)
    return exp, p, images


def test_one_pass_equals_brute_force_over_every_activation(pass_case):
    exp, p, images = pass_case
    tp = top_plan(p, len(images))
    assert [s.index for s in tp.stages] == [1, 2, 3, 4, 5, 6]
    assert [s.active for s in tp.stages] == [3, 3, 3, 4, 6, 6]  # the conv and its BatchNorm are dead after the ReLU
    result = top_pass(tp, _image_set(images))
    outputs = _outputs(p, images.float() / 255)
    for st in result.stages:
        s = st.stage
        expected, dead, means = _brute_force(outputs[s.index - 1], outputs[s.active - 1], list(range(len(images))), s.channels, 5)
        _same_hits(st.hits, expected)
        assert st.dead_fractions == pytest.approx(dead)
        assert st.means == pytest.approx(means, rel=1e-5, abs=1e-6)
    assert any(0 < f < 1 for st in result.stages for f in st.dead_fractions)
    # Every image a list points at is kept, and no other.
    assert set(result.store.images) == {h.image for st in result.stages for row in st.hits for h in row}


def test_with_a_class_only_its_images_count(pass_case):
    exp, p, images = pass_case
    labels = torch.arange(len(images)) % 3
    tp = top_plan(p, len(images))
    tp = dataclasses.replace(tp, stack=dataclasses.replace(p, exp=dataclasses.replace(exp, top=dataclasses.replace(exp.top, class_name="B"))))
    result = top_pass(tp, _image_set(images, labels))
    assert result.images == int((labels == 1).sum()) and result.source == "test-images/test, class b"
    outputs = _outputs(p, images.float() / 255)
    chosen = (labels == 1).nonzero().flatten()
    for st in result.stages:
        s = st.stage
        out = outputs[s.index - 1][chosen]
        expected, dead, _ = _brute_force(out, outputs[s.active - 1][chosen], chosen.tolist(), s.channels, 5)
        _same_hits(st.hits, expected)  # the pass ran smaller batches: the class's images of each
        assert st.dead_fractions == pytest.approx(dead)


def test_memory_is_bounded_by_k_times_channels_not_by_the_images(pass_case):
    exp, p, _ = pass_case
    tp = top_plan(p, 700)
    top = TopPass(tp, "cpu")
    kept = []
    for start in range(0, 700, 7):
        batch = _images(7, seed=start)
        top.update(batch, _outputs(p, batch.float() / 255), start)
        kept.append(len(top.store))
    bound = sum(len(s.channels) for s in tp.stages) * tp.k
    assert max(kept) <= bound
    assert all(t.values.shape == (len(s.channels), tp.k) for t, s in zip(top.tops, tp.stages))


# ----------------------------------------------------------------------------- the command

LAYERS = ("Conv2d(3, 4, 3, padding=1)", "ReLU()", "MaxPool2d(2)", "Conv2d(4, 6, 3, stride=2)", "Flatten()", "Linear(294, 10)")


def _activations(layers, images_nhwc: np.ndarray, weights: Path | None = None) -> list[torch.Tensor]:
    """Every stage's output for these images, from the same seeded (or loaded) network the command builds."""
    stack = {"layers": list(layers)} | ({"weights": str(weights)} if weights else {})
    p = plan(resolve("stack", {"stack": stack, "run": {"device": "cpu"}}))
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float() / 255
    return _outputs(p, x)


def _find(sheet: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    """Where ``tile`` lies in ``sheet``, pixel for pixel."""
    from numpy.lib.stride_tricks import sliding_window_view

    th, tw, _ = tile.shape
    rows = sliding_window_view(sheet[: sheet.shape[0] - th + 1].reshape(-1, sheet.shape[1] * 3), tw * 3, axis=1)[:, ::3]
    candidates = np.argwhere((rows == tile[0].reshape(-1)).all(axis=2))
    return [(int(y), int(x)) for y, x in candidates if (sheet[y : y + th, x : x + tw] == tile).all()]


def test_each_stage_gets_a_sheet_of_its_top_patches_and_the_json_says_which(cifar, run_cli, tmp_path):
    r = run_cli("top", *LAYERS, "--dataset", "cifar10", "--data-dir", cifar.root, "--batch-size", "16", "--k", "3",
                "--stages", "1,4", "--channels", "0,2", "--out", "sheets", "--json", "--device", "cpu")
    assert r.code == 0, r.err
    result = json.loads(r.out)  # stdout holds the JSON and nothing else
    run_dir = only_run(tmp_path / "logs")
    assert Path(result["run_dir"]).resolve() == run_dir.resolve() and result["images"] == 80 and result["k"] == 3
    assert [s["tag"] for s in result["stages"]] == ["01-conv2d", "04-conv2d"]
    outputs = _activations(LAYERS, cifar.test_images)
    acc = load_events(run_dir)
    for stage in result["stages"]:
        assert [c["channel"] for c in stage["channels"]] == [0, 2]
        out = outputs[stage["stage"] - 1]
        assert stage["dead_fraction"] == pytest.approx((out.flatten(2).amax(2) <= 0).double().mean(0).tolist())
        assert stage["mean"] == pytest.approx(out.double().mean((0, 2, 3)).tolist(), rel=1e-5, abs=1e-7)
        (logged,) = images(acc, f"{stage['tag']}/top")
        png = np.asarray(Image.open(tmp_path / "sheets" / f"{stage['tag']}-top.png").convert("RGB"))
        assert logged.step == 0 and (logged.pixels == png).all()
        window = input_window(_experiment(list(LAYERS)).stages, (3, 32, 32), stage["stage"])
        assert stage["receptive_field"] == list(window.field) and stage["window_start"] == list(window.start)
        for channel in stage["channels"]:
            values = [h["value"] for h in channel["top"]]
            assert values == sorted(values, reverse=True) and len({h["image"] for h in channel["top"]}) == 3
            per_image = out[:, channel["channel"]].flatten(1).amax(1)
            assert values == pytest.approx(per_image.sort(descending=True).values[:3].tolist(), rel=1e-5)
            for hit in channel["top"]:
                assert out[hit["image"], channel["channel"], hit["y"], hit["x"]].item() == pytest.approx(hit["value"], rel=1e-5)
                # The sheet shows that image's window around (y, x), upscaled, pixel for pixel.
                patch = crop(cifar.test_images[hit["image"]].transpose(2, 0, 1), window, hit["y"], hit["x"])
                assert _find(logged.pixels, patch_picture(patch, patch_zoom(window.field))), hit
    assert {"01-conv2d/top/text_summary", "top/text_summary"} <= set(acc.Tags()["tensors"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["tags"] == ["01-conv2d/top", "04-conv2d/top"]
    again = run_cli("top", "--config", run_dir / "config.toml", "--data-dir", cifar.root, "--json", "--run-name", "again")
    assert json.loads(again.out)["stages"] == result["stages"]  # config.toml repeats the run


def test_the_terminal_table_marks_dead_channels(cifar, run_cli, tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.0, -100.0, 0.0, 0.0]))  # channel 1 is never above 0 after the ReLU
    torch.save(torch.nn.Sequential(conv).state_dict(), tmp_path / "w.pt")
    r = run_cli("top", "Conv2d(3, 4, 3)", "ReLU()", "--weights", "w.pt", "--dataset", "cifar10", "--data-dir", cifar.root,
                "--k", "2", "--stages", "1", "--device", "cpu")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "01-conv2d Conv2d(3, 4, 3): receptive field 3x3, jump 1; dead channels 1 of 4 (1)" in lines
    rows = {line.split()[0]: line for line in lines if line[:7].strip().isdigit() and "%" in line}
    assert rows["1"].endswith("dead") and "100%" in rows["1"]
    assert not any(rows[c].endswith("dead") for c in ("0", "2", "3"))
    assert "   1  01-conv2d  1 of 4 dead  mean dead fraction 25.0%  Conv2d(3, 4, 3)" in lines


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs")
    layers = ["Conv2d(3, 4, 5, stride=2, padding=2)", "ReLU()", "MaxPool2d(4)", "Flatten()", "Linear(64, 10)"]
    exp = resolve("train", {"stack": {"layers": layers}, "data": {"dataset": "shapes", "batch_size": 16},
                            "train": {"max_steps": 3, "eval_batches": 1, "top": True},
                            "run": {"logdir": str(logdir), "device": "cpu"}})
    return Path(train(exp)["run_dir"]), layers


def test_train_top_logs_the_top_patches_of_the_trained_model_at_its_last_step(train_run):
    run_dir, _ = train_run
    acc = load_events(run_dir)
    for tag in ("01-conv2d/top", "02-relu/top", "03-maxpool2d/top"):
        (logged,) = images(acc, tag)
        assert logged.step == 3 and logged.width > 100
    assert [e.step for e in acc.Tensors("top/text_summary")] == [3]
    assert "01-conv2d/top" in json.loads((run_dir / "summary.json").read_text())["tags"]


def test_top_of_a_training_run_uses_its_model_pt(train_run, run_cli):
    run_dir, layers = train_run
    r = run_cli("top", "--run", run_dir, "-n", "2", "--batch-size", "16", "--k", "2", "--stages", "1", "--json", "--device", "cpu")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["source"] == "shapes/test" and result["images"] == 32
    exp = resolve("stack", {"stack": {"layers": layers}, "data": {"dataset": "shapes"}})
    x = load(exp.data, 0).batch(0, 32)
    outputs = _activations(layers, x.permute(0, 2, 3, 1).numpy(), weights=run_dir / "model.pt")
    for channel in result["stages"][0]["channels"]:
        for hit in channel["top"]:
            assert outputs[0][hit["image"], channel["channel"], hit["y"], hit["x"]].item() == pytest.approx(hit["value"], rel=1e-5)
    saved = (Path(result["run_dir"]) / "config.toml").read_text()
    assert f'weights = "{run_dir / "model.pt"}"' in saved


@pytest.mark.parametrize("args, says", [
    (("--stages", "5"), "--stages 5: stage 5 Flatten() gives 294 features per image, not a map (C, H, W)"),
    (("--stages", "9"), "--stages 9: the stack has 6 stage(s) (1..6)"),
    (("--channels", "0,5"), "--channels 5: stage 1 Conv2d(3, 4, 3, padding=1) has 4 channel(s) (0..3)"),
    (("--k", "0"), "k must be at least 1, got 0"),
    (("--k", "17", "-n", "1", "--batch-size", "16"), "--k 17: the pass counts 16 image(s)"),
    (("--class", "unicorn"), "--class unicorn: cifar10 has no class of that name; its classes: airplane, automobile"),
    (("--run", "nowhere"), "--run and --config both give the network"),
    (("--out", "file.txt"), "--out file.txt is a file; give a directory for the PNG sheets"),
])
def test_bad_input_is_one_line_and_writes_nothing(cifar, run_cli, tmp_path, args, says):
    (tmp_path / "file.txt").write_text("not a directory")
    (tmp_path / "model.toml").write_text('command = "stack"\n[stack]\nlayers = [' + ", ".join(f'"{x}"' for x in LAYERS) + "]\n")
    source = ("--config", "model.toml") if "--run" in args else LAYERS
    r = run_cli("top", *source, "--dataset", "cifar10", "--data-dir", cifar.root, "--device", "cpu", *args)
    assert_user_error(r, says)
    assert not (tmp_path / "logs").exists()


def test_a_stage_mixing_every_position_and_a_run_without_model_pt_are_refused(run_cli, tmp_path, train_run):
    r = run_cli("top", "Conv2d(3, 4, 3)", "Softmax(dim=2)", "--dataset", "shapes", "--stages", "2")
    assert_user_error(r, "stage 2 Softmax(dim=2): it mixes every position of its input (a whole row or column), so its outputs have no input window")
    run_dir, _ = train_run
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.toml").write_text((run_dir / "config.toml").read_text())
    assert_user_error(run_cli("top", "--run", copy, "--dataset", "shapes"), "has no model.pt")
    assert_user_error(run_cli("top", "--run", run_dir, "ReLU()"), "gives the network (its layers and model.pt); leave out LAYER arguments")
    assert not (tmp_path / "logs").exists()


def test_a_signal_during_the_pass_stops_it_and_writes_nothing(cifar, run_cli, tmp_path, monkeypatch):
    real_update, seen = TopPass.update, []

    def update_then_signal(self, *args):
        real_update(self, *args)
        seen.append(1)
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TopPass, "update", update_then_signal)
    r = run_cli("top", *LAYERS, "--dataset", "cifar10", "--data-dir", cifar.root, "--batch-size", "16", "--out", "sheets")
    assert r.code == 143, (r.out, r.err)
    assert r.err.splitlines() == ["convlab: interrupted by SIGTERM during the pass, after 1 of 5 batch(es); nothing was written"]  # the second batch, cut short, is not counted
    assert not (tmp_path / "logs").exists() and not (tmp_path / "sheets").exists()


def test_a_training_runs_config_points_to_run(train_run, run_cli):
    run_dir, _ = train_run
    assert_user_error(run_cli("top", "--config", run_dir / "config.toml"),
                      f"is a training run's experiment; for the network that run trained, give its directory: convlab top --run {run_dir}")


def test_a_dry_run_says_what_it_would_show_and_writes_nothing(run_cli, tmp_path):
    r = run_cli("top", *LAYERS, "--dataset", "shapes", "-n", "3", "--dry-run")
    assert r.code == 0, r.err
    assert "top 9 patches per channel over 192 image(s) of shapes/test" in r.out
    assert "04-conv2d Conv2d(4, 6, 3, stride=2): 6 channel(s), shown 0..5; receptive field 8x8, jump 4x4; dead: never above 0 after itself" in r.out
    assert "dry run: nothing was loaded or written" in r.out and not (tmp_path / "logs").exists()


def test_pretrained_early_layers_see_the_images_normalised_and_the_patches_as_loaded(cifar, run_cli, tmp_path, monkeypatch):
    """--pretrained NAME --upto K has no classes and needs none; its values are those of torchvision's model on
    the normalised images, while the patches are cropped from the images as loaded."""
    import torchvision

    from convlab.pretrained import PRETRAINED

    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    torch.manual_seed(1)
    model = torchvision.models.resnet18().eval()
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(model.state_dict(), home / "hub" / "checkpoints" / PRETRAINED["resnet18"].file_name)
    r = run_cli("top", "--pretrained", "resnet18", "--upto", "4", "--data-dir", cifar.root, "--k", "2", "--channels", "0,1",
                "--out", "sheets", "--json", "--device", "cpu")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert [s["tag"] for s in result["stages"]] == ["01-conv2d", "02-batchnorm2d", "03-relu", "04-maxpool2d"]
    spec = PRETRAINED["resnet18"]
    x = torch.from_numpy(cifar.test_images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    stage = result["stages"][3]
    assert stage["receptive_field"] == [11, 11] and stage["jump"] == [4, 4] and stage["window_start"] == [-5, -5]
    for channel in stage["channels"]:
        for hit in channel["top"]:
            assert pooled[hit["image"], channel["channel"], hit["y"], hit["x"]].item() == pytest.approx(hit["value"], rel=1e-4, abs=1e-5)
    window = input_window(_experiment(["Conv2d(3, 64, 7, stride=2, padding=3)", "BatchNorm2d(64)", "ReLU()",
                                       "MaxPool2d(3, stride=2, padding=1)"]).stages, (3, 32, 32), 4)
    sheet = np.asarray(Image.open(tmp_path / "sheets" / "04-maxpool2d-top.png").convert("RGB"))
    hit = stage["channels"][0]["top"][0]
    patch = crop(cifar.test_images[hit["image"]].transpose(2, 0, 1), window, hit["y"], hit["x"])
    assert _find(sheet, patch_picture(patch, patch_zoom(window.field)))


def test_train_top_is_refused_for_a_python_model():
    from convlab.train.plan import plan_training

    exp = resolve("train", {"data": {"dataset": "shapes"}, "train": {"top": True}}, model=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(3600, 10))
    with pytest.raises(ConfigError, match="top patches .--top. are worked out for a stack's stages"):
        plan_training(exp, model)
