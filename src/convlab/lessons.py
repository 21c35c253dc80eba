"""The demo's arithmetic by hand: the lessons' matrices, and every window of a layer over a
small matrix with its value, worked out in plain Python as a learner would on paper.

No torch here, and integer inputs give exact integers; the tests hold every result against
``torch.nn.functional``. The window geometry is :mod:`convlab.geometry`'s; drawing it is
:mod:`convlab.demo`'s.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, replace
from typing import Union

from convlab.errors import ConfigError
from convlab.geometry import AxisWindows, axis_windows, layer_call, tap_kind
from convlab.layers import output_shape, stage_output_shape
from convlab.stages import ConvConfig, ConvTranspose2dConfig, PoolConfig
from convlab.upsampling import layer_windows, transposed_axes
from convlab.values import Pair, parse_pair

Number = Union[int, float]
Matrix = list[list[Number]]

# The lesson's matrices (the PyTorch tutorials' nn.functional.conv2d and nn.MaxPool2d videos).
POOL_INPUT: Matrix = [[1, 2, 0, 3, 2], [3, 2, 4, 5, 6], [3, 4, 5, 6, 2], [1, 3, 2, 6, 5], [5, 6, 2, 1, 3]]
CONV_INPUT: Matrix = [[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1], [2, 1, 0, 1, 1]]
CONV_WEIGHT: Matrix = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]

# The transposed convolutions of Dumoulin & Visin's conv_arithmetic animations, named after their
# GIFs (no_padding_no_strides_transposed.gif, ...): the input size, then kernel_size, stride,
# padding and output_padding. Each undoes the shape of the Conv2d its un-transposed GIF shows.
TRANSPOSED_CASES: dict[str, tuple[int, int, int, int, int]] = {
    "no-padding-no-strides": (2, 3, 1, 0, 0),
    "arbitrary-padding-no-strides": (6, 4, 1, 2, 0),
    "same-padding-no-strides": (5, 3, 1, 1, 0),
    "full-padding-no-strides": (7, 3, 1, 2, 0),
    "no-padding-strides": (2, 3, 2, 0, 0),
    "padding-strides": (3, 3, 2, 1, 0),
    "padding-strides-odd": (3, 3, 2, 1, 1),
}

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
        digits = len(str(abs(value)))
        raise ConfigError(f"{name}: a {digits}-digit number in row {row} is too large for a demo (at most 12 digits)")
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


def mac_terms(
    matrix: Matrix, weight: Matrix, window: Window, axes: tuple[AxisWindows, AxisWindows] | None = None
) -> list[tuple[Number, Number, bool]]:
    """``(input, weight, is_zero)`` for every tap, row by row: the multiply-accumulate of one cell.
    A zero is padding, or (with a transposed convolution's ``axes``) a zero inserted between values."""
    h, w = size_of(matrix)
    terms = []
    for a, r in enumerate(window.rows):
        for b, c in enumerate(window.cols):
            inside = 0 <= r < h and 0 <= c < w
            zero = not inside if axes is None else tap_kind(axes, r, c) != "input"
            terms.append((matrix[r][c] if inside else 0, weight[a][b], zero))
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


def check_drawable(cfg: Union[ConvConfig, PoolConfig, ConvTranspose2dConfig], size: Pair, *, panels: bool) -> None:
    """The layer fits ``size`` (or a ShapeError) and what the demo draws of it fits a terminal:
    the input with its padding and any window past the edge (a transposed convolution's input
    stretched by its zeros), and, with ``panels``, one panel per window."""
    h, w = size
    _, out_h, out_w = stage_output_shape(cfg, (1, h, w)) if isinstance(cfg, ConvTranspose2dConfig) else output_shape(cfg, (1, h, w))
    call = layer_call(cfg, form="lesson")
    # ceil_mode's extra windows are drawn too (over the edge), even where they are dropped.
    wide = replace(cfg, ceil_mode=True) if isinstance(cfg, PoolConfig) else cfg
    rows, cols = (len(a.extent()) for a in layer_windows(wide, h, w))
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


# ----------------------------------------------------------------------------- going back up


@dataclass(frozen=True)
class TransposedCase:
    """F.conv_transpose2d worked out as its direct convolution: the input stretched by zeros, the
    kernel flipped, every window (in the stretched input's coordinates: negative or past the end
    is padding) with its sum of products."""

    cfg: ConvTranspose2dConfig
    stretched: Matrix
    flipped: Matrix
    windows: list[Window]
    output: Matrix


def stretch(matrix: Matrix, stride: Pair) -> Matrix:
    """``stride - 1`` zeros between neighbouring values, along each axis."""
    (h, w), (sh, sw) = size_of(matrix), stride
    out = [[0] * ((w - 1) * sw + 1) for _ in range((h - 1) * sh + 1)]
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            out[r * sh][c * sw] = value
    return out


def flip(weight: Matrix) -> Matrix:
    """The kernel turned half a circle (rows and columns reversed)."""
    return [row[::-1] for row in weight[::-1]]


def transposed_case(cfg: ConvTranspose2dConfig, matrix: Matrix, weight: Matrix) -> TransposedCase:
    axes = layer_windows(cfg, *size_of(matrix))
    stretched, flipped = stretch(matrix, cfg.stride), flip(weight)
    windows = []
    for i in range(axes[0].count):
        for j in range(axes[1].count):
            window = Window((i, j), tuple(axes[0].taps(i)), tuple(axes[1].taps(j)), 0)
            windows.append(replace(window, value=sum(x * k for x, k, _ in mac_terms(stretched, flipped, window, axes))))
    return TransposedCase(cfg, stretched, flipped, windows, to_matrix(windows, (axes[0].count, axes[1].count)))


def stamps(cfg: ConvTranspose2dConfig, matrix: Matrix, weight: Matrix) -> Matrix:
    """The same output the other way round, as the gradient of F.conv2d computes it: each input
    value times the kernel, added into the output at (row*stride - padding, col*stride - padding)."""
    (h, w), axes = size_of(matrix), transposed_axes(cfg, *size_of(matrix))
    out: Matrix = [[0] * axes[1].out for _ in range(axes[0].out)]
    for r in range(h):
        for c in range(w):
            for a, krow in enumerate(weight):
                for b, k in enumerate(krow):
                    y = r * axes[0].stride - axes[0].pad + a * axes[0].dilation
                    x = c * axes[1].stride - axes[1].pad + b * axes[1].dilation
                    if 0 <= y < axes[0].out and 0 <= x < axes[1].out:
                        out[y][x] += matrix[r][c] * k
    return out


def transposed_case_layer(name: str) -> tuple[ConvTranspose2dConfig, Pair]:
    """One of conv_arithmetic's transposed animations: the layer (one channel, no bias) and its input size."""
    if name not in TRANSPOSED_CASES:
        raise ConfigError(f"unknown --case {name!r}; conv_arithmetic's transposed animations are: {', '.join(TRANSPOSED_CASES)}")
    n, k, s, p, op = TRANSPOSED_CASES[name]
    return ConvTranspose2dConfig(1, 1, (k, k), (s, s), (p, p), (op, op), bias=False), (n, n)


def back_to(cfg: ConvTranspose2dConfig, size: Pair, target: Pair) -> ConvTranspose2dConfig:
    """``cfg`` with the output_padding that makes ``size`` into ``target``, where one does."""
    pads = []
    for a, want in zip(transposed_axes(cfg, *size), target):
        pads.append(want - (a.out - a.output_padding) if want in a.conv_sizes else a.output_padding)
    return replace(cfg, output_padding=tuple(pads))


# ----------------------------------------------------------------------------- inputs


def kernel_weights(text: str | None, kernel_size: Pair | None) -> Matrix:
    """``--weight`` (its size must match ``--kernel`` when both are given), the lesson's kernel,
    or, for a ``--kernel`` alone, a box of ones."""
    if text is None:
        if kernel_size is None or kernel_size == size_of(CONV_WEIGHT):
            return CONV_WEIGHT
        if min(kernel_size) < 1:  # as the layer's own check says it, before a box of no ones is drawn
            raise ConfigError(f"kernel_size must be at least 1, got {kernel_size[0]}x{kernel_size[1]}")
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
