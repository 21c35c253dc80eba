"""One stage's top patches as one picture: rows = channels (each headed by its number, mean
activation and dead fraction), columns = the top-k patches, each captioned with its image index
and value. Drawn with PIL; numpy arrays in, an (H, W, 3) uint8 picture out (the writer's
``image`` and the PNG sheet are the same picture).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convlab.pictures import label_font, text_width

FONT_SIZE = 11
GAP = 4  # pixels between cells
BACKGROUND, INK, NOTE, DEAD = (255, 255, 255), (0, 0, 0), (90, 90, 90), (190, 30, 30)


@dataclass(frozen=True)
class SheetRow:
    header: Sequence[str]  # the row's label, one line each (channel, mean, dead fraction)
    tiles: Sequence[np.ndarray]  # (h, w, 3) uint8, one size across the sheet
    captions: Sequence[str]  # one per tile
    dead: bool = False  # a dead channel: its header in red


def draw_sheet(title: Sequence[str], rows: Sequence[SheetRow], tile: tuple[int, int]) -> np.ndarray:
    """``title`` lines above a grid of ``rows``; every tile is ``tile`` = (h, w) pixels."""
    from PIL import Image, ImageDraw

    font = label_font(FONT_SIZE)
    line = FONT_SIZE + 3
    th, tw = tile
    columns = max((len(r.tiles) for r in rows), default=0)
    captions = [c for r in rows for c in r.captions]
    cell_w = max([tw, *(text_width(font, c) + 2 for c in captions)])
    header_w = max([text_width(font, h) for r in rows for h in r.header] + [0]) + 2 * GAP
    cell_h = th + line + GAP
    row_h = max(cell_h, line * max((len(r.header) for r in rows), default=1) + GAP)
    top = GAP + line * len(title) + GAP
    width = max(header_w + columns * (cell_w + GAP) + GAP, max((text_width(font, t) for t in title), default=0) + 2 * GAP)
    height = top + len(rows) * row_h + GAP
    im = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(im)
    for i, text in enumerate(title):
        draw.text((GAP, GAP + i * line), text, fill=INK if i == 0 else NOTE, font=font)
    for r, row in enumerate(rows):
        y = top + r * row_h
        for i, text in enumerate(row.header):
            draw.text((GAP, y + i * line), text, fill=DEAD if row.dead and i else (INK if i == 0 else NOTE), font=font)
        for c, (picture, caption) in enumerate(zip(row.tiles, row.captions)):
            x = header_w + c * (cell_w + GAP)
            im.paste(Image.fromarray(np.ascontiguousarray(picture)), (x + (cell_w - tw) // 2, y))
            draw.text((x + (cell_w - text_width(font, caption)) // 2, y + th + 1), caption, fill=INK, font=font)
    return np.asarray(im, dtype=np.uint8)
