"""``convlab explain --animate``: a convolution-arithmetic animation, drawn with Pillow.

One intro frame (the input and its padding), then one frame per output cell: the window's
taps over the input (dilation gaps left visible inside its outline), padding drawn apart
from the input, taps past the edge (ceil_mode) in red, and the output cell being filled.
A transposed convolution is drawn as conv_arithmetic draws it: its direct convolution, the
kernel sliding over the input with zeros put between its values (white) and padded.
The geometry is :mod:`convlab.geometry`'s, so the frames agree with what PyTorch computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.errors import ConvlabError
from convlab.experiment import Experiment
from convlab.geometry import AxisWindows, axis_arithmetic, layer_call, tap_kind
from convlab.layers import ShapeError, output_shape, stage_output_shape
from convlab.pictures import label_font, text_width
from convlab.stages import ConvTranspose2dConfig, LayerConfig, PoolConfig
from convlab.upsampling import layer_windows
from convlab.values import Pair

if TYPE_CHECKING:
    from PIL import Image

# One frame per output cell: past this many a GIF stops being something to watch (and to keep small).
MAX_CELLS = 400
# The input drawn, padding included: past this many cells a side no one sees the kernel (nor a frame fits a screen).
MAX_SIDE = 100
INTRO_FRAMES = 1
FRAME_MS, INTRO_MS, LAST_MS = 700, 1200, 2000

BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
INPUT_FILL, INPUT_LINE = (207, 226, 243), (91, 127, 166)
ZERO_FILL, ZERO_LINE = (255, 255, 255), (120, 120, 120)
PADDING_FILL, PADDING_LINE = (244, 244, 244), (160, 160, 160)
TAP_INPUT, TAP_PADDING = (61, 133, 198), (158, 184, 208)
EDGE_LINE = (214, 39, 40)
FOOTPRINT = (230, 145, 56)
OUTPUT_EMPTY, OUTPUT_DONE, OUTPUT_LINE = (217, 234, 211), (147, 196, 125), (86, 130, 66)


class AnimationError(ConvlabError):
    """The animation cannot be drawn or written as asked."""


def default_size(cfg: LayerConfig | ConvTranspose2dConfig) -> Pair:
    """A small input that shows the layer: at least 5, room for a second window, and for
    ceil_mode a size the windows do not tile, so the window over the edge shows; a transposed
    convolution's 3x3 (2x2 with stride 3 or more), as conv_arithmetic's are."""
    if isinstance(cfg, ConvTranspose2dConfig):
        return (3 if cfg.stride[0] < 3 else 2, 3 if cfg.stride[1] < 3 else 2)
    sizes = []
    for a in axis_arithmetic(cfg, 5, 5):
        n = max(5, a.span - 2 * a.pad + a.stride)
        if isinstance(cfg, PoolConfig) and cfg.ceil_mode and (n + 2 * a.pad - a.span) % a.stride == 0 and a.stride > 1:
            n += 1  # an uneven fit, so ceil_mode's window over the edge shows
        sizes.append(n)
    return (sizes[0], sizes[1])


@dataclass(frozen=True)
class Layout:
    cell: int
    rows: range  # canvas rows and columns, in input coordinates
    cols: range
    origin: Pair  # pixel (x, y) of the canvas' top-left cell
    out_origin: Pair
    out_shape: Pair
    size: Pair  # frame (width, height)


def _layout(axes: tuple[AxisWindows, AxisWindows]) -> Layout:
    h, w = axes
    rows, cols = h.extent(), w.extent()
    out_h, out_w = h.count, w.count
    cell = max(10, min(30, 300 // max(len(rows), len(cols), out_h, out_w)))
    margin, title = 12, 22
    grid_h = max(len(rows), out_h) * cell
    origin = (margin, margin + title + (grid_h - len(rows) * cell) // 2)
    out_x = margin + len(cols) * cell + 3 * cell
    out_origin = (out_x, margin + title + (grid_h - out_h * cell) // 2)
    width = out_x + out_w * cell + margin
    height = margin + title + grid_h + 30
    # Even sizes: some players and encoders choke on odd frame dimensions.
    return Layout(cell, rows, cols, origin, out_origin, (out_h, out_w), (width + width % 2, height + height % 2))


def _title(cfg: LayerConfig | ConvTranspose2dConfig, size: Pair, out: Pair) -> str:
    return f"{layer_call(cfg, form='caption')}:  {size[0]}x{size[1]} -> {out[0]}x{out[1]}"


def _legend(cfg: LayerConfig | ConvTranspose2dConfig) -> str:
    if isinstance(cfg, ConvTranspose2dConfig):
        return "input (blue) with zeros between (white), padding (dotted), output (green)"
    return "input (blue), padding (dotted), output (green)"


def _caption(i: int, j: int, axes: tuple[AxisWindows, AxisWindows]) -> str:
    rows, cols = axes[0].taps(i), axes[1].taps(j)
    text = f"output ({i}, {j}) <- rows {rows[0]}..{rows[-1]}, columns {cols[0]}..{cols[-1]}"
    if axes[0].overhang(i) or axes[1].overhang(j):
        text += "  (red: past the edge, ignored)"
    return text


def _dotted_rect(draw: Any, box: tuple[int, int, int, int], color: tuple[int, int, int], step: int = 3) -> None:
    x0, y0, x1, y1 = box
    for x in range(x0, x1 + 1, step):
        draw.point([(x, y0), (x, y1)], fill=color)
    for y in range(y0, y1 + 1, step):
        draw.point([(x0, y), (x1, y)], fill=color)


def frames(cfg: LayerConfig | ConvTranspose2dConfig, size: Pair) -> list[Image.Image]:
    """The intro frame, then one frame per output cell in row-major order (RGB images)."""
    from PIL import Image, ImageDraw

    height, width = size
    axes = layer_windows(cfg, height, width)
    out_shape = (axes[0].count, axes[1].count)
    lay = _layout(axes)
    font, small = label_font(13), label_font(11)
    title = _title(cfg, size, out_shape)
    c = lay.cell
    cells = [divmod(n, lay.out_shape[1]) for n in range(lay.out_shape[0] * lay.out_shape[1])]
    captions = [_caption(i, j, axes) for i, j in cells]
    widest = max(text_width(font, title), *(text_width(small, t) for t in captions)) + 24
    if widest > lay.size[0]:
        lay = replace(lay, size=(widest + widest % 2, lay.size[1]))

    def box(origin: Pair, r: int, col: int) -> tuple[int, int, int, int]:
        return (origin[0] + col * c, origin[1] + r * c, origin[0] + (col + 1) * c - 1, origin[1] + (r + 1) * c - 1)

    def canvas_box(r: int, col: int) -> tuple[int, int, int, int]:
        return box(lay.origin, r - lay.rows.start, col - lay.cols.start)

    def draw_base(draw: Any) -> None:
        draw.text((12, 10), title, fill=INK, font=font)
        for r in lay.rows:
            for col in lay.cols:
                k = tap_kind(axes, r, col)
                if k == "input":
                    draw.rectangle(canvas_box(r, col), fill=INPUT_FILL, outline=INPUT_LINE)
                elif k == "zero":
                    draw.rectangle(canvas_box(r, col), fill=ZERO_FILL, outline=ZERO_LINE)
                elif k == "padding":
                    draw.rectangle(canvas_box(r, col), fill=PADDING_FILL)
                    _dotted_rect(draw, canvas_box(r, col), PADDING_LINE)
        ax, ay = lay.origin[0] + len(lay.cols) * c + c // 2, lay.out_origin[1] + lay.out_shape[0] * c // 2
        draw.line([(ax, ay), (ax + 2 * c, ay)], fill=INK, width=2)
        draw.polygon([(ax + 2 * c, ay), (ax + 2 * c - 6, ay - 4), (ax + 2 * c - 6, ay + 4)], fill=INK)

    def draw_output(draw: Any, done: int, current: int | None) -> None:
        for n in range(lay.out_shape[0] * lay.out_shape[1]):
            i, j = divmod(n, lay.out_shape[1])
            fill = FOOTPRINT if n == current else (OUTPUT_DONE if n < done else OUTPUT_EMPTY)
            draw.rectangle(box(lay.out_origin, i, j), fill=fill, outline=OUTPUT_LINE)

    intro = Image.new("RGB", lay.size, BACKGROUND)
    draw = ImageDraw.Draw(intro)
    draw_base(draw)
    draw_output(draw, 0, None)
    draw.text((12, lay.size[1] - 24), _legend(cfg), fill=INK, font=small)
    out = [intro]

    for n, (i, j) in enumerate(cells):
        frame = Image.new("RGB", lay.size, BACKGROUND)
        draw = ImageDraw.Draw(frame)
        draw_base(draw)
        rows, cols = axes[0].taps(i), axes[1].taps(j)
        for r in rows:
            for col in cols:
                k = tap_kind(axes, r, col)
                if k == "edge":
                    draw.rectangle(canvas_box(r, col), outline=EDGE_LINE, width=2)
                else:
                    draw.rectangle(canvas_box(r, col), fill=TAP_INPUT if k == "input" else TAP_PADDING, outline=INPUT_LINE)
        x0, y0, _, _ = canvas_box(rows[0], cols[0])
        _, _, x1, y1 = canvas_box(rows[-1], cols[-1])
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=FOOTPRINT, width=3)
        draw_output(draw, n, n)
        draw.text((12, lay.size[1] - 24), captions[n], fill=INK, font=small)
        out.append(frame)
    return out


def check_size(cfg: LayerConfig | ConvTranspose2dConfig, size: Pair) -> Pair:
    """The output shape of ``cfg`` on ``size``, or one clear line if it cannot be animated."""
    h, w = size
    if isinstance(cfg, ConvTranspose2dConfig):
        _, out_h, out_w = stage_output_shape(cfg, (cfg.in_channels, h, w))
    else:
        _, out_h, out_w = output_shape(cfg, (1, h, w))
    rows, cols = (len(a.extent()) for a in layer_windows(cfg, h, w))
    if max(rows, cols) > MAX_SIDE:
        raise AnimationError(
            f"--animate draws the input with its padding (and any zeros put between its values): {rows}x{cols} cells "
            f"on a {h}x{w} input, too many to see (at most {MAX_SIDE}x{MAX_SIDE}); use a smaller --size, stride or padding"
        )
    if out_h * out_w > MAX_CELLS:
        raise AnimationError(
            f"--animate draws one frame per output cell, and a {h}x{w} input gives {out_h}x{out_w} = "
            f"{out_h * out_w} (at most {MAX_CELLS}); use a smaller --size, or leave it out for a small input"
        )
    return (out_h, out_w)


def save_gif(images: list[Image.Image], path: Path) -> int:
    """Write the frames as a looping GIF (atomically); returns its size in bytes."""
    durations = [INTRO_MS] * INTRO_FRAMES + [FRAME_MS] * (len(images) - INTRO_FRAMES)
    durations[-1] = LAST_MS
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AnimationError(f"cannot write --animate {path}: {exc.strerror or exc}") from None
    return path.stat().st_size


def check_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise AnimationError(f"--animate writes a GIF; give a file name ending in .gif, not {path.name!r}")
    if path.is_dir():
        raise AnimationError(f"--animate {path} is a directory; give a file name ending in .gif")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise AnimationError(f"--animate {path}: folder {parent} does not exist; create it or choose another path")
    return path


def animate(exp: Experiment, path: Path, *, size: Pair | None = None, logdir: Path | None = None) -> dict[str, Any]:
    """Draw ``exp``'s layer on a small input (or ``size``), write the GIF, and log the frames to
    TensorBoard under ``logdir`` (tag ``animation``, step = frame) when given."""
    from convlab.runs import default_run_name

    return animate_layer(exp.layer, path, size=size, logdir=logdir, run_name="animate-" + default_run_name(exp))


def animate_layer(
    cfg: LayerConfig | ConvTranspose2dConfig, path: Path, *, run_name: str, size: Pair | None = None, logdir: Path | None = None
) -> dict[str, Any]:
    """``animate`` for one layer; its frames go to the run ``run_name`` in ``logdir``."""
    path = check_path(path)
    size = size or default_size(cfg)
    try:
        out_shape = check_size(cfg, size)
    except ShapeError as exc:
        raise AnimationError(f"cannot animate on a {size[0]}x{size[1]} input: {exc}") from None
    images = frames(cfg, size)
    run_dir = None
    if logdir is not None:
        run_dir = _log_frames(run_name, images, logdir)
    nbytes = save_gif(images, path)
    return {"path": str(path), "frames": len(images), "size": size, "output": out_shape,
            "frame_size": images[0].size, "bytes": nbytes, "run_dir": None if run_dir is None else str(run_dir)}


def _log_frames(run_name: str, images: list[Image.Image], logdir: Path) -> Path:
    import numpy as np

    from convlab.runs import create_run_dir
    from convlab.writer import RunWriter

    run_dir = create_run_dir(logdir, run_name, explicit=False)
    writer = RunWriter(run_dir)
    try:
        for step, image in enumerate(images):
            writer.image("animation", np.asarray(image), step)
    except BaseException:
        writer.discard()
        raise
    writer.close()
    return run_dir

