"""What convlab predict draws: an attribution map over the image with its colour bar, and one
sheet per image (the picture as given, the picture as the model sees it, each attribution, the
classes it said), drawn with Pillow. numpy arrays in, uint8 (H, W, 3) pictures out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convlab.pictures import label_font, text_width

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from convlab.predict.images import Seen

# Small images are enlarged (nearest neighbour, every pixel a square) to at least this size.
PICTURE_SIDE = 128
# The heat scale: matplotlib's "inferno" at nine evenly spaced points (black, purple, red,
# orange, pale yellow), perceptually even and readable in grey; interpolated linearly between.
INFERNO = (
    (0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85),
    (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164),
)
HEAT_OPACITY = 0.6  # the heat over a grey copy of the image: the colour is the map's, the shapes the image's
BAR_WIDTH = 12
FONT_SIZE = 12
LINE = FONT_SIZE + 5
GAP = 10
MUTED = (90, 90, 90)
WARNING = (170, 60, 0)
BAR_FILL = (31, 88, 170)
CROP_BOX = (255, 40, 40)


def zoom_for(height: int, width: int) -> int:
    return max(1, math.ceil(PICTURE_SIDE / max(height, width)))


def heat(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> the heat scale's colours, uint8 (H, W, 3)."""
    import numpy as np

    anchors = np.asarray(INFERNO, dtype=np.float32)
    position = np.clip(np.nan_to_num(values.astype(np.float32)), 0, 1) * (len(anchors) - 1)
    low = np.minimum(position.astype(np.int64), len(anchors) - 2)
    frac = (position - low)[..., None]
    return (anchors[low] * (1 - frac) + anchors[low + 1] * frac).round().astype(np.uint8)


def enlarged(pixels: np.ndarray, zoom: int) -> np.ndarray:
    """uint8 (H, W, 1 or 3) -> (H*zoom, W*zoom, 3): every pixel a zoom x zoom square."""
    import numpy as np

    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)


def overlay(pixels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The heat of ``values`` (H, W) in [0, 1] over a grey copy of ``pixels`` (H, W, C), same size."""
    import numpy as np

    grey = pixels.astype(np.float32).mean(axis=2, keepdims=True)
    return (grey * (1 - HEAT_OPACITY) + heat(values).astype(np.float32) * HEAT_OPACITY).round().astype(np.uint8)


@dataclass(frozen=True)
class Panel:
    """One picture of a sheet or a tag, with its caption (two short lines) and, for an
    attribution, the labels of its colour bar's ends."""

    pixels: np.ndarray  # uint8 (H, W, 3), already at display size
    title: str
    detail: str = ""
    bar: tuple[str, str] | None = None  # (top, bottom) labels: the map's largest value, 0


def attribution_panel(pixels: np.ndarray, values: np.ndarray, title: str, detail: str, top: str) -> Panel:
    """An attribution map over the image as the model saw it, enlarged together, with its colour bar."""
    zoom = zoom_for(*values.shape)
    return Panel(enlarged(overlay(pixels, values), zoom), title, detail, (top, "0"))


def _draw_panel(canvas: Image.Image, panel: Panel, x: int, y: int) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(canvas)
    font = label_font(FONT_SIZE)
    draw.text((x, y), panel.title, fill="black", font=font)
    draw.text((x, y + LINE), panel.detail, fill=MUTED, font=font)
    top = y + 2 * LINE + 2
    canvas.paste(Image.fromarray(panel.pixels), (x, top))
    if panel.bar is not None:
        h = panel.pixels.shape[0]
        ramp = heat(np.linspace(1, 0, h, dtype=np.float32)[:, None].repeat(BAR_WIDTH, axis=1))
        bx = x + panel.pixels.shape[1] + 4
        canvas.paste(Image.fromarray(ramp), (bx, top))
        draw.rectangle((bx, top, bx + BAR_WIDTH - 1, top + h - 1), outline=MUTED)
        draw.text((bx + BAR_WIDTH + 3, top - 2), panel.bar[0], fill="black", font=font)
        draw.text((bx + BAR_WIDTH + 3, top + h - FONT_SIZE - 2), panel.bar[1], fill="black", font=font)


def panel_size(panel: Panel) -> tuple[int, int]:
    """(width, height) the panel takes, caption and colour bar included."""
    font = label_font(FONT_SIZE)
    h, w = panel.pixels.shape[:2]
    width = w
    if panel.bar is not None:
        width += 4 + BAR_WIDTH + 3 + max(text_width(font, t) for t in panel.bar)
    width = max(width, text_width(font, panel.title), text_width(font, panel.detail))
    return width, 2 * LINE + 2 + h


def panel_picture(panel: Panel) -> np.ndarray:
    """One panel alone on white, for a TensorBoard image tag."""
    import numpy as np
    from PIL import Image

    w, h = panel_size(panel)
    canvas = Image.new("RGB", (w + 2 * 4, h + 2 * 4), "white")
    _draw_panel(canvas, panel, 4, 4)
    return np.asarray(canvas, dtype=np.uint8)


def original_panel(seen: Seen, side: int = PICTURE_SIDE) -> Panel:
    """The picture as given (upright, read as the model's input was), at most ``side`` pixels,
    with the outline of what the centre crop kept."""
    import numpy as np
    from PIL import Image, ImageDraw

    from convlab.data.folder import read

    r = seen.reading
    whole = read(seen.file.path, 0, False).pixels
    h, w = whole.shape[:2]
    if max(h, w) < side:  # a small picture enlarged as the model's input is, every pixel a square
        fit = float(zoom_for(h, w))
        im = Image.fromarray(enlarged(whole, int(fit)))
    else:
        fit = min(side / h, side / w)
        im = Image.fromarray(whole).resize((max(1, round(w * fit)), max(1, round(h * fit))), Image.BILINEAR)
    kept = r.kept < 0.999
    if kept:
        crop_h, crop_w = r.pixels.shape[0] / r.scale * fit, r.pixels.shape[1] / r.scale * fit
        x0, y0 = (im.width - crop_w) / 2, (im.height - crop_h) / 2
        ImageDraw.Draw(im).rectangle((round(x0), round(y0), round(x0 + crop_w) - 1, round(y0 + crop_h) - 1), outline=CROP_BOX, width=2)
    return Panel(np.asarray(im, dtype=np.uint8), "as given", f"{h}x{w} {r.format}" + (", red: what is kept" if kept else ""))


def seen_panel(seen: Seen) -> Panel:
    pixels = seen.reading.pixels
    h, w = pixels.shape[:2]
    zoom = zoom_for(h, w)
    return Panel(enlarged(pixels, zoom), "as the model sees it", f"{h}x{w}, shown {zoom}x" if zoom > 1 else f"{h}x{w}")


def sheet(title: str, panels: Sequence[Panel], top: Sequence[tuple[str, float]], notes: Sequence[str],
          warnings: Sequence[str]) -> np.ndarray:
    """One image's sheet: its title, the panels in a row, the classes as bars, then what was
    done to the image and any warnings."""
    import numpy as np
    from PIL import Image, ImageDraw

    font = label_font(FONT_SIZE)
    sizes = [panel_size(p) for p in panels]
    row_w = sum(w for w, _ in sizes) + GAP * (len(panels) - 1)
    row_h = max(h for _, h in sizes)
    name_w = max(text_width(font, name) for name, _ in top)
    bar_w = 240
    lines = [(t, MUTED) for t in notes] + [(f"warning: {t}", WARNING) for t in warnings]
    text_w = max([text_width(font, t) for t, _ in lines] + [0])
    width = max(row_w, name_w + bar_w + 70, text_w, text_width(label_font(FONT_SIZE + 2), title)) + 2 * GAP
    height = GAP + LINE + 4 + row_h + GAP + len(top) * LINE + GAP + len(lines) * LINE + GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, GAP), title, fill="black", font=label_font(FONT_SIZE + 2))
    x, y = GAP, GAP + LINE + 4
    for panel, (w, _) in zip(panels, sizes):
        _draw_panel(canvas, panel, x, y)
        x += w + GAP
    y += row_h + GAP
    for name, p in top:
        draw.text((GAP + name_w - text_width(font, name), y), name, fill="black", font=font)
        bx = GAP + name_w + 8
        draw.rectangle((bx, y + 3, bx + bar_w, y + LINE - 3), outline=(200, 200, 200))
        if p > 0:
            draw.rectangle((bx, y + 3, bx + max(1, round(bar_w * p)), y + LINE - 3), fill=BAR_FILL)
        draw.text((bx + bar_w + 6, y), f"{p:.1%}", fill="black", font=font)
        y += LINE
    y += GAP
    for text, colour in lines:
        draw.text((GAP, y), text, fill=colour, font=font)
        y += LINE
    return np.asarray(canvas, dtype=np.uint8)
