"""What the notebook API returns: results that show themselves in Jupyter and Colab.

A :class:`Run` is one run directory. Its pictures and scalars are read back from the run's
event file with TensorBoard's own loader (:func:`convlab.writer.read_events`), never computed a
second way, so the notebook and TensorBoard cannot disagree. It displays itself as HTML (the
summary, the run's main pictures with their tags and steps, the 'layer' table) and as one PNG
(``_repr_png_``, where HTML is not shown); only images and text, no JavaScript. Which pictures
are a run's main ones is one entry per command in :data:`MAIN_PICTURES`; a predict run
(:class:`PredictRun`) shows a row per image, a top run (:class:`TopRun`) each stage's sheet
with its channel table. No torch at import.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.errors import ConvlabError
from convlab.notebook.charts import Picture, bar_chart, line_chart, png_bytes, sheet
from convlab.runs import read_summary

if TYPE_CHECKING:
    from PIL import Image

# A picture wider than this is shown scaled down to it in the notebook (its pixels stay in the run).
SHOWN_WIDTH = 1024


class Run:
    """One run: its directory, its ``summary.json``, and what it logged, read back from its event file.

    >>> run = convlab.conv(out_channels=6, dataset="shapes", max_batches=2)
    >>> run.image("output", step=0)          # a PIL image, as TensorBoard shows it
    >>> run.scalars("output/mean")           # [(step, value), ...]
    >>> run.text("layer")                    # the logged text
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        summary = read_summary(self.run_dir)
        if summary is None:
            raise ConvlabError(f"{self.run_dir} is no convlab run (it has no readable summary.json)")
        self.summary: dict[str, Any] = summary
        self._events: Any = None
        self._pictures: list[Picture] | None = None

    # ------------------------------------------------------------------ reading back

    @property
    def events(self) -> Any:
        """TensorBoard's ``EventAccumulator`` of the run, every sample kept (read once, on first use)."""
        if self._events is None:
            from convlab.writer import read_events

            self._events = read_events(self.run_dir)
        return self._events

    @property
    def tags(self) -> dict[str, list[str]]:
        """The run's tags by kind: ``images``, ``scalars`` and ``texts``."""
        found = self.events.Tags()
        texts = [t.removesuffix("/text_summary") for t in found.get("tensors", [])]
        return {"images": list(found.get("images", [])), "scalars": list(found.get("scalars", [])), "texts": texts}

    def steps(self, tag: str) -> list[int]:
        """The steps at which image ``tag`` was logged."""
        return [event.step for event in self.events.Images(self._tag(tag, "images"))]

    def image(self, tag: str, step: int = 0) -> Image.Image:
        """Image ``tag`` at ``step``, decoded from the PNG in the event file (a PIL image)."""
        return self._picture(tag, step).image

    def _picture(self, tag: str, step: int, caption: str | None = None) -> Picture:
        from PIL import Image

        events = self.events.Images(self._tag(tag, "images"))
        found = [e for e in events if e.step == step]
        if not found:
            steps = [e.step for e in events]
            raise ConvlabError(f"run {self.run_dir.name} has no image '{tag}' at step {step}; it has it at step(s) {_steps(steps)}")
        png = found[-1].encoded_image_string
        image = Image.open(io.BytesIO(png))
        image.load()
        return Picture(caption or f"{tag}, step {step}", image, png)

    def scalars(self, tag: str) -> list[tuple[int, float]]:
        """Scalar ``tag`` as ``(step, value)`` pairs, in the order logged."""
        return [(e.step, e.value) for e in self.events.Scalars(self._tag(tag, "scalars"))]

    def text(self, tag: str, step: int | None = None) -> str:
        """Text ``tag`` (the last logged, or the one at ``step``), as logged, without its code-block indent."""
        name = self._tag(tag, "texts")
        events = self.events.Tensors(f"{name}/text_summary")
        if step is not None:
            found = [e for e in events if e.step == step]
            if not found:
                raise ConvlabError(f"run {self.run_dir.name} has no text '{tag}' at step {step}; "
                                   f"it has it at step(s) {_steps([e.step for e in events])}")
            events = found
        value = events[-1].tensor_proto.string_val[0].decode("utf-8")
        return textwrap.dedent(value).strip("\n")

    def _tag(self, tag: str, kind: str) -> str:
        if tag not in self.tags[kind]:
            raise ConvlabError(f"run {self.run_dir.name} has no {kind[:-1]} tag '{tag}'; its {kind}: {', '.join(self.tags[kind]) or 'none'}")
        return tag

    # ------------------------------------------------------------------ showing

    @property
    def title(self) -> str:
        s = self.summary
        where = f" on {s['dataset']}/{s['split']}" if "dataset" in s else ""
        return f"convlab {s.get('command', '?')}{where}: {s.get('steps', 0)} step(s), {s.get('status', '?')}"

    def pictures(self) -> list[Picture]:
        """The run's main pictures (:data:`MAIN_PICTURES` for its command), read back from its event file."""
        return [p for row in self.rows() for p in row]

    def rows(self) -> list[list[Picture]]:
        """The main pictures as they are shown: a row of one each, or side by side where they belong together."""
        if self._pictures is None:
            command = str(self.summary.get("command", ""))
            self._pictures = MAIN_PICTURES.get(command.split()[0] if command else "", _every_image)(self)
        return [[p] for p in self._pictures]

    def _repr_png_(self) -> bytes:
        return png_bytes(sheet(self.title, self.rows()))

    def _repr_html_(self) -> str:
        parts = [_head(self.title, self.run_dir), *(_row(row) for row in self.rows())]
        if "layer" in self.tags["texts"]:
            parts.append(_details("layer", self.text("layer")))
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}: {self.title})"


class TrainRun(Run):
    """A training run: its loss curve, kernels at the first and last snapshot, the last confusion matrix;
    ``model`` is where its weights are (``model.pt``)."""

    @property
    def model(self) -> Path | None:
        path = self.summary.get("model")
        return Path(path) if path else None

    @property
    def title(self) -> str:
        s = self.summary
        accuracy = f", test accuracy {s['test_accuracy']:.1%}" if isinstance(s.get("test_accuracy"), float) else ""
        return f"{super().title}{accuracy}"


class PredictRun(Run):
    """A prediction run (``convlab.predict``): per image shown, a row of its top-k classes as bars (from the
    run's 'probabilities' text), the input as the model sees it and each attribution overlay, all read back
    from the event file; ``seen(i)`` says what was done to image ``i``; ``predictions()`` is every image's
    row of ``predictions.csv``; ``sheets`` are the PNG sheets written with ``out=``."""

    def __init__(self, run_dir: str | Path, sheets: Sequence[str | Path] = ()):
        super().__init__(run_dir)
        self.sheets = [Path(path) for path in sheets]
        self._rows: list[list[Picture]] | None = None

    @property
    def title(self) -> str:
        s = self.summary
        accuracy = f", accuracy {s['accuracy']:.1%} on {s['counted']} labelled" if isinstance(s.get("accuracy"), float) else ""
        return (f"convlab predict: {s.get('predicted', 0)} image(s) through a model trained on {s.get('trained_on', '?')}, "
                f"{s.get('pictured', 0)} shown{accuracy}, {s.get('status', '?')}")

    def top(self, index: int) -> list[tuple[str, float]]:
        """Image ``index``'s classes and probabilities, the most probable first, as logged ('probabilities')."""
        rows = (re.fullmatch(r"\| (.*) \| ([0-9.]+) \|", line) for line in self.text("probabilities", step=index).splitlines())
        return [(_plain(m[1]), float(m[2])) for m in rows if m and m[1] != "class"]

    def seen(self, index: int) -> str:
        """What was done to image ``index`` to make it what the model takes, and any warning (the 'seen' text)."""
        return _plain(self.text("seen", step=index).replace("**", ""))

    def predictions(self) -> list[dict[str, str]]:
        """Every image's row of the run's ``predictions.csv`` (index, image, label, predicted, probability, correct, top)."""
        with (self.run_dir / str(self.summary.get("predictions", "predictions.csv"))).open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    def rows(self) -> list[list[Picture]]:
        if self._rows is not None:
            return self._rows
        tags = self.summary.get("tags", [])
        seen = [t for t in tags[:1] if t in self.tags["images"]]  # a run's first tag is its input, as the model sees it
        shown = [t for t in self.summary.get("attributions", []) if t in self.tags["images"]]
        self._rows = []
        for i in range(int(self.summary.get("pictured", 0))):
            top = self.top(i)
            name = self.seen(i).splitlines()[0].split(": ")[0]
            bars = Picture.drawn(f"{i}. {name} -> {top[0][0]} ({top[0][1]:.1%})", bar_chart(top))
            self._rows.append([bars, *(self._picture(tag, i) for tag in [*seen, *shown])])
        if "confusion" in self.tags["images"]:
            self._rows.append([self._picture("confusion", 0)])
        return self._rows

    def _repr_html_(self) -> str:
        parts = [_head(self.title, self.run_dir)]
        for i, row in enumerate(self.rows()):
            parts.append(_row(row))
            if i < int(self.summary.get("pictured", 0)):
                parts.append(_details("as the model sees it", self.seen(i)))
        if self.sheets:
            parts.append(f"<div>sheets: {', '.join(f'<code>{html.escape(str(p))}</code>' for p in self.sheets)}</div>")
        return "\n".join(parts)


class TopRun(Run):
    """A top-patches run (``convlab.top``): each stage's sheet (a row per channel: the k dataset patches that
    excite it most) with its channel table, and the stages ranked by dead channels, read back from the run;
    ``sheets`` are the PNG sheets written with ``out=``."""

    @property
    def sheets(self) -> list[Path]:
        return [Path(path) for path in self.summary.get("sheets", [])]

    @property
    def title(self) -> str:
        s = self.summary
        return (f"convlab top: {s.get('k', '?')} patches per channel over {s.get('images', 0)} image(s) of "
                f"{s.get('dataset', '?')}/{s.get('split', '?')}, {s.get('status', '?')}")

    def _repr_html_(self) -> str:
        parts = [_head(self.title, self.run_dir)]
        for picture in self.pictures():
            tag = picture.caption.rsplit(", step", 1)[0]
            parts += [_figure(picture), f"<pre>{html.escape(self.text(tag))}</pre>"]
        if "top" in self.tags["texts"]:
            parts.append(f"<pre>{html.escape(self.text('top'))}</pre>")
        return "\n".join(parts)


class Sweep:
    """A sweep: one :class:`Run` per combination (``runs[name]``) and the run ``compare``, which it shows."""

    def __init__(self, sweep_dir: str | Path):
        self.sweep_dir = Path(sweep_dir)
        summary = read_summary(self.sweep_dir)
        if summary is None:
            raise ConvlabError(f"{self.sweep_dir} is no convlab sweep (it has no readable summary.json)")
        self.summary: dict[str, Any] = summary
        self.runs = {name: Run(self.sweep_dir / name) for name in summary.get("runs", [])}
        self.compare = Run(self.sweep_dir / "compare")

    @property
    def run_dir(self) -> Path:
        return self.sweep_dir

    def image(self, tag: str = "compare", step: int = 0) -> Image.Image:
        """The compare picture (or another tag of the run ``compare``) at ``step``."""
        return self.compare.image(tag, step)

    @property
    def title(self) -> str:
        s = self.summary
        return f"convlab {s.get('command', 'sweep')}: {len(self.runs)} run(s) ({', '.join(self.runs)}), {s.get('steps', 0)} step(s)"

    def pictures(self) -> list[Picture]:
        return [self.compare._picture("compare", 0)]

    def _repr_png_(self) -> bytes:
        return png_bytes(sheet(self.title, [[p] for p in self.pictures()]))

    def _repr_html_(self) -> str:
        return "\n".join([_head(self.title, self.sweep_dir), *(_figure(p) for p in self.pictures())])

    def __repr__(self) -> str:
        return f"Sweep({str(self.sweep_dir)!r}: {self.title})"


class Text:
    """Text that shows itself: what the command line prints (explain, demo, a model's table)."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


# ----------------------------------------------------------------------------- which pictures


def _every_image(run: Run) -> list[Picture]:
    """The run's image tags in the order it lists them, at step 0: a layer's (input, output and its
    views), a stack's input and stages (its stages' kernels, noise beyond the first, are left to TensorBoard)."""
    tags = [t for t in run.summary.get("tags", []) if t in run.tags["images"] and "/" not in t]
    return [run._picture(tag, 0) for tag in tags]


def _training(run: Run) -> list[Picture]:
    """The losses over training; the first conv stage's kernels at the first and the last snapshot (deeper
    stages' are grids of noise to the eye: they stay in TensorBoard); the last confusion matrix."""
    pictures = []
    series = {tag: run.scalars(tag) for tag in ("train/loss", "test/loss") if tag in run.tags["scalars"]}
    if series:
        pictures.append(Picture.drawn("loss over training steps", line_chart(series)))
    for tag in [t for t in run.summary.get("tags", []) if t.endswith("/kernels") and t in run.tags["images"]][:1]:
        steps = run.steps(tag)
        for step in dict.fromkeys([steps[0], steps[-1]]):
            pictures.append(run._picture(tag, step))
    if "test/confusion" in run.tags["images"]:
        step = run.steps("test/confusion")[-1]
        pictures.append(run._picture("test/confusion", step))
    return pictures


def _top_sheets(run: Run) -> list[Picture]:
    """Each chosen stage's sheet of top patches."""
    return [run._picture(tag, 0) for tag in run.summary.get("tags", []) if tag in run.tags["images"]]


# A command's main pictures; any other shows every image tag at step 0.
MAIN_PICTURES: dict[str, Callable[[Run], list[Picture]]] = {"train": _training, "top": _top_sheets}


def _steps(steps: list[int]) -> str:
    if not steps:
        return "none"
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]} ({len(steps)} in all)"


# ----------------------------------------------------------------------------- HTML


def _plain(markdown: str) -> str:
    """Text as written into a run's markdown (its backslash escapes undone)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _head(title: str, where: Path) -> str:
    return f"<div><b>{html.escape(title)}</b><br><code>{html.escape(str(where))}</code></div>"


def _details(summary: str, text: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>"


def _row(pictures: list[Picture]) -> str:
    if len(pictures) == 1:
        return _figure(pictures[0])
    figures = "".join(_figure(p) for p in pictures)
    return f'<div style="display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start">{figures}</div>'


def _figure(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    width = min(picture.image.width, SHOWN_WIDTH)
    return (f'<figure style="margin: 0.5em 0"><figcaption><code>{html.escape(picture.caption)}</code></figcaption>'
            f'<img src="data:image/png;base64,{data}" width="{width}" style="image-rendering: pixelated; max-width: 100%"></figure>')


