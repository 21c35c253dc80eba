"""``convlab predict``: the model (a training run's, or a stack with its weights), your images in
batches through it, and the run that shows what it said and why.

Everything that can be wrong with what was asked (the model, its classes, a target, a layer, a
trace, the images named, --out) is found by :func:`plan_prediction` before an image is decoded;
an image named on the command line is read once before anything is written, and the run
directory is made only once the first batch is in hand. Step ``i`` of the run is the ``i``-th
image read: the first ``--pictures`` images get every picture (the input as seen, every stage,
each attribution, the probabilities and what was done to them), every image a row of
``predictions.csv``, and a labelled folder its accuracy and confusion at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import convlab.predict.attributions as attr
import convlab.predict.report as report
from convlab.config import ConfigError, Experiment, dump_toml, read_config_file, resolve
from convlab.data import DataError, get_dataset
from convlab.data.folder import UNREADABLE, printable
from convlab.interrupts import closes_on_signals
from convlab.modules import call_text
from convlab.predict.images import Batch, Found, ModelInput, find_images, unreadable_reason
from convlab.predict.report import Prediction, PredictionsFile, Tally
from convlab.predict.trace import TracePoint, parse_trace
from convlab.trained import run_settings

if TYPE_CHECKING:
    from convlab.pipeline import Reporter
    from convlab.planning import Plan

# An argument written as a call is a layer (Conv2d(3, 8, 3)); any other, or one that names a
# file or folder that exists, is an image.
LAYER_CALL = re.compile(r"\s*(?:torch\.nn\.|nn\.)?[A-Za-z_]\w*\s*\(.*\)\s*,?\s*", re.DOTALL)
PREDICTIONS_FILE = "predictions.csv"


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
        raise ConfigError("convlab predict needs a model: --run logs/train-... (a training run), or its layers (LAYER... or "
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
            "class: convlab predict needs a whole classifier; give --run logs/train-... or LAYER... --weights FILE"
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
    methods = attr.chosen(p, pr.attributions)
    gradcam = attr.gradcam_stages(p, pr.layer) if "gradcam" in methods or pr.layer is not None else None
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
        (_, ph, pw), (_, sh, sw) = attr.occlusion_window(h, w, c)
        return f"occlusion (a {ph}x{pw} grey patch, slid by {sh})"
    return attr.ATTRIBUTIONS[name].title


# ----------------------------------------------------------------------------- the run


class _Images:
    """What a run's log reads of its dataset, for the images given to convlab predict."""

    name, split = "images", "given"

    def __init__(self, pp: PredictPlan):
        self.pp = pp
        self.classes = pp.classes

    def __len__(self) -> int:
        return len(self.pp.found.files)

    def describe(self) -> str:
        return "\n".join(describe(self.pp)[1:])


@closes_on_signals
def predict(pp: PredictPlan, reporter: Reporter | None = None, *, records: bool = False) -> dict[str, Any]:
    """Predict every image, log the run, write the sheets; returns the summary (also in
    summary.json), with every image's record under "images" when ``records``."""
    import torch

    from convlab.pipeline import RunLog, SilentReporter

    reporter = reporter or SilentReporter()
    pp_exp = pp.exp
    # An image named on the command line is read before anything is written: one that cannot
    # be is an error, where a file found in a folder is skipped and named.
    for file in (f for f in pp.found.files if f.given):
        try:
            pp.model_input.see(file)
        except Exception as exc:
            if not _unreadable(exc):
                raise
            raise DataError(f"{file.name} cannot be read: {unreadable_reason(exc)}") from None
    from convlab.predict.images import batches

    stream = batches(pp.found.files, pp.model_input, pp_exp.data.batch_size)
    tally = Tally(pp.classes, records=[] if records else None)
    first = None
    for batch in stream:
        tally.skipped += batch.skipped
        if batch.seen:
            first = batch
            break
    if first is None:
        raise DataError(f"none of the {len(pp.found.files)} image file(s) could be read: "
                        + ", ".join(f"{name} ({why})" for name, why in tally.skipped[:3]))

    log = RunLog(pp.stack, _Images(pp), pp.pictured)
    threads = torch.get_num_threads()
    predictions = None
    try:
        log.start()
        run = _Run(pp, log, tally, reporter)
        predictions = (log.run_dir / PREDICTIONS_FILE).open("w", encoding="utf-8", newline="")
        run.table = PredictionsFile(predictions)
        for line in describe(pp):
            reporter.info(line)
        reporter.info(f"run: {log.run_dir}")
        if pp.stack.device == "cpu":
            torch.set_num_threads(1)  # a thread reads the next batch meanwhile (see pipeline.run)
        started = time.perf_counter()
        batch_size = pp_exp.data.batch_size
        chunks = -(-len(pp.found.files) // batch_size)  # the batches of files read (a skipped file leaves a batch short)
        with contextlib.ExitStack() as stack:
            advance = None
            for k, batch in enumerate(_chain(first, stream, tally)):
                if advance is None and batch.start >= pp.pictured:
                    # The bar starts once the pictured images are printed: they would break it.
                    advance = stack.enter_context(reporter.progress(chunks - k, f"predict, {batch_size} images a batch"))
                run.batch(batch)
                if advance is not None:
                    advance(status=f"{tally.predicted:,} images")
        seconds = time.perf_counter() - started
        predictions.close()
        run.finish(seconds)
        for line in report.summary_lines(tally, seconds):
            reporter.info(line)
        summary = log.complete(seconds)
    except BaseException as exc:
        if predictions is not None:
            with contextlib.suppress(OSError):
                predictions.close()
        log.stopped(exc)
        raise
    finally:
        torch.set_num_threads(threads)
    return {**summary, **({"images": tally.records} if records else {})}


def _unreadable(exc: BaseException) -> bool:
    from PIL import Image

    return isinstance(exc, (*UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning))


def _chain(first: Batch, stream: Any, tally: Tally) -> Any:
    yield first
    for batch in stream:
        tally.skipped += batch.skipped
        yield batch


class _Run:
    """One prediction run's work per batch, and its end."""

    def __init__(self, pp: PredictPlan, log: Any, tally: Tally, reporter: Reporter):
        import torch

        self.pp, self.log, self.tally, self.reporter = pp, log, tally, reporter
        p = pp.stack
        self.classifier = attr.Classifier(p, pp.exp.predict.layer)
        self.classifier.model.to(memory_format=p.memory_format)  # its weights in the batches' layout
        self.labels = {name: i for i, name in enumerate(pp.classes)}
        self.sheets = sheet_paths(pp.out, max(1, pp.pictured)) if pp.out is not None else []
        self.table: PredictionsFile | None = None
        self.torch = torch
        s = log.summary
        s.update(command="predict", steps=0, trained_on=pp.exp.data.dataset, classes=list(pp.classes),
                 images=len(pp.found.files), pictured=pp.pictured, attributions=list(pp.methods),
                 tags=[*s["tags"], *pp.methods, "probabilities", "seen", *(["trace"] if pp.trace else [])],
                 predictions=PREDICTIONS_FILE)

    def batch(self, batch: Batch) -> None:
        torch = self.torch
        pp, p = self.pp, self.pp.stack
        k = min(pp.exp.predict.top_k, len(pp.classes))
        with torch.inference_mode():
            probs = self.classifier.probabilities(p.batch_input(batch.pixels)).float()
            values, indices = probs.topk(k, dim=1)
        values, indices = values.tolist(), indices.tolist()
        preds = []
        for j, seen in enumerate(batch.seen):
            label = self.labels.get(seen.file.label) if seen.file.label is not None else None
            top = [(pp.classes[c], v) for c, v in zip(indices[j], values[j])]
            preds.append(Prediction(batch.start + j, seen, top, label, indices[j][0]))
        shown = [pred for pred in preds if pred.index < pp.pictured]
        if shown:
            self.show(batch, shown)
        for pred in preds:
            self.tally.add(pred)
            self.table.add(pred)
        self.log.summary["steps"] = batch.start + len(batch.seen)

    def show(self, batch: Batch, preds: list[Prediction]) -> None:
        """Every picture and text of the images shown, and their terminal blocks."""
        import convlab.predict.pictures as pictures
        from convlab.pipeline import _forward
        from convlab.predict.trace import trace, trace_lines

        torch, pp, p, writer = self.torch, self.pp, self.pp.stack, self.log.writer
        rows = [pred.index - batch.start for pred in preds]
        x = batch.pixels[rows].to(p.device).float().div_(255)
        targets = torch.tensor([pp.target if pp.target is not None else pred.predicted for pred in preds])
        maps = {}
        for name in pp.methods:
            scaled, peaks = attr.shown(attr.attribute(name, self.classifier, x, targets))
            maps[name] = (scaled.cpu().numpy(), peaks)
        modules = [s.module for s in p.stages]
        for k, pred in enumerate(preds):
            i, seen = pred.index, pred.seen
            explained = pp.classes[int(targets[k])]
            pred.explained = explained if pp.methods else ""
            x1 = x[k : k + 1]
            stage_input = p.model_input(x1)
            outputs = _forward(modules, stage_input)
            label = torch.tensor([pred.label if pred.label is not None else -1])
            self.log.step(x1, outputs, i, labels=label)
            panels = [pictures.original_panel(seen), pictures.seen_panel(seen)]
            for name in pp.methods:
                scaled, peaks = maps[name]
                method = attr.ATTRIBUTIONS[name]
                # A map with nothing above 0 (Grad-CAM rectified where every place speaks against the class) says so.
                detail = method.detail(p, pp.exp.predict.layer) if peaks[k] > 0 else f"0 everywhere: nothing for {explained}"
                panel = pictures.attribution_panel(seen.reading.pixels, scaled[k], f"{method.title}: {explained}", detail,
                                                   f"{peaks[k]:.3g}")
                writer.image(name, pictures.panel_picture(panel), i)
                panels.append(panel)
            writer.text("probabilities", report.probabilities_markdown(pred), i)
            writer.text("seen", report.seen_markdown(pred), i)
            lines = report.image_lines(pred, pp.classes)
            if pp.methods:
                lines.append(f"   why {explained}: {', '.join(pp.methods)} in TensorBoard at step {i}"
                             + (f"; sheet {self.sheets[i]}" if self.sheets else ""))
            if pp.trace is not None:
                t = trace(pp.trace, p, stage_input, outputs)
                writer.text("trace", report.code_block(trace_lines(t, seen.file.name, channels=None)), i)
                lines += ["   " + line for line in trace_lines(t, seen.file.name)]
            if self.sheets:
                title = f"{seen.file.name}: {pred.top[0][0]} ({pred.top[0][1]:.1%})" + (
                    f", its folder says {seen.file.label}" if seen.file.label is not None else "")
                picture = pictures.sheet(title, panels, pred.top, list(seen.reading.steps), list(seen.warnings))
                save_png(picture, self.sheets[i])
                pred.files.append(str(self.sheets[i]))
            for line in lines:
                self.reporter.info(line)

    def finish(self, seconds: float) -> None:
        """The whole set: accuracy and confusion of a labelled folder, the summary's counts."""
        from convlab.confusion import confusion_image

        tally, writer, s = self.tally, self.log.writer, self.log.summary
        lines = report.summary_lines(tally, seconds)
        writer.text("predictions", report.code_block(lines), 0)
        s.update(predicted=tally.predicted, skipped=[f"{n}: {why}" for n, why in tally.skipped],
                 per_class=dict(zip(self.pp.classes, tally.per_class)), images_per_second=round(tally.predicted / max(seconds, 1e-9), 1))
        if tally.accuracy is not None:
            writer.scalar("accuracy", tally.accuracy, 0)
            title = f"accuracy {tally.accuracy:.1%} on {tally.counted} images labelled by their folder"
            writer.image("confusion", confusion_image(tally.confusion, self.pp.classes, title), 0)
            s.update(accuracy=round(tally.accuracy, 6), counted=tally.counted, correct=tally.correct,
                     tags=[*s["tags"], "confusion"])


def save_png(picture: Any, path: Path) -> None:
    """A sheet, written atomically: a reader never sees half of one."""
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(picture).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write --out {path}: {exc.strerror or exc}") from None


def json_document(pp: PredictPlan, summary: Mapping[str, Any]) -> str:
    """``--json``: the model, every image's classes and probabilities, the counts."""
    keep = ("run_dir", "status", "predicted", "skipped", "accuracy", "counted", "correct", "per_class", "seconds")
    doc = {
        "model": {"layers": list(pp.exp.stack.layers), "weights": pp.exp.stack.weights, "trained_on": pp.exp.data.dataset,
                  "input": list(pp.stack.input_shape), "classes": list(pp.classes)},
        **{k: summary[k] for k in keep if k in summary},
        "images": summary.get("images", []),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def dry_run_lines(pp: PredictPlan) -> list[str]:
    """``--dry-run``: the resolved config and what would run; nothing is decoded or written."""
    return [dump_toml(pp.exp).rstrip(), "", *describe(pp), f"device: {pp.stack.device}"]

