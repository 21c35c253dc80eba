"""What the notebook API returns: results that show themselves in Jupyter and Colab.

A :class:`Run` is one run directory. Its pictures and scalars are read back from the run's
event file with TensorBoard's own loader (:func:`convlab.writer.read_events`), never computed a
second way, so the notebook and TensorBoard cannot disagree. It displays itself as HTML (the
summary, the run's main pictures with their tags and steps, the 'layer' table) and as one PNG
(``_repr_png_``, where HTML is not shown); only images and text, no JavaScript. Which pictures
are a run's main ones is one entry per command in :data:`MAIN_PICTURES`. No torch at import.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.errors import ConvlabError
from convlab.runs import read_summary

if TYPE_CHECKING:
    from PIL import Image

# A picture wider than this is shown scaled down to it in the notebook (its pixels stay in the run).
SHOWN_WIDTH = 1024


@dataclass(frozen=True)
class Picture:
    """One picture of a run: a logged image (``tag`` at ``step``), or one drawn from its scalars."""

    caption: str
    image: Image.Image
    png: bytes  # as logged: the HTML shows these very bytes

    @classmethod
    def drawn(cls, caption: str, image: Image.Image) -> Picture:
        return cls(caption, image, _png(image))


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
        if self._pictures is None:
            command = str(self.summary.get("command", ""))
            self._pictures = MAIN_PICTURES.get(command.split()[0] if command else "", _every_image)(self)
        return self._pictures

    def _repr_png_(self) -> bytes:
        return _png(sheet(self.title, self.pictures()))

    def _repr_html_(self) -> str:
        parts = [f"<div><b>{html.escape(self.title)}</b><br><code>{html.escape(str(self.run_dir))}</code></div>"]
        parts += [_figure(p) for p in self.pictures()]
        if "layer" in self.tags["texts"]:
            parts.append(f"<details><summary>layer</summary><pre>{html.escape(self.text('layer'))}</pre></details>")
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
        return _png(sheet(self.title, self.pictures()))

    def _repr_html_(self) -> str:
        head = f"<div><b>{html.escape(self.title)}</b><br><code>{html.escape(str(self.sweep_dir))}</code></div>"
        return "\n".join([head, *(_figure(p) for p in self.pictures())])

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


# A command's main pictures; any other shows every image tag at step 0.
MAIN_PICTURES: dict[str, Callable[[Run], list[Picture]]] = {"train": _training}


def _steps(steps: list[int]) -> str:
    if not steps:
        return "none"
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]} ({len(steps)} in all)"


# ----------------------------------------------------------------------------- drawing


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # a picture for the screen: zlib's level 6 took 5x longer
    return out.getvalue()


def _figure(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    width = min(picture.image.width, SHOWN_WIDTH)
    return (f'<figure style="margin: 0.5em 0"><figcaption><code>{html.escape(picture.caption)}</code></figcaption>'
            f'<img src="data:image/png;base64,{data}" width="{width}" style="image-rendering: pixelated; max-width: 100%"></figure>')


def sheet(title: str, pictures: list[Picture]) -> Image.Image:
    """The pictures one under the other at their own size, each under its caption, on white."""
    from PIL import Image, ImageDraw

    line = 14
    width = max([p.image.width for p in pictures] + [8 * len(title)]) + 8
    height = line + 8 + sum(line + p.image.height + 8 for p in pictures)
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    draw.text((4, 2), title, fill="black")
    y = line + 8
    for p in pictures:
        draw.text((4, y), p.caption, fill=(60, 60, 60))
        out.paste(p.image.convert("RGB"), (4, y + line))
        y += line + p.image.height + 8
    return out


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def line_chart(series: dict[str, list[tuple[int, float]]], size: tuple[int, int] = (560, 240)) -> Image.Image:
    """Scalar series against their steps, on shared axes: a line for each (a dot where a series has one point)."""
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 56, 12, 22, 26
    points = [(s, v) for values in series.values() for s, v in values if v == v and abs(v) != float("inf")]
    out = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(out)
    if not points:
        draw.text((left, top), "no finite values", fill="black")
        return out
    s0, s1 = min(s for s, _ in points), max(s for s, _ in points)
    v0, v1 = min(v for _, v in points), max(v for _, v in points)
    s1, v1 = (s1 if s1 > s0 else s0 + 1), (v1 if v1 > v0 else v0 + 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (step - s0) / (s1 - s0) * (width - left - right),
                height - bottom - (value - v0) / (v1 - v0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline=(180, 180, 180))
    for value in (v0, v1):
        draw.text((4, xy(s0, value)[1] - 6), f"{value:.3g}", fill="black")
    for step in (s0, s1):
        draw.text((xy(step, v0)[0] - 4, height - bottom + 4), str(int(step)), fill="black")
    draw.text((width // 2 - 12, height - 12), "step", fill="black")
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(s, v) for s, v in values if v == v and abs(v) != float("inf")]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line if len(line) <= 20 else line[-1:]:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 8 + 110 * i, 4), name, fill=colour)
    return out
