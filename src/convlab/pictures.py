"""What a layer's output looks like as pictures: pure functions, tensors in, image batches out.

The lesson's reshape view, each channel as a grey tile, kernels, a features heat strip, and the
display scales they share. torch is imported inside the functions, so what imports this module
(the CLI listing views) stays instant. :mod:`convlab.views` registers them as views.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


def label_font(size: int) -> Any:
    """Pillow's default font at ``size`` pixels (the scalable one where Pillow has it), for every
    label convlab draws on a picture."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def reshape_view(output: torch.Tensor) -> torch.Tensor:
    """The tutorial's ``torch.reshape(output, (-1, 3, H, W))``, generalised so it never fails.

    Each image's channels are taken in order, three at a time, as one RGB tile: 6 channels
    give 2 tiles per image, exactly what the tutorial's reshape gives. Channels left over
    (``C % 3`` of them: 1 or 2) become one grey tile each, so nothing is dropped and no
    colour is invented. Tiles stay grouped by image: image 0's tiles, then image 1's, ...

    ``(N, C, H, W)`` -> ``(N * (C // 3 + C % 3), 3, H, W)``.
    """
    import torch

    n, c, h, w = output.shape
    triples, rest = divmod(c, 3)
    if rest == 0:
        return output.reshape(-1, 3, h, w)
    parts = []
    if triples:
        parts.append(output[:, : 3 * triples].reshape(n, triples, 3, h, w))
    parts.append(output[:, 3 * triples :].unsqueeze(2).expand(n, rest, 3, h, w))
    return torch.cat(parts, dim=1).reshape(-1, 3, h, w)


def tiles_per_image(channels: int) -> int:
    """How many tiles ``reshape_view`` makes of one image with ``channels`` channels."""
    triples, rest = divmod(channels, 3)
    return triples + rest


# ----------------------------------------------------------------------------- honest views

# Between tiles: a colour no grey level can have, so a separator never reads as a value.
SEPARATOR = (0.2, 0.45, 0.85)
# A heat strip's rows are this wide at most (auto zoom) and at least this tall; past
# MAX_STRIP_FEATURES features only the first ones are shown.
STRIP_WIDTH = 1024
STRIP_ROW = 8
MAX_STRIP_FEATURES = 4096
# Auto zoom: small maps are upscaled (nearest neighbour) to at least this many pixels...
ZOOM_TARGET = 64
# ...unless the picture would get wider than this.
ZOOM_MAX_WIDTH = 2048


def display_scale(tiles: torch.Tensor, scale: str) -> torch.Tensor:
    """Map each tile of ``tiles`` (N, C, H, W) to [0, 1] for display, every tile on its own.

    - ``raw``: the values as they are, clipped to [0, 1], as TensorBoard shows floats
      (negative values black, values over 1 white).
    - ``minmax``: the tile's minimum -> black, its maximum -> white.
    - ``symmetric``: 0 -> mid-grey, -m -> black, +m -> white, m = the tile's largest |value|;
      the sign of a response stays visible.

    A tile with no contrast (all one value) is mid-grey under ``minmax``; under ``symmetric``
    an all-zero tile is mid-grey.
    """
    import torch

    tiles = tiles.float().nan_to_num()
    if scale == "raw":
        return tiles.clamp(0, 1)
    flat = tiles.flatten(1)
    shape = (-1,) + (1,) * (tiles.dim() - 1)
    if scale == "minmax":
        lo, hi = flat.amin(1).view(shape), flat.amax(1).view(shape)
        span = hi - lo
        return torch.where(span > 0, (tiles - lo) / span.clamp_min(1e-30), torch.full_like(tiles, 0.5))
    if scale == "symmetric":
        m = flat.abs().amax(1).view(shape)
        return (0.5 + 0.5 * tiles / m.clamp_min(1e-30)).clamp(0, 1)
    raise ValueError(f"unknown scale {scale!r}")


def auto_zoom(height: int, width: int, columns: int) -> int:
    """The integer factor that makes a ``height`` x ``width`` tile at least ZOOM_TARGET pixels."""
    zoom = max(1, -(-ZOOM_TARGET // max(height, width)))
    while zoom > 1 and columns * (width * zoom + 2) > ZOOM_MAX_WIDTH:
        zoom -= 1
    return zoom


def upscale(tiles: torch.Tensor, zoom: int) -> torch.Tensor:
    """Nearest-neighbour upscaling: every value becomes a ``zoom`` x ``zoom`` block, unblurred."""
    if zoom == 1:
        return tiles
    return tiles.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)


def tile_grid(tiles: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """(N, 1 or 3, H, W) tiles -> one image (1, 3, H', W'), ``columns`` tiles a row.

    Floats in [0, 1] or uint8 pixels (the separator then in pixels, as the writer would
    convert it). The layout of torchvision's ``make_grid`` (``padding`` around every tile,
    empty cells left as padding; a single tile is returned as it is), with the padding painted
    SEPARATOR. Written here rather than imported: ``torchvision.utils`` costs 1.2-1.9 s of
    imports (it loads ``torch._dynamo``), more than a whole CIFAR10 run's own work (measured
    with ``python -X importtime``); tests/test_views.py holds it to make_grid.
    """
    import torch

    if tiles.shape[1] == 1:
        tiles = tiles.expand(-1, 3, -1, -1)
    n, c, h, w = tiles.shape
    if n == 1:
        return tiles.clone()
    colour = torch.tensor(SEPARATOR, dtype=torch.float32, device=tiles.device)
    colour = (colour * 255).to(torch.uint8) if tiles.dtype == torch.uint8 else colour.to(tiles.dtype)
    cols = min(columns, n)
    rows = -(-n // cols)
    grid = colour.view(1, 3, 1, 1).repeat(1, 1, rows * (h + padding) + padding, cols * (w + padding) + padding)
    # Every tile into its cell in one copy: the grid past its first padding, seen as
    # (C, rows, H + padding, cols, W + padding), takes the tiles as (C, rows, H, cols, W).
    cells = grid[0, :, padding:, padding:].unflatten(1, (rows, h + padding)).unflatten(3, (cols, w + padding))
    whole = n - n % cols
    cells[:, : whole // cols, :h, :, :w] = tiles[:whole].view(whole // cols, cols, c, h, w).permute(2, 0, 3, 1, 4)
    if whole < n:  # a last row only partly filled
        cells[:, rows - 1, :h, : n - whole, :w] = tiles[whole:].permute(1, 2, 0, 3)
    return grid


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8 as TensorBoard converts them (x 255, clipped, truncated)."""
    import torch

    return (images.to(torch.float32) * 255).clamp_(0, 255).to(torch.uint8)


def channel_view(
    output: torch.Tensor, images: int = 4, scale: str = "symmetric", zoom: int | None = None, *, pixels: bool = False,
    labels: bool = False,
) -> torch.Tensor:
    """Every channel of the first ``images`` images as its own grey tile: rows = images,
    columns = channels. ``(N, C, H, W)`` -> one image ``(1, 3, H', W')`` in [0, 1], or in
    uint8 pixels with ``pixels`` (what the writer would make of the floats).

    Each tile is scaled on its own (see :func:`display_scale`) and upscaled by ``zoom``
    (None: :func:`auto_zoom`). With ``labels``, each column is numbered with its channel above
    it and each row with its image on the left (margins of LABEL_TOP and :func:`label_left` pixels).
    """
    y = output[:images]
    n, c, h, w = y.shape
    tiles = display_scale(y.reshape(n * c, 1, h, w), scale)
    if pixels:
        # The same picture as uint8 pixels, converted before it is upscaled: a quarter of the
        # bytes to move (the per-step cost of the default views, measured with cProfile).
        tiles = to_pixels(tiles)
    zoom = zoom or auto_zoom(h, w, c)
    grid = tile_grid(upscale(tiles, zoom), columns=c)
    if not labels:
        return grid
    return with_margins(grid, *_grid_labels(n, c, h * zoom, w * zoom))


# Channel and image numbers around a channels view: a strip this tall above it, and one as wide
# as its longest image label on its left; numbers in LABEL_FONT pixels, in LABEL_INK.
LABEL_TOP = 14
LABEL_FONT = 11
LABEL_INK = (60, 60, 60)


def label_left(images: int) -> int:
    """How wide the strip of image numbers left of a channels view of ``images`` rows is."""
    return text_width(label_font(LABEL_FONT), f"img {images - 1}") + 6


@functools.lru_cache(maxsize=64)
def _grid_labels(rows: int, columns: int, tile_h: int, tile_w: int, padding: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The margins of a labelled channels view, (top, left) as uint8 (H, W, 3): drawn once per
    shape, so a view logged every step pays only for joining them to it."""
    import numpy as np
    from PIL import Image, ImageDraw

    font = label_font(LABEL_FONT)
    left_w = label_left(rows)
    height, width = rows * (tile_h + padding) + padding, columns * (tile_w + padding) + padding
    top = Image.new("RGB", (left_w + width, LABEL_TOP), "white")
    draw = ImageDraw.Draw(top)
    draw.text((2, 1), "ch", fill=LABEL_INK, font=font)
    cell = tile_w + padding
    every = max(1, -(-(text_width(font, str(columns - 1)) + 4) // cell))  # fewer numbers when they would not fit
    for j in range(0, columns, every):
        text = str(j)
        draw.text((left_w + padding + j * cell + (tile_w - text_width(font, text)) // 2, 1), text, fill=LABEL_INK, font=font)
    side = Image.new("RGB", (left_w, height), "white")
    draw = ImageDraw.Draw(side)
    for i in range(rows):
        draw.text((2, padding + i * (tile_h + padding) + max(0, (tile_h - LABEL_FONT) // 2)), f"img {i}", fill=LABEL_INK, font=font)
    return np.array(top), np.array(side)  # writable copies: torch.from_numpy shares them, never writes


def with_margins(grid: torch.Tensor, top: np.ndarray, left: np.ndarray) -> torch.Tensor:
    """A picture (1, 3, H, W), floats in [0, 1] or uint8, with uint8 margins above (H', W + L, 3)
    and on its left (H, L, 3), in the picture's own dtype."""
    import torch

    def same(margin: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(margin).permute(2, 0, 1).unsqueeze(0).to(grid.device)
        return t if grid.dtype == torch.uint8 else t.to(grid.dtype) / 255

    return torch.cat([same(top), torch.cat([same(left), grid], dim=3)], dim=2)


def feature_strip(output: torch.Tensor, images: int = 4, scale: str = "symmetric", zoom: int | None = None) -> torch.Tensor:
    """Feature vectors as a heat strip: one row per image (the first ``images``), one cell per
    feature, each row scaled on its own (see :func:`display_scale`). ``(N, F)`` -> ``(1, 3, H', W')``.

    A cell is ``zoom`` pixels wide (None: as wide as fits STRIP_WIDTH) and at least
    STRIP_ROW pixels tall, so even a long vector's rows can be told apart.
    """
    y = output[:images, :MAX_STRIP_FEATURES]
    n, f = y.shape
    cell = zoom or max(1, min(ZOOM_TARGET // 4, STRIP_WIDTH // f))
    rows = display_scale(y.reshape(n, 1, 1, f), scale)
    rows = rows.repeat_interleave(max(cell, STRIP_ROW), dim=-2).repeat_interleave(cell, dim=-1)
    return tile_grid(rows, columns=1)


def kernel_view(
    weight: torch.Tensor, scale: str = "symmetric", zoom: int | None = None, limit: float | None = None, wrap: int | None = None
) -> torch.Tensor:
    """A conv weight ``(out_channels, in_channels/groups, kH, kW)`` as one image ``(1, 3, H', W')``.

    With 3 input channels each output channel's kernel is one RGB tile (R, G, B = the weights
    on the red, green, blue input), in one row. Otherwise rows = output channels, columns =
    input channels, one grey tile each. Each output channel's kernel is scaled as one image,
    so its input channels keep their relative strength.

    A ConvTranspose2d's weight ``(in_channels, out_channels/groups, kH, kW)`` is drawn the same way,
    as it is stored: a row per input channel, the stamp one of its values adds to each output
    channel (one RGB tile per input channel where it gives 3 channels; see views.kernel_grid).

    ``limit``: instead, every weight on one fixed symmetric range (0 mid-grey, -limit black,
    +limit white, clipped beyond), so pictures of one layer taken at different times compare.
    ``wrap``: kernels of 3 input channels (or 1) in rows of this many, not one strip.
    """
    out, cin, kh, kw = weight.shape
    if limit is None:
        scaled = display_scale(weight.detach(), scale)
    else:
        scaled = (0.5 + 0.5 * weight.detach().float().nan_to_num() / limit).clamp(0, 1)
    if cin == 3 or (cin == 1 and wrap):
        tiles, columns = scaled, min(out, wrap or out)
    else:
        tiles, columns = scaled.reshape(out * cin, 1, kh, kw), cin
    return tile_grid(upscale(tiles, zoom or auto_zoom(kh, kw, columns)), columns=columns)


# ----------------------------------------------------------------------------- side by side

# Pictures of one moment beside another (step 0 | now | the change), each under its label; a
# row of them wraps before it gets wider than this (a TensorBoard card at actual image size is
# about 900 px wide in a 1280 px window, 1500 px in a 1920 px one).
SIDE_BY_SIDE_WIDTH = 1200
PANEL_GAP = 16
PANEL_LABEL = 18
PANEL_FONT = 12


def as_pixels(picture: torch.Tensor | np.ndarray) -> np.ndarray:
    """A picture (1, 3, H, W) (floats in [0, 1], converted as TensorBoard converts them, or uint8)
    or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    import torch

    if not isinstance(picture, torch.Tensor):
        return picture

    pixels = picture if picture.dtype == torch.uint8 else to_pixels(picture)
    return pixels[0].permute(1, 2, 0).expand(-1, -1, 3).cpu().numpy()


def panel_boxes(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Where :func:`side_by_side` puts panels of these (height, width): each one's top-left
    (y, x), under its label, left to right and wrapped into rows; and the picture's (height, width)."""
    boxes, x, top, row_h, width = [], 0, 0, 0, 0
    for h, w in sizes:
        if x and x + w > SIDE_BY_SIDE_WIDTH:  # a new row
            top, x, row_h = top + row_h + PANEL_GAP, 0, 0
        boxes.append((top + PANEL_LABEL, x))
        width, row_h = max(width, x + w), max(row_h, PANEL_LABEL + h)
        x += w + PANEL_GAP
    return boxes, (top + row_h, width)


def side_by_side(panels: list[tuple[str, torch.Tensor | np.ndarray]]) -> np.ndarray:
    """One picture (H, W, 3) uint8 of ``(label, picture)`` panels, each under its label, on white."""
    import numpy as np
    from PIL import Image, ImageDraw

    pictures = [as_pixels(p) for _, p in panels]
    boxes, (height, width) = panel_boxes([p.shape[:2] for p in pictures])
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for (y, x), p in zip(boxes, pictures):
        canvas[y : y + p.shape[0], x : x + p.shape[1]] = p
    image = Image.fromarray(canvas)
    draw, font = ImageDraw.Draw(image), label_font(PANEL_FONT)
    for (y, x), (label, _) in zip(boxes, panels):
        draw.text((x, y - PANEL_LABEL + 2), label, fill=LABEL_INK, font=font)
    return np.asarray(image)
