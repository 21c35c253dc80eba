"""The ``compare`` picture: the same images through every combination of a sweep, side by side.

Column 0 is the input; then one column per combination, labelled with its run name and
output size, each image in a row. Every map is shown at its own size times one common zoom,
framed in the views' blue, so a ceil_mode column really is a row and a column larger. One
display scale covers every output column of a step (see :func:`shared_scale`), so brightness
compares honestly across combinations. Pure: tensors in, an (H, W, 3) uint8 picture out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from convlab.errors import ConfigError
from convlab.pictures import SEPARATOR, ZOOM_MAX_WIDTH, display_scale, label_font, reshape_view, text_width, tiles_per_image
from convlab.stages import StageConfig
from convlab.views import MAX_VIEW_PIXELS, output_images

if TYPE_CHECKING:
    import torch

# The auto zoom makes the smallest map at least this many pixels (a 10x10 pooled map -> 40x40),
# unless that would make the largest more than LARGEST_TILE.
SMALLEST_TILE = 40
LARGEST_TILE = 160
PAD = 2
# Space after a label wider than its maps, so two labels never run together.
LABEL_GAP = 6
FONT_SIZE = 11
LINE_HEIGHT = 14
HEADER = 2 * LINE_HEIGHT + 4
INK, PAPER = (40, 40, 40), (255, 255, 255)
SEPARATOR_PIXEL = tuple(int(c * 255) for c in SEPARATOR)


def compare_tiles(stage: StageConfig, output: torch.Tensor, max_channels: int | None = None) -> torch.Tensor:
    """A stage's output as the run's own tag shows it: ``maxpool`` or the activation lesson's
    ``output`` as it is, a conv through the reshape view; maps of another channel count (pooling
    after a conv) through the reshape view. With ``max_channels`` (a stack's stage, whose tag is
    its channel view), each of the first ``max_channels`` channels as its own grey tile."""
    if max_channels is not None:
        shown = output[:, :max_channels]
        n, c, h, w = shown.shape
        return shown.reshape(n * c, 1, h, w)
    tiles = output_images(stage, output)
    return tiles if tiles.shape[1] in (1, 3) else reshape_view(output)


def tiles_shown(channels: int, max_channels: int | None = None) -> int:
    """How many tiles :func:`compare_tiles` makes of one image's ``channels`` channels."""
    return min(channels, max_channels) if max_channels is not None else tiles_per_image(channels)


def compare_scale(as_pixels: list[bool], scale: str) -> str:
    """Outputs that are the images' own [0, 1] values, shown as they are by their own tags
    (pooled images; one activation over the images): shown as they are (``raw``), one scale by
    nature. Otherwise the views' ``--scale``, shared by all columns."""
    return "raw" if all(as_pixels) else scale


def shared_scale(columns: list[torch.Tensor], scale: str) -> list[torch.Tensor]:
    """Every column mapped to [0, 1] by one :func:`display_scale` over all their values together
    (one minimum and maximum, or one largest |value|, for the whole step)."""
    import torch

    flat = torch.cat([c.float().flatten() for c in columns]).unsqueeze(0)
    scaled = display_scale(flat, scale)[0]
    return [part.view(c.shape) for part, c in zip(scaled.split([c.numel() for c in columns]), columns)]


def to_pixels(tiles: torch.Tensor, zoom: int) -> np.ndarray:
    """Tiles (N, 1 or 3, H, W) in [0, 1] -> uint8 (N, H*zoom, W*zoom, 3), converted as
    TensorBoard converts floats (x 255, clipped, truncated), so a tile equals its tag's pixels."""
    import torch

    pixels = (tiles.float() * 255).clamp(0, 255).to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
    pixels = pixels.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Column:
    label: str
    tiles: int  # tiles per image (a conv of 6 channels: 2 RGB tiles)
    height: int  # one tile, before the zoom
    width: int


class ComparePicture:
    """The layout (header, zoom, where each tile goes) of one sweep's compare picture."""

    def __init__(self, columns: list[Column], rows: int, zoom: int | None = None):
        self.columns, self.rows = columns, rows
        font = label_font(FONT_SIZE)
        self.zoom = zoom or self.auto_zoom(columns)
        labels = [c.label.split("\n") for c in columns]
        self.widths = [
            max(c.tiles * c.width * self.zoom + (c.tiles - 1) * PAD, *(text_width(font, t) + LABEL_GAP for t in lines))
            for c, lines in zip(columns, labels)
        ]
        self.xs = [PAD + sum(w + PAD for w in self.widths[:j]) for j in range(len(columns))]
        self.row_height = max(c.height for c in columns) * self.zoom
        self.width = PAD + sum(w + PAD for w in self.widths)
        if self.pixel_count() > MAX_VIEW_PIXELS:
            raise ConfigError(
                f"the compare picture would be {self.width:,}x{self.height(rows):,} pixels (at most "
                f"{MAX_VIEW_PIXELS:,} in all); use fewer --view-images, a smaller --zoom or --image-size, or fewer values"
            )
        # Everything but the maps is the same every step: the labels, the paper, the frames.
        self.blank = np.empty((self.height(rows), self.width, 3), dtype=np.uint8)
        self.blank[:] = PAPER
        self.blank[:HEADER] = _draw_header(self.width, [(x, lines) for x, lines in zip(self.xs, labels)], font)
        for j, c in enumerate(columns):
            for row in range(rows):
                for tile in range(c.tiles):
                    y, x = self.box(j, row, tile)
                    self.blank[y - 1 : y + c.height * self.zoom + 1, x - 1 : x + c.width * self.zoom + 1] = SEPARATOR_PIXEL

    @staticmethod
    def auto_zoom(columns: list[Column]) -> int:
        """The smallest map at least SMALLEST_TILE pixels, the largest at most LARGEST_TILE, and
        the picture at most ZOOM_MAX_WIDTH wide (a map is never shrunk)."""
        smallest = min(min(c.height, c.width) for c in columns)
        largest = max(max(c.height, c.width) for c in columns)
        zoom = max(1, min(math.ceil(SMALLEST_TILE / smallest), LARGEST_TILE // largest))
        while zoom > 1 and sum(c.tiles * (c.width * zoom + PAD) + PAD for c in columns) > ZOOM_MAX_WIDTH:
            zoom -= 1
        return zoom

    def height(self, rows: int) -> int:
        return HEADER + PAD + rows * (self.row_height + PAD)

    def pixel_count(self) -> int:
        return self.width * self.height(self.rows)

    def box(self, column: int, row: int, tile: int = 0) -> tuple[int, int]:
        """(y, x) of the top-left pixel of image ``row``'s ``tile``-th tile in ``column``."""
        c = self.columns[column]
        return HEADER + PAD + row * (self.row_height + PAD), self.xs[column] + tile * (c.width * self.zoom + PAD)

    def draw(self, columns: list[torch.Tensor]) -> np.ndarray:
        """Tiles in [0, 1] for each column, ``rows * tiles`` each, image by image -> (H, W, 3) uint8."""
        rows = columns[0].shape[0] // self.columns[0].tiles  # the last batch may hold fewer images
        canvas = self.blank[: self.height(rows)].copy()
        for j, (c, tiles) in enumerate(zip(self.columns, columns)):
            pixels = to_pixels(tiles, self.zoom)
            h, w = c.height * self.zoom, c.width * self.zoom
            for n in range(pixels.shape[0]):
                y, x = self.box(j, n // c.tiles, n % c.tiles)
                canvas[y : y + h, x : x + w] = pixels[n]
        return canvas


def _draw_header(width: int, labels: list[tuple[int, list[str]]], font: object) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, HEADER), PAPER)
    draw = ImageDraw.Draw(image)
    for x, lines in labels:
        for i, line in enumerate(lines):
            draw.text((x, 2 + i * LINE_HEIGHT), line, fill=INK, font=font)
    return np.asarray(image)


class OutputStats:
    """Mean and std of every output value over the run, merged batch by batch (Chan et al.),
    in float64; the std is the sample std, as ``torch.std`` gives it."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, y: torch.Tensor) -> None:
        import torch

        var, mean = torch.stack(torch.var_mean(y.double(), correction=0)).tolist()
        n, total = y.numel(), self.count + y.numel()
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += var * n + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1)) if self.count > 1 else 0.0
