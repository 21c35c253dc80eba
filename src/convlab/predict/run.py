"""``convlab predict``: the images of a :class:`~convlab.predict.plan.PredictPlan` in batches
through its model, and the run that shows what it said and why.

An image named on the command line is read once before anything is written, and the run
directory is made only once the first batch is in hand. Step ``i`` of the run is the ``i``-th
image read: the first ``--pictures`` images get every picture (the input as seen, every stage,
each attribution, the probabilities and what was done to them), every image a row of
``predictions.csv``, and a labelled folder its accuracy and confusion at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.data import DataError
from convlab.data.folder import UNREADABLE
from convlab.errors import ConfigError
from convlab.interrupts import closes_on_signals
from convlab.planning import batch_threads, memory_error
from convlab.predict.attributions import ATTRIBUTIONS, Classifier, attribute, shown
from convlab.predict.images import Batch, unreadable_reason
from convlab.predict.plan import PredictPlan, describe, sheet_paths
from convlab.predict.report import (
    Prediction,
    PredictionsFile,
    Tally,
    code_block,
    image_lines,
    probabilities_markdown,
    seen_markdown,
    summary_lines,
)

if TYPE_CHECKING:
    from convlab.pipeline import Reporter

PREDICTIONS_FILE = "predictions.csv"


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
    predictions = None
    try:
        log.start()
        run = _Run(pp, log, tally, reporter)
        predictions = (log.run_dir / PREDICTIONS_FILE).open("w", encoding="utf-8", newline="")
        run.table = PredictionsFile(predictions)
        for line in describe(pp):
            reporter.info(line)
        reporter.info(f"run: {log.run_dir}")
        started = time.perf_counter()
        batch_size = pp_exp.data.batch_size
        chunks = -(-len(pp.found.files) // batch_size)  # the batches of files read (a skipped file leaves a batch short)
        with batch_threads(pp.stack.device), contextlib.ExitStack() as stack:  # a thread reads the next batch meanwhile
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
        for line in summary_lines(tally, seconds):
            reporter.info(line)
        summary = log.complete(seconds)
    except BaseException as exc:
        if predictions is not None:
            with contextlib.suppress(OSError):
                predictions.close()
        error = memory_error(exc, pp.stack)
        log.stopped(error or exc)
        if error is not None:
            raise error from None
        raise
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
        self.classifier = Classifier(p, pp.exp.predict.layer)
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
        pictured = [pred for pred in preds if pred.index < pp.pictured]
        if pictured:
            self.show(batch, pictured)
        for pred in preds:
            self.tally.add(pred)
            self.table.add(pred)
        self.log.summary["steps"] = batch.start + len(batch.seen)

    def show(self, batch: Batch, preds: list[Prediction]) -> None:
        """Every picture and text of the images shown, and their terminal blocks."""
        from convlab.pipeline import forward
        from convlab.predict.pictures import attribution_panel, original_panel, panel_picture, seen_panel, sheet
        from convlab.predict.trace import trace, trace_lines

        torch, pp, p, writer = self.torch, self.pp, self.pp.stack, self.log.writer
        rows = [pred.index - batch.start for pred in preds]
        x = batch.pixels[rows].to(p.device).float().div_(255)
        targets = torch.tensor([pp.target if pp.target is not None else pred.predicted for pred in preds])
        maps = {}
        for name in pp.methods:
            scaled, peaks = shown(attribute(name, self.classifier, x, targets))
            maps[name] = (scaled.cpu().numpy(), peaks)
        modules = [s.module for s in p.stages]
        for k, pred in enumerate(preds):
            i, seen = pred.index, pred.seen
            explained = pp.classes[int(targets[k])]
            pred.explained = explained if pp.methods else ""
            x1 = x[k : k + 1]
            stage_input = p.model_input(x1)
            outputs = forward(modules, stage_input)
            label = torch.tensor([pred.label if pred.label is not None else -1])
            self.log.step(x1, outputs, i, labels=label)
            panels = [original_panel(seen), seen_panel(seen)]
            for name in pp.methods:
                scaled, peaks = maps[name]
                method = ATTRIBUTIONS[name]
                # A map with nothing above 0 (Grad-CAM rectified where every place speaks against the class) says so.
                detail = method.detail(p, pp.exp.predict.layer) if peaks[k] > 0 else f"0 everywhere: nothing for {explained}"
                panel = attribution_panel(seen.reading.pixels, scaled[k], f"{method.title}: {explained}", detail,
                                          f"{peaks[k]:.3g}")
                writer.image(name, panel_picture(panel), i)
                panels.append(panel)
            writer.text("probabilities", probabilities_markdown(pred), i)
            writer.text("seen", seen_markdown(pred), i)
            lines = image_lines(pred, pp.classes)
            if pp.methods:
                lines.append(f"   why {explained}: {', '.join(pp.methods)} in TensorBoard at step {i}"
                             + (f"; sheet {self.sheets[i]}" if self.sheets else ""))
            if pp.trace is not None:
                t = trace(pp.trace, p, stage_input, outputs)
                writer.text("trace", code_block(trace_lines(t, seen.file.name, channels=None)), i)
                lines += ["   " + line for line in trace_lines(t, seen.file.name)]
            if self.sheets:
                title = f"{seen.file.name}: {pred.top[0][0]} ({pred.top[0][1]:.1%})" + (
                    f", its folder says {seen.file.label}" if seen.file.label is not None else "")
                picture = sheet(title, panels, pred.top, list(seen.reading.steps), list(seen.warnings))
                save_png(picture, self.sheets[i])
                pred.files.append(str(self.sheets[i]))
            for line in lines:
                self.reporter.info(line)

    def finish(self, seconds: float) -> None:
        """The whole set: accuracy and confusion of a labelled folder, the summary's counts."""
        from convlab.confusion import confusion_image

        tally, writer, s = self.tally, self.log.writer, self.log.summary
        lines = summary_lines(tally, seconds)
        writer.text("predictions", code_block(lines), 0)
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
