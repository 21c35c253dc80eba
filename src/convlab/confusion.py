"""A confusion matrix drawn as a picture with its class names: rows = true class, columns =
predicted class, each cell shaded by its share of the row (so a class with few images reads
as clearly as one with many) and labelled with its count.

Torch-free: counts in, an (H, W, 3) uint8 picture out (PIL draws the text), for the writer's
``image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from convlab.pictures import label_font, text_width

if TYPE_CHECKING:
    import numpy as np

# Cells this many pixels square at most (fewer classes), at least MIN_CELL (many classes);
# past MAX_WIDTH pixels of cells they shrink. Counts are written in cells of COUNT_CELL or more.
MAX_CELL, MIN_CELL, MAX_WIDTH, COUNT_CELL = 34, 10, 1400, 26
FONT_SIZE = 12
# The shade of a full row share: a blue that black text can still be read on at half of it.
FULL = (31, 88, 170)


def confusion_image(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> np.ndarray:
    """``matrix[t][p]``: how many images of true class ``t`` were predicted as ``p``."""
    import numpy as np
    from PIL import Image, ImageDraw

    counts = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    if counts.shape != (k, k):
        raise ValueError(f"a confusion matrix of {k} classes is {k}x{k}, got {counts.shape}")
    cell = max(MIN_CELL, min(MAX_CELL, MAX_WIDTH // max(k, 1)))
    font = label_font(FONT_SIZE)
    names = [str(c) for c in classes]
    label_w = max(text_width(font, n) for n in names) + 8
    line = FONT_SIZE + 6
    top = label_w + (line if title else 0) + line  # rotated column names, the title, the axis note
    left = label_w + line
    note = "rows: true class; shade: share of the row; diagonal outlined: correct"
    width = max(left + k * cell + 2, text_width(font, note) + 8, text_width(font, title) + 8)
    height = top + k * cell + line + 2
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    y_note = line if title else 0
    draw.text((left, y_note + 2), "predicted class", fill=(90, 90, 90), font=font)

    # Column names: drawn on their own strip, turned to read bottom-up, above each column.
    strip = Image.new("RGB", (label_w, k * cell), "white")
    strip_draw = ImageDraw.Draw(strip)
    for j, name in enumerate(names):
        strip_draw.text((label_w - 4 - text_width(font, name), j * cell + (cell - FONT_SIZE) // 2 - 1), name, fill="black", font=font)
    im.paste(strip.rotate(90, expand=True), (left, top - label_w))

    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    for i, name in enumerate(names):
        y = top + i * cell
        draw.text((left - 4 - text_width(font, name), y + (cell - FONT_SIZE) // 2 - 1), name, fill="black", font=font)
        for j in range(k):
            x = left + j * cell
            share = float(shares[i, j])
            colour = tuple(round(255 + (f - 255) * share) for f in FULL)
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour, outline=(200, 200, 200))
            if i == j:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(20, 20, 20))
            if cell >= COUNT_CELL and counts[i, j]:
                text = str(int(counts[i, j]))
                tw = text_width(font, text)
                ink = "white" if share > 0.5 else "black"
                draw.text((x + (cell - tw) // 2, y + (cell - FONT_SIZE) // 2 - 1), text, fill=ink, font=font)
    draw.text((4, top + k * cell + 4), note, fill=(90, 90, 90), font=font)
    # The left strip names the rows' axis, turned like the column names.
    axis = Image.new("RGB", (k * cell, line), "white")
    ImageDraw.Draw(axis).text((2, 2), "true class", fill=(90, 90, 90), font=font)
    im.paste(axis.rotate(90, expand=True), (0, top))
    return np.asarray(im, dtype=np.uint8)
