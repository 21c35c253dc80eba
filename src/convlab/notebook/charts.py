"""The pictures a notebook result draws for itself: a :class:`Picture` (a run's logged image, or one
drawn from its numbers) and how they are drawn with Pillow: a sheet of captioned rows, a bar chart of
class probabilities, a line chart of scalars. No torch at import."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Picture:
    """One picture of a run: a logged image (``tag`` at ``step``), or one drawn from its scalars."""

    caption: str
    image: Image.Image
    png: bytes  # as logged: the HTML shows these very bytes

    @classmethod
    def drawn(cls, caption: str, image: Image.Image) -> Picture:
        return cls(caption, image, png_bytes(image))


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # a picture for the screen: zlib's level 6 took 5x longer
    return out.getvalue()


def sheet(title: str, rows: Sequence[Sequence[Picture]]) -> Image.Image:
    """The rows one under the other, each row's pictures side by side at their own size, each under its
    caption, on white."""
    from PIL import Image, ImageDraw

    line, gap = 14, 8

    def row_width(row: Sequence[Picture]) -> int:
        return sum(max(p.image.width, 6 * len(p.caption)) + gap for p in row) - gap

    width = max([row_width(row) for row in rows] + [8 * len(title)]) + 8
    height = line + 8 + sum(line + max(p.image.height for p in row) + 8 for row in rows if row)
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    draw.text((4, 2), title, fill="black")
    y = line + 8
    for row in (r for r in rows if r):
        x = 4
        for p in row:
            draw.text((x, y), p.caption, fill=(60, 60, 60))
            out.paste(p.image.convert("RGB"), (x, y + line))
            x += max(p.image.width, 6 * len(p.caption)) + gap
        y += line + max(p.image.height for p in row) + 8
    return out


def bar_chart(top: Sequence[tuple[str, float]], width: int = 240) -> Image.Image:
    """Classes and their probabilities as horizontal bars on a 0-1 scale, the most probable first."""
    from PIL import Image, ImageDraw

    row, label = 16, 8 + 6 * max([len(name) for name, _ in top] + [1])
    out = Image.new("RGB", (label + width + 48, row * len(top) + 6), "white")
    draw = ImageDraw.Draw(out)
    for i, (name, p) in enumerate(top):
        y = 3 + i * row
        draw.text((4, y + 1), name, fill="black")
        draw.rectangle([label, y + 2, label + width, y + row - 3], outline=(210, 210, 210))
        if p > 0:
            draw.rectangle([label, y + 2, label + max(1, round(p * width)), y + row - 3], fill=COLOURS[0])
        draw.text((label + width + 6, y + 1), f"{p:.1%}", fill="black")
    return out


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def line_chart(series: dict[str, list[tuple[int, float]]], size: tuple[int, int] = (560, 240)) -> Image.Image:
    """Scalar series against their steps, on shared axes: a line for each (a dot where a series has one point)."""
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 56, 12, 22, 26
    points = [(s, v) for values in series.values() for s, v in values if v == v and abs(v) != float("inf")]
    out = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(out)
    if not points:
        draw.text((left, top), "no finite values", fill="black")
        return out
    s0, s1 = min(s for s, _ in points), max(s for s, _ in points)
    v0, v1 = min(v for _, v in points), max(v for _, v in points)
    s1, v1 = (s1 if s1 > s0 else s0 + 1), (v1 if v1 > v0 else v0 + 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (step - s0) / (s1 - s0) * (width - left - right),
                height - bottom - (value - v0) / (v1 - v0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline=(180, 180, 180))
    for value in (v0, v1):
        draw.text((4, xy(s0, value)[1] - 6), f"{value:.3g}", fill="black")
    for step in (s0, s1):
        draw.text((xy(step, v0)[0] - 4, height - bottom + 4), str(int(step)), fill="black")
    draw.text((width // 2 - 12, height - 12), "step", fill="black")
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(s, v) for s, v in values if v == v and abs(v) != float("inf")]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line if len(line) <= 20 else line[-1:]:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 8 + 110 * i, 4), name, fill=colour)
    return out
