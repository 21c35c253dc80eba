"""pipeline.py: the plan (every check before data), the stage chain and the view registry."""

from __future__ import annotations

import json

import pytest
import torch

from convlab import pipeline, views
from convlab.config import resolve
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.stages import STAGE_KINDS

from conftest import assert_user_error, images, load_events, only_run


def shapes_exp(command: str = "conv", layer: dict | None = None, **sections) -> Experiment:
    data = {"dataset": "shapes", "batch_size": 8, "max_batches": 2, **sections.pop("data", {})}
    return resolve(command, {command: layer or {}, "data": data, **sections})


def test_plan_leaves_the_global_rng_as_it_was():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    pipeline.plan(shapes_exp(run={"seed": 7}))
    assert torch.equal(torch.rand(4), expected)


def test_plan_builds_the_same_weights_for_a_seed_and_others_for_another():
    a = pipeline.plan(shapes_exp(run={"seed": 1})).module.weight
    b = pipeline.plan(shapes_exp(run={"seed": 1})).module.weight
    c = pipeline.plan(shapes_exp(run={"seed": 2})).module.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_plan_chains_the_shapes_of_every_stage():
    conv = resolve("conv", {"conv": {"out_channels": 4, "kernel_size": 3}}).layer
    pool = resolve("pool", {"pool": {"kernel_size": 2}}).layer
    exp = Experiment(command="stack", stages=(conv, pool), data=shapes_exp().data)
    p = pipeline.plan(exp)
    assert [(s.input_shape, s.output_shape) for s in p.stages] == [((3, 32, 32), (4, 30, 30)), ((4, 30, 30), (4, 15, 15))]
    assert p.output_shape == (4, 15, 15) and p.num_steps == 2
    x = torch.rand(2, 3, 32, 32)
    outputs = pipeline.forward([s.module for s in p.stages], x)
    assert [tuple(y.shape) for y in outputs] == [(2, 4, 30, 30), (2, 4, 15, 15)]
    assert torch.equal(outputs[1], torch.nn.Sequential(*(s.module for s in p.stages))(x))


@pytest.mark.parametrize(
    "command, layer, show, tags",
    [
        ("conv", {}, None, ["input", "output", "channels", "kernels"]),
        ("pool", {}, None, ["input", "maxpool", "channels"]),
        ("pool", {"unpool": True}, "none", ["input", "maxpool", "unpool"]),
        ("pool", {"mode": "avg"}, "stats", ["input", "avgpool"]),
        ("conv", {}, "kernels,stats", ["input", "output", "kernels"]),
    ],
)
def test_logged_tags_come_from_the_view_registry(command, layer, show, tags):
    p = pipeline.plan(shapes_exp(command, layer, views={"show": show}))
    assert pipeline.logged_tags(p) == tags


@pytest.mark.parametrize(
    "command, show, message",
    [
        ("conv", "channels,nope", "unknown view 'nope'; choose from channels, kernels, stats (or none)"),
        ("pool", "kernels", "view 'kernels' does not apply to 'convlab pool' (a pool layer has no weights)"),
        ("conv", "none,stats", "views: 'none' cannot be combined with other views"),
    ],
)
def test_views_are_checked_before_anything_loads(command, show, message):
    with pytest.raises(ConfigError) as info:
        pipeline.plan(shapes_exp(command, views={"show": show}))
    assert message in str(info.value)


def test_a_new_view_is_one_registry_entry(run_cli, tmp_path, monkeypatch):
    def brightest(s: views.StageOutput) -> list[views.Record]:
        return [("images", "brightest", s.output.amax(1, keepdim=True).clamp(0, 1)), ("scalar", "output/peak", s.output.max().item())]

    entry = views.View("brightest", ("conv",), "step", ("brightest",), brightest, "each pixel's largest channel")
    monkeypatch.setitem(views.VIEWS, "brightest", entry)
    r = run_cli("conv", "--dataset", "shapes", "-b", "8", "-n", "3", "--logdir", "logs", "--views", "brightest", "-q")
    assert r.code == 0, r.err
    run_dir = only_run(tmp_path / "logs")
    acc = load_events(run_dir)
    logged = images(acc, "brightest")
    assert [im.step for im in logged] == [0, 1, 2] and (logged[0].height, logged[0].width) == (30, 8 * 30)
    assert [s.step for s in acc.Scalars("output/peak")] == [0, 1, 2]
    assert json.loads((run_dir / "summary.json").read_text())["tags"] == ["input", "output", "brightest"]
    assert_user_error(run_cli("pool", "--dataset", "shapes", "--views", "brightest"), "does not apply to 'convlab pool'")


def test_views_registry_entries_are_complete():
    for name, view in views.VIEWS.items():
        assert view.name == name and view.when in ("step", "once") and view.kinds and view.help
        # Every kind a view names is a stage kind; a stack's kinds joined conv and pool (issue 12).
        assert set(view.kinds) <= set(STAGE_KINDS) and set(view.outputs) <= {"map", "vector"}


def test_run_returns_the_summary_and_reports(tmp_path):
    lines = []

    class Collect(pipeline.SilentReporter):
        def info(self, text: str) -> None:
            lines.append(text)

    exp = shapes_exp(run={"logdir": str(tmp_path / "logs"), "run_name": "r"})
    summary = pipeline.run(exp, Collect())
    assert summary["status"] == "complete" and summary["steps"] == 2 and summary["planned_steps"] == 2
    assert summary["input_shape"] == [3, 32, 32] and summary["output_shape"] == [6, 30, 30]
    assert any(line.startswith("module: Conv2d(3, 6, kernel_size=(3, 3)") for line in lines)
    assert f"run: {tmp_path / 'logs' / 'r'}" in lines
    saved = json.loads((tmp_path / "logs" / "r" / "summary.json").read_text())
    assert saved == summary


def test_the_memory_guard_counts_each_stage():
    exp = shapes_exp(layer={"out_channels": 70_000, "padding": 100}, data={"batch_size": 64})
    with pytest.raises(ConfigError, match=r"one batch of 64 outputs of \(70000, 230, 230\)"):
        pipeline.plan(exp)


@pytest.mark.parametrize("zoom", ["300", "2147483647"])
def test_a_zoom_past_any_picture_is_refused_up_front(run_cli, tmp_path, zoom):
    assert_user_error(run_cli("conv", "--dataset", "shapes", "--zoom", zoom), f"--zoom {zoom} would make the channels view")
    assert not (tmp_path / "logs").exists()


def test_a_zoom_for_the_kernels_alone_counts_the_kernels(run_cli):
    # 3x3 kernels of 6 x 1 channels at zoom 1000: the channels view is off, the kernels view is not.
    r = run_cli("conv", "--dataset", "shapes", "--views", "kernels", "--zoom", "1000", "--groups", "3", "-c", "6")
    assert_user_error(r, "--zoom 1000 would make the kernels view")


def test_a_runs_batches_take_one_intra_op_thread_on_the_cpu_and_give_the_count_back(run_cli):
    """planning.batch_threads: one thread on the CPU while the batches run, the caller's count after,
    an error included; a run (here conv) leaves it as it was."""
    import torch

    from convlab.planning import batch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with batch_threads("cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with batch_threads("cuda"):
            assert torch.get_num_threads() == 2
        with pytest.raises(KeyError), batch_threads("cpu"):
            raise KeyError("stopped")
        assert torch.get_num_threads() == 2
        assert run_cli("conv", "--dataset", "shapes", "-n", "2", "-b", "4", "--logdir", "logs", "-q").code == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
