"""What ``convlab predict`` will do, decided before an image is decoded: the model (a training
run's, or a stack with its weights), its classes, what the model takes, the images named, and
every option checked against them (a target, a layer, a trace, --out); and that plan in words.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import dump_toml, read_config_file, resolve
from convlab.data import get_dataset
from convlab.data.folder import printable
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.modules import call_text
from convlab.predict.attributions import ATTRIBUTIONS, chosen, gradcam_stages, occlusion_window
from convlab.predict.images import Found, ModelInput, find_images
from convlab.predict.trace import TracePoint, parse_trace
from convlab.trained import run_settings

if TYPE_CHECKING:
    from convlab.planning import Plan

# An argument written as a call is a layer (Conv2d(3, 8, 3)); any other, or one that names a
# file or folder that exists, is an image.
LAYER_CALL = re.compile(r"\s*(?:torch\.nn\.|nn\.)?[A-Za-z_]\w*\s*\(.*\)\s*,?\s*", re.DOTALL)


def split_inputs(inputs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(layers, images) from ``convlab predict``'s arguments."""
    layers, images = [], []
    for text in inputs:
        is_layer = LAYER_CALL.fullmatch(text) is not None and not os.path.lexists(text)
        (layers if is_layer else images).append(text)
    return layers, images


def resolve_prediction(
    inputs: Sequence[str], overrides: Mapping[str, Mapping[str, Any]], *, run: str | Path | None = None,
    config: str | Path | None = None,
) -> Experiment:
    """The experiment ``convlab predict`` runs: the model of training run ``run`` (its layers,
    model.pt and how its images were read; flags override the latter), or the layers among
    ``inputs`` (or ``config``'s) with their ``--weights``; the images are the rest of ``inputs``."""
    layers, images = split_inputs(inputs)
    settings = {section: dict(values) for section, values in overrides.items()}
    settings.setdefault("predict", {})["paths"] = images or None
    stack = settings.setdefault("stack", {})
    if run is not None:
        given = [name for name, value in (("LAYER arguments", layers), ("--config", config), ("--weights", stack.get("weights")),
                                          ("--pretrained", stack.get("pretrained"))) if value]
        if given:
            raise ConfigError(f"--run {run} gives the layers and their weights; leave out {' and '.join(given)}")
        base = run_settings(run)
        for section, values in base.items():
            settings[section] = {**values, **{k: v for k, v in settings.get(section, {}).items() if v is not None}}
        return _without_kernels(resolve("predict", settings))
    if config is not None and "train" in read_config_file(config, "train"):
        folder = Path(config).parent
        raise ConfigError(f"{config} is a training run's config; give the run itself: convlab predict --run {folder} IMAGE...")
    if not layers and config is None and not stack.get("pretrained"):
        raise ConfigError("convlab predict needs a model: --run logs/train/train-... (a training run), or its layers (LAYER... or "
                          "--config FILE) with --weights FILE")
    stack["layers"] = layers or None
    return _without_kernels(resolve("predict", settings, config))


def _without_kernels(exp: Experiment) -> Experiment:
    """Unless --views says otherwise, every view of the image's maps but the kernels: they are
    not the image's, and their pictures cost more than reading a thousand images (a 64x32 5x5
    conv's is ~8 megapixels); ``convlab stack`` and ``train`` show them."""
    if exp.views.show is not None or (exp.data.dataset == "folder" and not Path(exp.data.data_dir).exists()):
        return exp  # (a folder that is not there: plan_prediction says so)
    from convlab.stack import output_shapes
    from convlab.views import VIEWS, selected_views

    shapes = output_shapes(exp.stages, get_dataset(exp.data.dataset).shape(exp.data))
    shown = [name for name in VIEWS if name != "kernels"
             and any(VIEWS[name] in selected_views(exp, s, out) for s, out in zip(exp.stages, shapes[1:]))]
    return dataclasses.replace(exp, views=dataclasses.replace(exp.views, show=",".join(shown) or "none"))


@dataclass(frozen=True)
class PredictPlan:
    """What a prediction will do, decided before any image is decoded."""

    stack: Plan
    classes: tuple[str, ...]
    model_input: ModelInput
    found: Found
    methods: tuple[str, ...]  # attribution methods, in the registry's order
    gradcam: tuple[int, int] | None  # (conv stage, the stage whose output it reads)
    target: int | None  # the class the attributions explain; None: each image's predicted class
    trace: TracePoint | None
    out: Path | None

    @property
    def exp(self) -> Experiment:
        return self.stack.exp

    @property
    def pictured(self) -> int:
        return min(self.exp.predict.pictures, len(self.found.files))


def plan_prediction(exp: Experiment, out: str | Path | None = None) -> PredictPlan:
    """Every check before an image is decoded: the model is a whole classifier with named
    classes, and each option fits it."""
    from convlab import planning
    from convlab.runs import check_logdir

    stack = exp.stack
    if stack.pretrained is not None:
        raise ConfigError(
            f"--pretrained {stack.pretrained} gives the first stages of {stack.pretrained}, which end in maps, not one score per "
            "class: convlab predict needs a whole classifier; give --run logs/train/train-... or LAYER... --weights FILE"
        )
    data = exp.data
    spec = get_dataset(data.dataset)
    if data.dataset == "folder" and not Path(data.data_dir).exists():
        raise ConfigError(
            f"the model's images were --dataset folder --data-dir {data.data_dir}, which is not there: convlab predict takes "
            "the class names (its subfolders) and the image size from it; point --data-dir at it"
        )
    classes = spec.class_names(data)
    if not classes:
        raise ConfigError(f"--dataset folder: {data.data_dir} has no class subfolders, so there are no class names to predict")
    p = planning.plan(exp)
    check_classes(p, data.dataset, classes)
    pr = exp.predict
    methods = chosen(p, pr.attributions)
    gradcam = gradcam_stages(p, pr.layer) if "gradcam" in methods or pr.layer is not None else None
    if pr.layer is not None and "gradcam" not in methods:
        raise ConfigError(f"--layer {pr.layer} picks the stage Grad-CAM reads, but --attributions {pr.attributions} leaves Grad-CAM out")
    target = None if pr.target is None else class_index(pr.target, classes)
    point = None if pr.trace is None else parse_trace(pr.trace, p)
    found = find_images(pr.paths)
    check_logdir(exp.run.logdir, exp.run.run_name)
    model_input = ModelInput(p.input_shape, data.dataset, spec.channel_mean(data))
    return PredictPlan(p, classes, model_input, found, tuple(methods), gradcam, target, point, check_out(out))


def check_classes(p: Plan, dataset: str, classes: Sequence[str]) -> None:
    """The last stage gives one score per class of the dataset the model was trained on."""
    n, last, shape = len(p.stages), p.stages[-1].cfg, p.output_shape
    stage = f"the last stage, {n} {call_text(last)},"
    if len(shape) != 1:
        raise ConfigError(f"{stage} gives maps {tuple(shape)} per image, not one score per class: convlab predict needs a whole "
                          f"classifier, ending in Flatten() and Linear(..., {len(classes)}) for {dataset}'s {len(classes)} classes")
    if shape[0] != len(classes):
        raise ConfigError(f"{stage} gives {shape[0]} scores per image, but {dataset} has {len(classes)} classes: was the model "
                          "trained on another --dataset?")


def class_index(name: str, classes: Sequence[str]) -> int:
    """``--target NAME``: a class of the model, by name (any case)."""
    if name in classes:
        return classes.index(name)
    folded = [c.lower() for c in classes]
    if name.lower() in folded:
        return folded.index(name.lower())
    close = difflib.get_close_matches(name, classes, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigError(f"--target {name!r} is not a class of the model; {hint}its classes: {', '.join(classes)}")


def check_out(out: str | Path | None) -> Path | None:
    """``--out FILE.png``: a PNG file name in a folder that exists."""
    if out is None:
        return None
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out writes a PNG sheet per image; give a file name ending in .png, not {printable(out.name)!r}")
    if out.is_dir():
        raise ConfigError(f"--out {printable(str(out))} is a folder; give a file name ending in .png")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"--out {printable(str(out))}: folder {printable(str(parent))} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {printable(str(out))}: folder {printable(str(parent))} is not writable; choose another path")
    return out


def sheet_paths(out: Path, count: int) -> list[Path]:
    """Where the sheets go: ``out`` itself for one image; for several, ``out``'s name with the
    image's index added: sheet.png -> sheet-0.png, sheet-1.png, ... (zero-padded to one width)."""
    if count == 1:
        return [out]
    digits = len(str(count - 1))
    return [out.with_name(f"{out.stem}-{i:0{digits}d}{out.suffix}") for i in range(count)]


def describe(pp: PredictPlan) -> list[str]:
    """What will run: the model, what it takes, its classes, the images, the attributions."""
    from convlab.planning import describe as describe_stack

    p, pr = pp.stack, pp.exp.predict
    c, h, w = p.input_shape
    mean = pp.model_input.mean
    lines = [describe_stack(p)]
    lines.append(f"the model takes {c}x{h}x{w} (CxHxW) images, read as its {pp.exp.data.dataset} training images were"
                 + (f" (their mean brightness {sum(mean) / len(mean):.2f})" if mean else "")
                 + f"; {len(pp.classes)} classes: {_classes_text(pp.classes)}")
    lines += list(pp.found.notes)
    files, shown = len(pp.found.files), pp.pictured
    which = "none shown (--pictures 0)" if not shown else "each shown" if shown == files else f"the first {shown} shown"
    lines.append(f"{files} image(s) to predict, {which} with every stage's maps" + (" and the attributions" if pp.methods else ""))
    if pp.methods:
        what = "each image's predicted class" if pp.target is None else f"class {pp.classes[pp.target]}"
        lines.append(f"attributions of {what}: {', '.join(method_text(pp, m) for m in pp.methods)}")
    if pp.trace is not None:
        lines.append(f"trace: stage {pp.trace.stage} {call_text(p.stages[pp.trace.stage - 1].cfg)}, channel {pp.trace.channel}, "
                     f"row {pp.trace.y}, column {pp.trace.x}")
    if pp.out is not None:
        paths = sheet_paths(pp.out, max(1, pp.pictured))
        lines.append(f"sheets: {paths[0]}" + (f" .. {paths[-1]} (one per image shown, by its index)" if len(paths) > 1 else ""))
    if pr.top_k > len(pp.classes):
        lines.append(f"top {pr.top_k}: the model has {len(pp.classes)} classes, all are listed")
    return lines


def _classes_text(classes: Sequence[str], limit: int = 12) -> str:
    return ", ".join(classes[:limit]) + (f" and {len(classes) - limit} more" if len(classes) > limit else "")


def method_text(pp: PredictPlan, name: str) -> str:
    p = pp.stack
    if name == "gradcam" and pp.gradcam is not None:
        conv, read = pp.gradcam
        after = f", read after stage {read} {call_text(p.stages[read - 1].cfg)}" if read != conv else ""
        return f"Grad-CAM at stage {conv} {call_text(p.stages[conv - 1].cfg)}{after}"
    if name == "occlusion":
        c, h, w = p.input_shape
        (_, ph, pw), (_, sh, sw) = occlusion_window(h, w, c)
        return f"occlusion (a {ph}x{pw} grey patch, slid by {sh})"
    return ATTRIBUTIONS[name].title



def dry_run_lines(pp: PredictPlan) -> list[str]:
    """``--dry-run``: the resolved config and what would run; nothing is decoded or written."""
    return [dump_toml(pp.exp).rstrip(), "", *describe(pp), f"device: {pp.stack.device}"]

