"""``convlab demo``: the classic 5x5 worked examples of convolution and max pooling, drawn.

The windows and their values are :mod:`convlab.lessons`' (plain Python, by hand); this
module draws them as text: the input reshaped as PyTorch sees it, every window over the
input and its padding, one cell's multiply-accumulate, the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from convlab.errors import ConfigError
from convlab.geometry import AxisWindows, axis_windows, hw, layer_call, tap_kind
from convlab.lessons import (
    CONV_INPUT,
    ConvCase,
    Matrix,
    Number,
    PoolCase,
    TransposedCase,
    Window,
    back_to,
    check_drawable,
    conv_case,
    mac_terms,
    parse_cell,
    pool_case,
    size_of,
    transposed_case,
)
from convlab.stages import ConvConfig, ConvTranspose2dConfig, PoolConfig
from convlab.terminal import fmt_number
from convlab.upsampling import TransposedAxis, layer_windows, transposed_axes
from convlab.values import Pair

if TYPE_CHECKING:
    from rich.text import Text

# What the CLI takes from here (the lessons' inputs it parses for them come from convlab.lessons).
__all__ = ["conv_demo", "convtranspose_demo", "pool_demo"]

LEGEND = ". input outside the window   _ padding   x past the edge (ignored)"
TRANSPOSED_LEGEND = ". input outside the window   0 a zero put between input values   _ padding (reads as 0)"


# ----------------------------------------------------------------------------- drawing


def _cells(values: list[str]) -> int:
    return max(len(v) for v in values)


def matrix_lines(matrix: Matrix, indent: str = "  ", style: str = "") -> list[Text]:
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
    axes = layer_windows(cfg, *size_of(matrix))
    # ``windows`` may hold more than ``cfg`` keeps: the ones ceil_mode would add.
    rows = axes[0].extent(1 + max(win.cell[0] for win in windows))
    cols = axes[1].extent(1 + max(win.cell[1] for win in windows))
    return Canvas(axes, rows, cols)


def window_panel(canvas: Canvas, matrix: Matrix, window: Window, *, mark: Pair | None, pad_value: str) -> list[Text]:
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
                elif kind in ("padding", "zero"):
                    text, style = pad_value if kind == "padding" else "0", "dim cyan"
                else:
                    text, style = "x", "red"
            else:
                text, style = {"input": ".", "padding": "_", "edge": " ", "zero": "0"}[kind], "dim"
            if mark == (r, c):
                line.append("[" + text.rjust(width) + "]", style="bold black on yellow")
            else:
                line.append(" " + text.rjust(width) + " ", style=style)
        lines.append(line)
    return lines


def side_by_side(panels: list[list[Text]], width: int, gap: int = 4) -> list[Text]:
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


def _heading(text: str) -> Text:
    from rich.text import Text

    return Text(text, style="bold")


def _input_lines(matrix: Matrix, name: str = "input") -> list[Text]:
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


def render_pool(matrix: Matrix, cases: list[PoolCase], width: int = 80) -> list[Text]:
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


def render_conv(matrix: Matrix, weight: Matrix, cases: list[ConvCase], cell: Pair = (0, 0), width: int = 80) -> list[Text]:
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


def mac_lines(matrix: Matrix, weight: Matrix, window: Window, axes: tuple[AxisWindows, AxisWindows] | None = None) -> list[Text]:
    """``out[i, j] = x*k + x*k + ...``, one kernel row a line, padding taps (and inserted zeros) dimmed."""
    from rich.text import Text

    terms = mac_terms(matrix, weight, window, axes)
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


def render_transposed(
    weight: Matrix, cases: list[tuple[Matrix, TransposedCase, str]], cell: Pair = (0, 0), width: int = 80,
    lesson: Matrix | None = None,
) -> list[Text]:
    """Each case: where its input came from, the output-size formula, the direct convolution (the
    input stretched by zeros and padded, the kernel flipped) with one cell's multiply-accumulate,
    the output; ``lesson``: the matrix the inputs were convolved from, whose size comes back."""
    from rich.text import Text

    lines = _input_lines(lesson, "lesson") if lesson is not None else []
    lines += _input_lines(weight, "kernel")
    for matrix, case, source in cases:
        cfg, (h, w) = case.cfg, size_of(matrix)
        shape = size_of(case.output)
        if not (cell[0] < shape[0] and cell[1] < shape[1]):
            raise ConfigError(
                f"--cell {cell[0]},{cell[1]} is outside the {shape[0]}x{shape[1]} output of {layer_call(cfg, form='lesson')}; "
                f"rows run 0..{shape[0] - 1}, columns 0..{shape[1] - 1}"
            )
        lines.append(_heading(f"{layer_call(cfg, form='lesson')}  ->  output shape (1, 1, {shape[0]}, {shape[1]})"))
        lines.append(Text(f"  input = {source}  # {h}x{w}"))
        lines += matrix_lines(matrix, indent="  ")
        axes = transposed_axes(cfg, h, w)
        lines += [Text("  " + a.formula(), style="cyan") for a in axes]
        lines += [Text("  " + line) for line in direct_lines(axes)]
        lines += matrix_lines(case.flipped, indent="  ")
        win = case.windows[cell[0] * shape[1] + cell[1]]
        canvas = canvas_for(cfg, matrix, case.windows)
        panel = window_panel(canvas, case.stretched, win, mark=None, pad_value="0")
        lines.append(Text(f"  output ({cell[0]}, {cell[1]}) reads rows {_span(win.rows)}, cols {_span(win.cols)} of the stretched input:"))
        lines += side_by_side([panel, mac_lines(case.stretched, case.flipped, win, canvas.axes)], width)
        lines.append(Text("  output:"))
        lines += matrix_lines(case.output, indent="  ", style="bold green")
        s = f"{axes[0].stride}" if axes[0].stride == axes[1].stride else f"{axes[0].stride}x{axes[1].stride}"
        lines.append(Text(
            f"  the same numbers the other way round: each input value times the kernel, stamped {s} apart and "
            "added up, which is how autograd takes F.conv2d's gradient with these arguments", style="dim"))
        if lesson is not None:
            back = "is back" if shape == size_of(lesson) else f"is {shape[0]}x{shape[1]}, not {len(lesson)}x{len(lesson[0])}"
            lines.append(Text(f"  the lesson's size {back}, not its values: a transposed convolution undoes the shape of a "
                              "convolution, not its arithmetic", style="yellow"))
        lines.append(Text(""))
    lines.append(Text(f"legend: {TRANSPOSED_LEGEND}", style="dim"))
    return lines


def direct_lines(axes: tuple[TransposedAxis, TransposedAxis]) -> list[str]:
    """The direct convolution a transposed one is, in words and numbers."""
    h, w = axes
    if (h.stride, w.stride) == (1, 1):
        zeros = "no zeros between input values (stride 1)"
    else:
        each = f"{h.stride - 1}" if h.stride == w.stride else f"{h.stride - 1}x{w.stride - 1}"
        zeros = f"{each} zero(s) between input values ({h.size}x{w.size} -> {h.stretched}x{w.stretched})"
    pad = " and ".join(dict.fromkeys(
        f"{a.dilation}*({a.kernel}-1) - {a.pad} = {a.direct_pad}" + (f" (+{a.output_padding} after)" if a.output_padding else "")
        for a in axes))
    crop = " (negative: cropped)" if min(h.direct_pad, w.direct_pad) < 0 else ""
    dilation = f", dilation {hw((h.dilation, w.dilation))}" if (h.dilation, w.dilation) != (1, 1) else ""
    return [f"as a convolution: {zeros}, padding {pad} on each side{crop}, stride 1{dilation}, and the kernel flipped:"]


def _factor(value: Number) -> str:
    return f"({fmt_number(value)})" if value < 0 else fmt_number(value)


def _formulas(cfg: Union[ConvConfig, PoolConfig], matrix: Matrix) -> list[str]:
    h, w = size_of(matrix)
    return [axis.arith.formula() for axis in axis_windows(cfg, h, w)]


# ----------------------------------------------------------------------------- commands


def pool_demo(layers: list[PoolConfig], matrix: Matrix) -> list[Text]:
    from convlab.terminal import console

    for cfg in layers:
        check_drawable(cfg, size_of(matrix), panels=True)
    return render_pool(matrix, [pool_case(cfg, matrix) for cfg in layers], width=console().width)


def convtranspose_demo(
    layers: list[ConvTranspose2dConfig], weight: Matrix, *, matrix: Matrix | None = None, cell: str | None = None
) -> list[Text]:
    """F.conv_transpose2d by hand on ``matrix``, or, without one, on what F.conv2d with the same
    arguments makes of the lesson's 5x5, with the output_padding that gets 5x5 back (unless set)."""
    from convlab.terminal import console

    at = parse_cell(cell)
    cases = []
    for cfg in layers:
        if matrix is None:
            conv = ConvConfig(1, 1, size_of(weight), cfg.stride, cfg.padding, dilation=cfg.dilation, bias=False)
            check_drawable(conv, size_of(CONV_INPUT), panels=False)
            source = layer_call(conv, form="lesson").replace("(input, ", "(lesson, ")
            x = conv_case(conv, CONV_INPUT, weight).output
            if cfg.output_padding == (0, 0):
                cfg = back_to(cfg, size_of(x), size_of(CONV_INPUT))
        else:
            x, source = matrix, "torch.tensor(...)"
        check_drawable(cfg, size_of(x), panels=False)
        cases.append((x, transposed_case(cfg, x, weight), source))
    return render_transposed(weight, cases, at, width=console().width, lesson=CONV_INPUT if matrix is None else None)


def conv_demo(layers: list[ConvConfig], matrix: Matrix, weight: Matrix, cell: str | None = None) -> list[Text]:
    from convlab.terminal import console

    at = parse_cell(cell)
    for cfg in layers:
        check_drawable(cfg, size_of(matrix), panels=False)
    return render_conv(matrix, weight, [conv_case(cfg, matrix, weight) for cfg in layers], at, width=console().width)
