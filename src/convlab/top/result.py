"""What one pass of ``convlab top`` found, and how it shows itself: per stage a sheet (the picture
logged and saved), the channel table (terminal and text tag), the stages ranked by dead channels,
and the JSON of ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.top.patches import ImageStore, crop, patch_picture, patch_zoom
from convlab.top.plan import TopPlan, TopStage, ranges
from convlab.top.running import Hit
from convlab.top.sheet import SheetRow, draw_sheet

if TYPE_CHECKING:
    import numpy as np


@dataclass
class StageTops:
    """One stage's outcome: per shown channel its top-k; every channel's mean and dead fraction."""

    stage: TopStage
    hits: list[list[Hit]]
    means: list[float]
    dead_fractions: list[float]

    @property
    def dead_channels(self) -> list[int]:
        """Channels never above 0 (after their activation) on any image counted."""
        return [c for c, f in enumerate(self.dead_fractions) if f >= 1.0]


@dataclass
class TopResult:
    plan: TopPlan
    stages: list[StageTops]
    images: int  # counted
    source: str  # "cifar10/test" (", class cat")
    store: ImageStore

    def ranked(self) -> list[StageTops]:
        """Stages by their number of dead channels, then by their mean dead fraction, most first."""
        return sorted(self.stages, key=lambda s: (-len(s.dead_channels), -sum(s.dead_fractions) / len(s.dead_fractions),
                                                   s.stage.index))

    def sheet(self, st: StageTops) -> np.ndarray:
        """The stage's picture: a row per shown channel, its top-k patches, each captioned."""
        s = st.stage
        zoom = patch_zoom(s.window.field)
        rows = []
        for channel, hits in zip(s.channels, st.hits):
            tiles = [patch_picture(crop(self.store[h.image], s.window, h.y, h.x), zoom) for h in hits]
            dead = channel in st.dead_channels
            header = [f"channel {channel}", f"mean {_num(st.means[channel])}",
                      f"dead {st.dead_fractions[channel]:.0%}" + (" DEAD" if dead else "")]
            rows.append(SheetRow(header, tiles, [f"#{h.image} {_num(h.value)}" for h in hits], dead=dead))
        field = s.window.field
        title = [
            f"{s.tag} {s.call}: each channel's top {self.plan.k} of {self.images} images ({self.source})",
            f"patch = receptive field {field[0]}x{field[1]} px (jump {s.window.jump[0]}), upscaled x{zoom}; "
            "checkerboard = padding; caption: #image index, value",
            f"dead = never above 0 after {'itself' if s.active == s.index else s.active_tag} on that image; "
            f"{len(st.dead_channels)} of {s.shape[0]} channels dead on every image",
        ]
        return draw_sheet(title, rows, (field[0] * zoom, field[1] * zoom))

    def table(self, st: StageTops) -> list[tuple[str, str]]:
        """The stage's channels as ``(style, text)`` lines: 'dead' rows are marked."""
        s = st.stage
        dead = st.dead_channels
        listed = f" ({ranges(dead) if len(dead) <= 12 else ', '.join(map(str, dead[:12])) + ', ...'})" if dead else ""
        lines = [("bold", f"{s.tag} {s.call}: receptive field {s.window.field[0]}x{s.window.field[1]}, jump "
                          f"{s.window.jump[0]}; dead channels {len(dead)} of {s.shape[0]}{listed}")]
        head = f"{'channel':>7s}  {'mean':>9s}  {'dead':>5s}  {'top value':>9s}  top images"
        lines.append(("", head))
        for channel, hits in zip(s.channels, st.hits):
            mark = "dead" if channel in dead else ""
            top = _num(hits[0].value) if hits else "-"
            images = " ".join(str(h.image) for h in hits)
            text = f"{channel:7d}  {_num(st.means[channel]):>9s}  {st.dead_fractions[channel]:5.0%}  {top:>9s}  {images}"
            lines.append(("red" if mark else "", f"{text}  {mark}".rstrip()))
        return lines

    def ranking(self) -> list[tuple[str, str]]:
        lines = [("bold", f"stages ranked by dead channels (never above 0 after their activation on any of the "
                          f"{self.images} images)")]
        ranked = self.ranked()
        width = max(len(s.stage.tag) for s in self.stages)
        counts = [f"{len(st.dead_channels)} of {st.stage.shape[0]} dead" for st in ranked]
        wide = max(map(len, counts))
        for rank, (st, count) in enumerate(zip(ranked, counts), 1):
            mean = sum(st.dead_fractions) / len(st.dead_fractions)
            lines.append(("red" if st.dead_channels else "",
                          f"{rank:4d}  {st.stage.tag:<{width}s}  {count:<{wide}s}  mean dead fraction {mean:5.1%}  {st.stage.call}"))
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "source": self.source,
            "k": self.plan.k,
            "stages": [
                {
                    "stage": st.stage.index, "tag": st.stage.tag, "layer": st.stage.call, "shape": list(st.stage.shape),
                    "receptive_field": list(st.stage.window.field), "jump": list(st.stage.window.jump),
                    "window_start": list(st.stage.window.start), "dead_after": st.stage.active_tag,
                    "dead_channels": st.dead_channels,
                    "channels": [
                        {"channel": c, "mean": _finite(st.means[c]), "dead_fraction": st.dead_fractions[c],
                         "top": [{"image": h.image, "y": h.y, "x": h.x, "value": _finite(h.value)} for h in hits]}
                        for c, hits in zip(st.stage.channels, st.hits)
                    ],
                    "mean": [_finite(m) for m in st.means],
                    "dead_fraction": st.dead_fractions,
                }
                for st in self.stages
            ],
        }


def _num(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: those are null."""
    return value if value == value and abs(value) != float("inf") else None
