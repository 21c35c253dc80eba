"""``convlab demo``: the classic 5x5 worked examples of convolution and max pooling, by hand.

Every window is worked out here in plain Python, exactly as a learner would on paper, so
the demo needs no torch and integer inputs give exact integers; the tests hold every result
against ``torch.nn.functional``. The window geometry is :mod:`convlab.geometry`'s.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

from convlab.config import ConfigError, ConvConfig, Pair, PoolConfig, parse_pair
from convlab.explain import fmt_number
from convlab.geometry import AxisWindows, axis_windows, layer_call, tap_kind
from convlab.layers import output_shape

if TYPE_CHECKING:
    from rich.text import Text

Number = Union[int, float]
Matrix = list[list[Number]]

# The lesson's matrices (the PyTorch tutorials' nn.functional.conv2d and nn.MaxPool2d videos).
POOL_INPUT: Matrix = [[1, 2, 0, 3, 2], [3, 2, 4, 5, 6], [3, 4, 5, 6, 2], [1, 3, 2, 6, 5], [5, 6, 2, 1, 3]]
CONV_INPUT: Matrix = [[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1], [2, 1, 0, 1, 1]]
CONV_WEIGHT: Matrix = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]

LEGEND = ". input outside the window   _ padding   x past the edge (ignored)"

# A demo is worked by hand: what it draws (the input with its padding, and each pooling
# window as a panel) must fit a terminal, which also keeps every demo to a second or so.
MAX_SIDE = 24
MAX_WINDOWS = 64
# Integers of at most 12 digits: the cells stay narrow enough to read side by side.
MAX_INT = 10**12 - 1


# ----------------------------------------------------------------------------- matrices


def parse_matrix(text: str, name: str) -> Matrix:
    """``"1 2 0; 3 2 4"``, ``"1,2,0/3,2,4"``, one row a line, or ``"[[1, 2, 0], [3, 2, 4]]"``."""
    example = f"e.g. {name} '1 2 0; 3 2 4' or {name} '[[1, 2, 0], [3, 2, 4]]'"
    text = text.strip()
    if not text:
        raise ConfigError(f"{name} is empty; give rows of numbers, {example}")
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ConfigError(f"{name}: cannot read {text!r} as a list of rows; {example}") from None
        if isinstance(value, (list, tuple)) and value and not any(isinstance(v, (list, tuple)) for v in value):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in value):
            raise ConfigError(f"{name}: expected a list of rows of numbers; {example}")
        rows = [[_number(v, name, i + 1) for v in row] for i, row in enumerate(value)]
    else:
        lines = [line for line in re.split(r"[;/\n]", text)]
        rows = [[_number(v, name, i + 1) for v in re.split(r"[\s,]+", line.strip()) if v] for i, line in enumerate(lines)]
    if not rows or all(not row for row in rows):
        raise ConfigError(f"{name} is empty; give rows of numbers, {example}")
    for i, row in enumerate(rows):
        if not row:
            raise ConfigError(f"{name}: row {i + 1} is empty; every row needs numbers ({example})")
        if len(row) != len(rows[0]):
            raise ConfigError(
                f"{name} is ragged: row {i + 1} has {len(row)} number(s) but row 1 has {len(rows[0])}; "
                "every row needs the same count"
            )
    check_side(size_of(rows), name)
    return rows


def check_side(size: Pair, name: str) -> None:
    """A matrix (or kernel) small enough to draw; beyond, ``convlab explain`` has the arithmetic."""
    h, w = size
    if max(h, w) > MAX_SIDE:
        hint = f"; convlab explain conv|pool --size {h}x{w} gives the arithmetic at any size" if name == "--input" else ""
        raise ConfigError(f"{name} is {h}x{w}, too large for a demo, which draws at most {MAX_SIDE}x{MAX_SIDE}{hint}")


def _number(value: object, name: str, row: int) -> Number:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"{name}: {text!r} in row {row} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: {value!r} in row {row} is not a number")
    if not math.isfinite(value):
        raise ConfigError(f"{name}: {value!r} in row {row} is not a finite number")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ConfigError(f"{name}: a {len(str(abs(value)))}-digit number in row {row} is too large for a demo (at most 12 digits)")
    return value


def size_of(matrix: Matrix) -> Pair:
    return (len(matrix), len(matrix[0]))


# ----------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """One output cell's window: its taps in input coordinates (negative or past the end = padding)."""

    cell: Pair
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    value: Number
    # Taps past the padded input: only a ceil_mode window has them (PyTorch ignores them).
    over_edge: bool = False


def _window_taps(axes: tuple[AxisWindows, AxisWindows], i: int, j: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(axes[0].taps(i)), tuple(axes[1].taps(j))


def pool_windows(cfg: PoolConfig, matrix: Matrix) -> list[Window]:
    """Every window of MaxPool2d(cfg) over ``matrix`` (row-major), with its max."""
    h, w = size_of(matrix)
    axes = axis_windows(cfg, h, w)
    out = []
    for i in range(axes[0].count):
        for j in range(axes[1].count):
            rows, cols = _window_taps(axes, i, j)
            # Max pooling pads with -inf: padding and taps past the edge never win.
            inside = [matrix[r][c] for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
            value = max(inside) if inside else float("-inf")
            over = axes[0].overhang(i) > 0 or axes[1].overhang(j) > 0
            out.append(Window((i, j), rows, cols, value, over))
    return out


def conv_windows(cfg: ConvConfig, matrix: Matrix, weight: Matrix) -> list[Window]:
    """Every window of conv2d(matrix, weight) (zero padding, no bias), with its sum of products."""
    out = []
    for window in _conv_geometry(cfg, matrix):
        terms = mac_terms(matrix, weight, window)
        out.append(replace(window, value=sum(x * k for x, k, _ in terms)))
    return out


def _conv_geometry(cfg: ConvConfig, matrix: Matrix) -> list[Window]:
    h, w = size_of(matrix)
    axes = axis_windows(cfg, h, w)
    return [Window((i, j), *_window_taps(axes, i, j), 0) for i in range(axes[0].count) for j in range(axes[1].count)]


def mac_terms(matrix: Matrix, weight: Matrix, window: Window) -> list[tuple[Number, Number, bool]]:
    """``(input, weight, is_padding)`` for every tap, row by row: the multiply-accumulate of one cell."""
    h, w = size_of(matrix)
    terms = []
    for a, r in enumerate(window.rows):
        for b, c in enumerate(window.cols):
            inside = 0 <= r < h and 0 <= c < w
            terms.append((matrix[r][c] if inside else 0, weight[a][b], not inside))
    return terms


def to_matrix(windows: list[Window], shape: Pair) -> Matrix:
    rows, cols = shape
    values = [w.value for w in windows]
    return [values[i * cols : (i + 1) * cols] for i in range(rows)]


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class PoolCase:
    cfg: PoolConfig
    windows: list[Window]
    output: Matrix
    # With ceil_mode off: the windows ceil_mode would have kept (hanging over the edge).
    dropped: list[Window]


@dataclass(frozen=True)
class ConvCase:
    cfg: ConvConfig
    windows: list[Window]
    output: Matrix


def check_drawable(cfg: Union[ConvConfig, PoolConfig], size: Pair, *, panels: bool) -> None:
    """The layer fits ``size`` (or a ShapeError) and what the demo draws of it fits a terminal:
    the input with its padding and any window past the edge, and, with ``panels``, one panel
    per window."""
    h, w = size
    _, out_h, out_w = output_shape(cfg, (1, h, w))
    call = layer_call(cfg, form="lesson")
    # ceil_mode's extra windows are drawn too (over the edge), even where they are dropped.
    wide = replace(cfg, ceil_mode=True) if isinstance(cfg, PoolConfig) else cfg
    rows, cols = (len(a.extent()) for a in axis_windows(wide, h, w))
    if max(rows, cols) > MAX_SIDE:
        raise ConfigError(
            f"{call} on a {h}x{w} input draws {rows}x{cols} cells (with its padding and any window past the edge), "
            f"too many for a demo, which draws at most {MAX_SIDE}x{MAX_SIDE}; use less --padding or a smaller --input"
        )
    if panels and out_h * out_w > MAX_WINDOWS:
        raise ConfigError(
            f"the demo draws every window, and {call} on a {h}x{w} input has {out_h}x{out_w} = {out_h * out_w} "
            f"(at most {MAX_WINDOWS}); use a larger --stride or --kernel, or a smaller --input"
        )


def pool_case(cfg: PoolConfig, matrix: Matrix) -> PoolCase:
    h, w = size_of(matrix)
    _, oh, ow = output_shape(cfg, (1, h, w))
    windows = pool_windows(cfg, matrix)
    dropped = []
    if not cfg.ceil_mode:
        try:
            ceil = pool_windows(replace(cfg, ceil_mode=True), matrix)
        except ConfigError:  # pragma: no cover - ceil_mode never has fewer windows
            ceil = []
        kept = {win.cell for win in windows}
        dropped = [win for win in ceil if win.cell not in kept]
    return PoolCase(cfg, windows, to_matrix(windows, (oh, ow)), dropped)


def conv_case(cfg: ConvConfig, matrix: Matrix, weight: Matrix) -> ConvCase:
    h, w = size_of(matrix)
    _, oh, ow = output_shape(cfg, (1, h, w))
    windows = conv_windows(cfg, matrix, weight)
    return ConvCase(cfg, windows, to_matrix(windows, (oh, ow)))


# ----------------------------------------------------------------------------- drawing


def _cells(values: list[str]) -> int:
    return max(len(v) for v in values)


def matrix_lines(matrix: Matrix, indent: str = "  ", style: str = "") -> list["Text"]:
    """A matrix as aligned rows, ``[[...], [...]]``-shaped so it can be pasted back as --input."""
    from rich.text import Text

    text = [[fmt_number(v) for v in row] for row in matrix]
    width = _cells([v for row in text for v in row])
    lines = []
    for i, row in enumerate(text):
        head = "[[" if i == 0 else " ["
        tail = "]]" if i == len(text) - 1 else "],"
        line = Text(indent + head)
        line.append(", ".join(v.rjust(width) for v in row), style=style)
        line.append(tail)
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Canvas:
    """The input plus its padding and anything a window reaches past the edge, in input coordinates."""

    axes: tuple[AxisWindows, AxisWindows]
    rows: range
    cols: range

    def kind(self, r: int, c: int) -> str:
        return tap_kind(self.axes, r, c)


def canvas_for(cfg: Union[ConvConfig, PoolConfig], matrix: Matrix, windows: list[Window]) -> Canvas:
    axes = axis_windows(cfg, *size_of(matrix))
    # ``windows`` may hold more than ``cfg`` keeps: the ones ceil_mode would add.
    rows = axes[0].extent(1 + max(win.cell[0] for win in windows))
    cols = axes[1].extent(1 + max(win.cell[1] for win in windows))
    return Canvas(axes, rows, cols)


def window_panel(canvas: Canvas, matrix: Matrix, window: Window, *, mark: Pair | None, pad_value: str) -> list["Text"]:
    """The canvas with one window's taps shown by value, everything else as a marker."""
    from rich.text import Text

    taps = {(r, c) for r in window.rows for c in window.cols}
    width = _cells([fmt_number(v) for row in matrix for v in row])
    lines = []
    for r in canvas.rows:
        line = Text()
        for c in canvas.cols:
            kind = canvas.kind(r, c)
            if (r, c) in taps:
                if kind == "input":
                    text, style = fmt_number(matrix[r][c]), "bold cyan"
                elif kind == "padding":
                    text, style = pad_value, "dim cyan"
                else:
                    text, style = "x", "red"
            else:
                text, style = {"input": ".", "padding": "_", "edge": " "}[kind], "dim"
            if mark == (r, c):
                line.append("[" + text.rjust(width) + "]", style="bold black on yellow")
            else:
                line.append(" " + text.rjust(width) + " ", style=style)
        lines.append(line)
    return lines


def side_by_side(panels: list[list["Text"]], width: int, gap: int = 4) -> list["Text"]:
    """Panels (each a list of lines) laid out left to right, wrapping at ``width`` columns."""
    from rich.text import Text

    out: list[Text] = []
    row: list[list[Text]] = []
    used = 0
    for panel in [*panels, None]:
        panel_width = max(line.cell_len for line in panel) if panel else 0
        if panel is None or (row and used + gap + panel_width > width):
            height = max(len(p) for p in row)
            widths = [max(line.cell_len for line in p) for p in row]
            for k in range(height):
                line = Text("  ")
                for p, pw in zip(row, widths):
                    cell = p[k] if k < len(p) else Text("")
                    line.append_text(cell)
                    line.append(" " * (pw - cell.cell_len + gap))
                line.rstrip()
                out.append(line)
            if out[-1].plain:
                out.append(Text(""))
            row, used = [], 0
        if panel is not None:
            row.append(panel)
            used += panel_width + (gap if used else 0)
    return out


def _max_at(matrix: Matrix, window: Window) -> Pair | None:
    """Where the max is (the first in reading order, as PyTorch's indices)."""
    h, w = size_of(matrix)
    best = None
    for r in window.rows:
        for c in window.cols:
            if 0 <= r < h and 0 <= c < w and (best is None or matrix[r][c] > matrix[best[0]][best[1]]):
                best = (r, c)
    return best


def _heading(text: str) -> "Text":
    from rich.text import Text

    return Text(text, style="bold")


def _input_lines(matrix: Matrix, name: str = "input") -> list["Text"]:
    from rich.text import Text

    h, w = size_of(matrix)
    return [
        _heading(f"{name} = torch.tensor(...)  # {h}x{w}"),
        *matrix_lines(matrix),
        Text(f"{name} = torch.reshape({name}, (-1, 1, {h}, {w}))  # shape (1, 1, {h}, {w}): batch, channels, height, width"),
        Text(""),
    ]


def _span(values: tuple[int, ...]) -> str:
    return f"{values[0]}..{values[-1]}" if len(values) > 1 else str(values[0])


def render_pool(matrix: Matrix, cases: list[PoolCase], width: int = 80) -> list["Text"]:
    from rich.text import Text

    lines = _input_lines(matrix)
    for case in cases:
        shape = (len(case.output), len(case.output[0]))
        lines += [_heading(f"{layer_call(case.cfg, form='lesson')}  ->  output shape (1, 1, {shape[0]}, {shape[1]})")]
        lines += [Text("  " + line, style="cyan") for line in _formulas(case.cfg, matrix)]
        panels = []
        canvas = canvas_for(case.cfg, matrix, case.windows + case.dropped)
        for win in case.windows:
            head = f"({win.cell[0]}, {win.cell[1]}): max {fmt_number(win.value)}"
            if win.over_edge:
                head += " (over the edge)"
            panels.append([Text(head, style="yellow" if win.over_edge else "")] + window_panel(
                canvas, matrix, win, mark=_max_at(matrix, win), pad_value="-"))
        lines.append(Text("  every window, its cells and its max [v]:"))
        lines += side_by_side(panels, width)
        if case.dropped:
            cells = ", ".join(f"({w.cell[0]}, {w.cell[1]})" for w in case.dropped)
            lines.append(Text(
                f"  ceil_mode=False drops {len(case.dropped)} window(s) that would hang over the edge: {cells}; "
                "ceil_mode=True keeps them", style="yellow"))
        elif case.cfg.ceil_mode and any(w.over_edge for w in case.windows):
            lines.append(Text("  windows marked (over the edge) are kept only because ceil_mode=True", style="yellow"))
        lines.append(Text("  output:"))
        lines += matrix_lines(case.output, indent="  ", style="bold green")
        lines.append(Text(""))
    lines.append(Text(f"legend: {LEGEND}", style="dim"))
    return lines


def render_conv(matrix: Matrix, weight: Matrix, cases: list[ConvCase], cell: Pair = (0, 0), width: int = 80) -> list["Text"]:
    from rich.text import Text

    lines = _input_lines(matrix)
    lines += _input_lines(weight, "kernel")
    for case in cases:
        shape = (len(case.output), len(case.output[0]))
        if not (cell[0] < shape[0] and cell[1] < shape[1]):
            raise ConfigError(
                f"--cell {cell[0]},{cell[1]} is outside the {shape[0]}x{shape[1]} output of {layer_call(case.cfg, form='lesson')}; "
                f"rows run 0..{shape[0] - 1}, columns 0..{shape[1] - 1}"
            )
        lines += [_heading(f"{layer_call(case.cfg, form='lesson')}  ->  output shape (1, 1, {shape[0]}, {shape[1]})")]
        lines += [Text("  " + line, style="cyan") for line in _formulas(case.cfg, matrix)]
        win = case.windows[cell[0] * shape[1] + cell[1]]
        canvas = canvas_for(case.cfg, matrix, case.windows)
        panel = window_panel(canvas, matrix, win, mark=None, pad_value="0")
        lines.append(Text(f"  output ({cell[0]}, {cell[1]}) reads rows {_span(win.rows)}, cols {_span(win.cols)}:"))
        lines += side_by_side([panel, mac_lines(matrix, weight, win)], width)
        lines.append(Text("  output:"))
        lines += matrix_lines(case.output, indent="  ", style="bold green")
        lines.append(Text(""))
    lines.append(Text(f"legend: {LEGEND}; padding reads as 0", style="dim"))
    return lines


def mac_lines(matrix: Matrix, weight: Matrix, window: Window) -> list["Text"]:
    """``out[i, j] = x*k + x*k + ...``, one kernel row a line, padding taps dimmed."""
    from rich.text import Text

    terms = mac_terms(matrix, weight, window)
    k = len(window.cols)
    texts = [f"{_factor(x)}*{_factor(w)}" for x, w, _ in terms]
    width = max(len(t) for t in texts)
    head = f"out[{window.cell[0]}, {window.cell[1]}] = "
    lines = []
    for row in range(len(window.rows)):
        line = Text(head if row == 0 else " " * (len(head) - 2) + "+ ")
        for b in range(k):
            x, w, pad = terms[row * k + b]
            if b:
                line.append(" + ")
            line.append(texts[row * k + b].rjust(width), style="dim" if pad else "cyan")
        lines.append(line)
    total = sum(x * w for x, w, _ in terms)
    lines.append(Text(" " * (len(head) - 2) + "= ").append(fmt_number(total), style="bold green"))
    return lines


def _factor(value: Number) -> str:
    return f"({fmt_number(value)})" if value < 0 else fmt_number(value)


def _formulas(cfg: Union[ConvConfig, PoolConfig], matrix: Matrix) -> list[str]:
    h, w = size_of(matrix)
    return [axis.arith.formula() for axis in axis_windows(cfg, h, w)]


# ----------------------------------------------------------------------------- commands


def kernel_weights(text: str | None, kernel_size: Pair | None) -> Matrix:
    """``--weight`` (its size must match ``--kernel`` when both are given), the lesson's kernel,
    or, for a ``--kernel`` alone, a box of ones."""
    if text is None:
        if kernel_size is None or kernel_size == size_of(CONV_WEIGHT):
            return CONV_WEIGHT
        check_side(kernel_size, "--kernel")
        return [[1] * kernel_size[1] for _ in range(kernel_size[0])]
    weight = parse_matrix(text, "--weight")
    if kernel_size is not None and size_of(weight) != tuple(kernel_size):
        h, w = size_of(weight)
        raise ConfigError(
            f"--kernel {kernel_size[0]}x{kernel_size[1]} does not match --weight, which is {h}x{w}; "
            "leave --kernel out (the weights give the kernel size)"
        )
    return weight


def parse_cell(text: str | None) -> Pair:
    if text is None:
        return (0, 0)
    cell = parse_pair(text, "--cell")
    if isinstance(cell, str) or min(cell) < 0:
        raise ConfigError(f"--cell must be two numbers 0 or more, e.g. --cell 1,2; got {text}")
    return cell


def pool_demo(layers: list[PoolConfig], matrix: Matrix) -> list["Text"]:
    from convlab.explain import console

    for cfg in layers:
        check_drawable(cfg, size_of(matrix), panels=True)
    return render_pool(matrix, [pool_case(cfg, matrix) for cfg in layers], width=console().width)


def conv_demo(layers: list[ConvConfig], matrix: Matrix, weight: Matrix, cell: str | None = None) -> list["Text"]:
    from convlab.explain import console

    at = parse_cell(cell)
    for cfg in layers:
        check_drawable(cfg, size_of(matrix), panels=False)
    return render_conv(matrix, weight, [conv_case(cfg, matrix, weight) for cfg in layers], at, width=console().width)
