"""What ``convlab explain`` says about one layer, whatever its kind: the :class:`Explanation`,
how rows and columns are listed, and the names of each axis."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from convlab.coverage import TRACE_LIMIT, Rows

if TYPE_CHECKING:
    from rich.text import Text


def with_commas(value: int) -> str:
    """1234567 -> "1,234,567"."""
    return f"{value:,}"


def spans(rows: Rows | list[int], limit: int = 8) -> str:
    """``[0, 1, 2, 5, 9, 10]`` -> ``"0-2, 5, 9-10"``, shortened in the middle when long."""
    rows = rows if isinstance(rows, Rows) else Rows.of(rows)
    runs = list(itertools.islice(rows.runs(), limit + 1))
    if len(runs) > limit:
        runs = [*runs[: limit - 2], None, next(rows.runs(reverse=True))]
    return ", ".join("..." if r is None else str(r[0]) if r[1] - r[0] == 1 else f"{r[0]}-{r[1] - 1}" for r in runs)


@dataclass(frozen=True)
class Explanation:
    """Everything ``convlab explain`` says about one layer on one input shape."""

    module: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    formulas: list[str]
    facts: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: int = 0
    # Per image; for pooling, the comparisons are in the facts instead.
    multiply_adds: int = 0
    # Input rows and columns no window reads (for unpooling: output ones no value reaches);
    # None where they were too irregular to trace at this size.
    never_read: tuple[Rows | None, Rows | None] = (Rows(), Rows())

    def lines(self) -> list[tuple[str, str]]:
        """``(style, text)`` lines; the style is decoration only, the text says it all."""
        out = [("bold", self.module), ("", f"input {self.input_shape} -> output {self.output_shape}  (C, H, W)"), ("", "")]
        out += [("cyan", "  " + f) for f in self.formulas]
        out.append(("", ""))
        width = max(len(k) for k, _ in self.facts)
        out += [("", f"{k:<{width}}  {v}") for k, v in self.facts]
        if self.warnings or self.notes:
            out.append(("", ""))
        out += [("yellow", f"warning: {w}") for w in self.warnings]
        out += [("", f"note: {n}") for n in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def rich(self) -> list[Text]:
        from rich.text import Text

        return [Text(text, style=style) for style, text in self.lines()]


@dataclass(frozen=True)
class AxisNames:
    """How a sentence names an axis, one of its rows, several, and its size."""

    axis: str  # "H", "W" or "H and W"
    row: str
    rows: str
    dim: str


AXIS_NAMES = {
    "H": AxisNames("H", "row", "rows", "height"),
    "W": AxisNames("W", "column", "columns", "width"),
    "HW": AxisNames("H and W", "row/column", "rows/columns", "height/width"),
}


Axis = TypeVar("Axis")


def axes_to_tell(h: Axis, w: Axis, alike: bool) -> list[tuple[Axis, AxisNames]]:
    """Both axes, or one told for both where they are alike (a square input and layer)."""
    return [(h, AXIS_NAMES["HW"])] if alike else [(h, AXIS_NAMES["H"]), (w, AXIS_NAMES["W"])]


def not_traced(names: AxisNames, span: int, stride: int, size: int) -> str:
    """What 'never read' says where the rows are too irregular to trace at this size."""
    return (
        f"{names.rows} not listed: windows spanning {span} with stride {stride} over {size} {names.rows} "
        f"would take tracing more than {with_commas(TRACE_LIMIT)} of them one by one"
    )
