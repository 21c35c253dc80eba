"""What convlab predict says: per image, in the terminal (what was done to it, the top classes
as a small bar chart, the attributions and where they are), in the run's texts and
``predictions.csv``, and as ``--json``; for a labelled folder, the accuracy and the confusion.
Plain data in, text out: no torch here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from convlab.data.folder import mode_name
from convlab.predict.images import Seen

BAR_CHARS = 24  # a probability of 1 is this many characters long
EIGHTHS = " ▏▎▍▌▋▊▉"
# The confusion matrix is printed for at most this many classes (TensorBoard has it for any number).
PRINTED_CLASSES = 12
CSV_COLUMNS = ["index", "image", "label", "predicted", "probability", "correct", "top"]


@dataclass
class Prediction:
    """One image's result."""

    index: int  # its step: the n-th image read
    seen: Seen
    top: list[tuple[str, float]]  # (class, probability), the most probable first
    label: int | None  # its class among the model's, from its folder; None: unlabelled or not a class of the model
    predicted: int
    explained: str = ""  # the class the attributions explain
    files: list[str] = field(default_factory=list)  # sheets written for it

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else self.label == self.predicted


def bar(p: float, width: int = BAR_CHARS) -> str:
    """A probability as a bar of block characters, to an eighth of a character."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def image_lines(pred: Prediction, classes: Sequence[str]) -> list[str]:
    """The terminal's block for one image."""
    r = pred.seen.reading
    truth = ""
    if pred.seen.file.label is not None:
        known = pred.label is not None
        truth = f"   (its folder: {pred.seen.file.label}{', right' if pred.correct else ', wrong' if known else ', not a class of the model'})"
    name, p = pred.top[0]
    lines = [f"{pred.index}. {pred.seen.file.name} -> {name} ({p:.1%}){truth}"]
    lines.append(f"   as given: {r.size[0]}x{r.size[1]} (HxW) {r.format}, {mode_name(r.mode)}; as the model sees it: "
                 f"{'x'.join(map(str, seen_shape(pred.seen)))} (CxHxW)")
    lines += [f"   - {step}" for step in r.steps]
    lines += [f"   warning: {w}" for w in pred.seen.warnings]
    width = max(len(c) for c, _ in pred.top)
    lines += [f"   {c.ljust(width)}  {bar(q)} {q:6.1%}" for c, q in pred.top]
    return lines


def seen_shape(seen: Seen) -> tuple[int, int, int]:
    h, w, c = seen.reading.pixels.shape
    return (c, h, w)


def seen_markdown(pred: Prediction) -> str:
    """The run's 'seen' text of one image: where it came from and what was done to it."""
    r = pred.seen.reading
    lines = [f"**{_md(pred.seen.file.name)}**: {r.size[0]}x{r.size[1]} (HxW) {r.format}, {_md(mode_name(r.mode))}", ""]
    lines += [f"- {_md(step)}" for step in r.steps] or ["- nothing: it is what the model takes"]
    lines += ["", *(f"**warning**: {_md(w)}" for w in pred.seen.warnings)]
    return "\n".join(lines).rstrip()


def probabilities_markdown(pred: Prediction) -> str:
    rows = ["| class | probability |", "| --- | --- |", *(f"| {_md(c)} | {q:.4f} |" for c, q in pred.top)]
    if pred.seen.file.label is not None:
        rows += ["", f"its folder: {_md(pred.seen.file.label)}"]
    return "\n".join(rows)


def _md(text: str) -> str:
    """Text that TensorBoard's markdown shows as written."""
    for ch in "\\`*_[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return text


def code_block(lines: Sequence[str]) -> str:
    return "\n".join("    " + line for line in lines)


# ----------------------------------------------------------------------------- the whole set


@dataclass
class Tally:
    """Every image's result, counted as they come: nothing per image is kept but what --json asks."""

    classes: tuple[str, ...]
    predicted: int = 0
    counted: int = 0  # images whose folder names a class of the model
    correct: int = 0
    per_class: list[int] = field(default_factory=list)  # predictions per class
    confusion: list[list[int]] = field(default_factory=list)  # [true][predicted]
    unknown_labels: dict[str, int] = field(default_factory=dict)  # folder names that are not classes: images
    skipped: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] | None = None  # --json

    def __post_init__(self) -> None:
        k = len(self.classes)
        self.per_class = [0] * k
        self.confusion = [[0] * k for _ in range(k)]

    def add(self, pred: Prediction) -> None:
        self.predicted += 1
        self.per_class[pred.predicted] += 1
        if pred.label is not None:
            self.counted += 1
            self.correct += pred.correct
            self.confusion[pred.label][pred.predicted] += 1
        elif pred.seen.file.label is not None:
            self.unknown_labels[pred.seen.file.label] = self.unknown_labels.get(pred.seen.file.label, 0) + 1
        if self.records is not None:
            self.records.append(record(pred))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.counted if self.counted else None


def record(pred: Prediction) -> dict[str, Any]:
    """One image in --json."""
    r = pred.seen.reading
    return {
        "index": pred.index, "image": pred.seen.file.name, "label": pred.seen.file.label,
        "predicted": pred.top[0][0], "probability": round(pred.top[0][1], 6), "correct": pred.correct,
        "top": [{"class": c, "probability": round(q, 6)} for c, q in pred.top],
        "size": list(r.size), "format": r.format, "mode": r.mode, "seen": list(r.steps), "warnings": list(pred.seen.warnings),
        **({"explained": pred.explained} if pred.explained else {}), **({"sheets": pred.files} if pred.files else {}),
    }


def summary_lines(tally: Tally, seconds: float) -> list[str]:
    """The end of the terminal's report: counts, skipped files, accuracy and confusion."""
    rate = f" ({tally.predicted / seconds:,.0f} images/s)" if seconds > 0 and tally.predicted > 1 else ""
    lines = [f"predicted {tally.predicted} image(s) in {seconds:.1f} s{rate}"]
    if tally.skipped:
        shown = ", ".join(f"{name} ({why})" for name, why in tally.skipped[:5])
        more = f" and {len(tally.skipped) - 5} more" if len(tally.skipped) > 5 else ""
        lines.append(f"skipped {len(tally.skipped)} file(s) that are not images convlab can read: {shown}{more}")
    for name, n in sorted(tally.unknown_labels.items()):
        lines.append(f"folder {name}: not a class of the model ({len(tally.classes)} classes), so its {n} image(s) are predicted "
                     "but not counted")
    if tally.accuracy is not None:
        lines.append(f"accuracy {tally.accuracy:.1%}: {tally.correct} of {tally.counted} image(s) in the class its folder names")
        lines += confusion_lines(tally)
    return lines


def confusion_lines(tally: Tally) -> list[str]:
    """The confusion counts as a table (rows: the folder's class, columns: predicted, by class
    number), for the classes that have images or predictions; a note instead for too many."""
    k = len(tally.classes)
    used = [i for i in range(k) if any(tally.confusion[i]) or any(tally.confusion[t][i] for t in range(k))]
    if len(used) > PRINTED_CLASSES:
        return [f"confusion: {len(used)} classes, in the run's image tag 'confusion'"]
    cell = max(3, *(len(str(tally.confusion[i][j])) for i in used for j in used), *(len(str(j)) for j in used))
    first = max(len(f"{i} {tally.classes[i]}") for i in used)
    lines = ["confusion (rows: the class its folder names, columns: the class predicted, by number):",
             "  " + " " * first + "  " + " ".join(str(j).rjust(cell) for j in used)]
    for i in used:
        row = " ".join(str(tally.confusion[i][j]).rjust(cell) for j in used)
        lines.append("  " + f"{i} {tally.classes[i]}".ljust(first) + "  " + row)
    return lines


class PredictionsFile:
    """``predictions.csv`` in the run: one row per image, written as each batch is done."""

    def __init__(self, f: IO[str]):
        self.f = f
        self.writer = csv.writer(f)
        self.writer.writerow(CSV_COLUMNS)

    def add(self, pred: Prediction) -> None:
        correct = "" if pred.correct is None else str(pred.correct).lower()
        top = ";".join(f"{c}:{q:.6f}" for c, q in pred.top)
        self.writer.writerow([pred.index, pred.seen.file.name, pred.seen.file.label or "", pred.top[0][0],
                              f"{pred.top[0][1]:.6f}", correct, top])
