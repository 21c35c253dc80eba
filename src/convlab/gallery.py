"""Which images an evaluation got wrong, and which right ones it was least sure of, as pictures:
each image (nearest-neighbour upscaled) over its caption, in a grid.

- the mistakes, most confident first (the probability it gave its wrong answer), captioned with
  the image's index in the evaluation set, its true class and ``-> predicted probability``;
- per class, one row of the correct images whose probability for their class was lowest.

Pure: class indices and probabilities in, picks out; uint8 images and captions in, an (H, W, 3)
uint8 picture out (Pillow draws the text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convlab.pictures import LABEL_INK, SEPARATOR, label_font, text_width

if TYPE_CHECKING:
    import numpy as np
    import torch

# At most this many mistakes are shown (the most confident), in rows of COLUMNS; per class, the
# PER_CLASS least confident correct images, for datasets of at most MAX_CLASS_ROWS classes.
MAX_MISTAKES = 64
COLUMNS = 8
PER_CLASS = 8
MAX_CLASS_ROWS = 20
# Images are upscaled to at least this many pixels; a cell is at least CELL_WIDTH wide (its caption).
TILE_TARGET = 64
CELL_WIDTH = 112
CAPTION_FONT = 11
CAPTION_LINE = 13
PAD = 4
TITLE = 20


# ----------------------------------------------------------------------------- picks


def mistakes(predicted: torch.Tensor, confidence: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """Indices of the wrongly predicted images, the most confident (highest probability of the
    wrong class) first; ties in index order."""
    import torch

    wrong = (predicted != labels).nonzero().flatten()
    order = torch.sort(confidence[wrong], descending=True, stable=True).indices
    return wrong[order].tolist()


def least_confident(predicted: torch.Tensor, p_true: torch.Tensor, labels: torch.Tensor, classes: int,
                    per_class: int = PER_CLASS) -> list[list[int]]:
    """Per class, indices of its correctly predicted images, the lowest probability for their class first."""
    import torch

    rows = []
    for k in range(classes):
        right = ((labels == k) & (predicted == k)).nonzero().flatten()
        order = torch.sort(p_true[right], stable=True).indices
        rows.append(right[order][:per_class].tolist())
    return rows


# ----------------------------------------------------------------------------- the picture


@dataclass(frozen=True)
class Layout:
    """Where a gallery's cells are: a tile of ``tile`` (height, width) pixels over its caption."""

    tile: tuple[int, int]
    cell: tuple[int, int]  # (height, width), caption included
    left: int  # the row labels' width (0: none)
    top: int  # the title's height

    def origin(self, row: int, column: int) -> tuple[int, int]:
        """The (y, x) of the tile in ``row``, ``column``."""
        return self.top + PAD + row * (self.cell[0] + PAD), self.left + PAD + column * (self.cell[1] + PAD)


def zoom_for(height: int, width: int) -> int:
    return max(1, -(-TILE_TARGET // max(height, width)))


def layout(image_hw: tuple[int, int], caption_lines: int, row_labels: Sequence[str] = (), title: bool = True) -> Layout:
    zoom = zoom_for(*image_hw)
    tile = (image_hw[0] * zoom, image_hw[1] * zoom)
    cell = (tile[0] + caption_lines * CAPTION_LINE + 2, max(tile[1], CELL_WIDTH))
    left = max((text_width(label_font(CAPTION_FONT), t) for t in row_labels), default=-PAD) + PAD + 2 if row_labels else 0
    return Layout(tile, cell, left, TITLE if title else 0)


def gallery_picture(
    images: np.ndarray, rows: Sequence[Sequence[int]], captions: dict[int, Sequence[str]], title: str,
    row_labels: Sequence[str] = (),
) -> np.ndarray:
    """``images`` (N, C, H, W) uint8 (C = 1 or 3); ``rows``: the image indices of each row; each
    image drawn (upscaled) over its caption lines; ``row_labels`` on the left of the rows."""
    import numpy as np
    from PIL import Image, ImageDraw

    lines = max((len(c) for c in captions.values()), default=1)
    lay = layout(images.shape[2:], lines, row_labels)
    zoom = lay.tile[0] // images.shape[2]
    columns = max((len(r) for r in rows), default=1)
    width = max(lay.origin(0, columns)[1], text_width(label_font(CAPTION_FONT + 1), title) + 2 * PAD)
    height = lay.origin(max(len(rows), 1), 0)[0]
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    frame = tuple(int(c * 255) for c in SEPARATOR)
    for r, row in enumerate(rows):
        for c, index in enumerate(row):
            y, x = lay.origin(r, c)
            tile = images[index].transpose(1, 2, 0).repeat(zoom, axis=0).repeat(zoom, axis=1)
            canvas[y - 1 : y + lay.tile[0] + 1, x - 1 : x + lay.tile[1] + 1] = frame
            canvas[y : y + lay.tile[0], x : x + lay.tile[1]] = tile  # grey broadcasts to RGB
    picture = Image.fromarray(canvas)
    draw, font = ImageDraw.Draw(picture), label_font(CAPTION_FONT)
    draw.text((PAD, 3), title, fill=(0, 0, 0), font=label_font(CAPTION_FONT + 1))
    for r, row in enumerate(rows):
        if row_labels:
            y, _ = lay.origin(r, 0)
            draw.text((PAD, y + lay.tile[0] // 2 - CAPTION_FONT // 2), row_labels[r], fill=(0, 0, 0), font=font)
        for c, index in enumerate(row):
            y, x = lay.origin(r, c)
            for i, text in enumerate(captions.get(index, ())):
                draw.text((x, y + lay.tile[0] + 2 + i * CAPTION_LINE), text, fill=LABEL_INK, font=font)
    return np.asarray(picture)


def mistakes_picture(images: np.ndarray, picked: Sequence[int], total: int, labels: Sequence[int], predicted: Sequence[int],
                     confidence: Sequence[float], classes: Sequence[str], title: str) -> np.ndarray:
    """The mistakes ``picked`` (at most MAX_MISTAKES, the most confident first) of ``total``."""
    shown = list(picked[:MAX_MISTAKES])
    rows = [shown[i : i + COLUMNS] for i in range(0, len(shown), COLUMNS)]
    captions = {i: (f"#{i} {classes[labels[i]]}", f"-> {classes[predicted[i]]} {confidence[i]:.2f}") for i in shown}
    more = f" (the {len(shown)} most confident)" if len(shown) < total else ""
    return gallery_picture(images, rows, captions, f"{title}: {total} mistake(s){more}; #index true class, -> predicted probability")


def unsure_picture(images: np.ndarray, rows: Sequence[Sequence[int]], p_true: Sequence[float], classes: Sequence[str],
                   title: str) -> np.ndarray:
    """Per class, its correct images it was least sure of: ``#index probability``."""
    captions = {i: (f"#{i} {p_true[i]:.2f}",) for row in rows for i in row}
    return gallery_picture(images, rows, captions, f"{title}: per class, the right answers it was least sure of",
                           row_labels=list(classes))
