"""The running top-k of each channel over a stream of batches, and its statistics, in one pass.

For each channel, an image counts once: its value is the channel's largest activation over every
position of that image (the first such position, in row-major order, when several tie). The k
images with the largest values are kept, **ties broken by the smaller image index** (the image
read first). NaN counts as -inf (ranked last, never fatal). Memory: k entries per channel, and
the images they point at, whatever the number of images.

Beside the top-k, over every channel of the stage: the mean activation (over images and
positions) and how many images leave the channel never above 0 once its activation has run (a
dead channel on that image). torch is imported inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Hit:
    """One top activation: the image (its index in the split), the output position, the value."""

    image: int
    y: int
    x: int
    value: float


class ChannelTops:
    """One stage: the top-k of ``channels`` (their indices in the stage's output), and every
    channel's running mean and dead count."""

    def __init__(self, channels: Sequence[int], k: int, total_channels: int, width: int, device: str = "cpu"):
        import torch

        self.channels = list(channels)
        self.k, self.width = k, width
        self._index = torch.tensor(self.channels, dtype=torch.int64, device=device)
        n = len(self.channels)
        self.values = torch.full((n, k), float("-inf"), device=device)
        self.images = torch.full((n, k), -1, dtype=torch.int64, device=device)
        self.positions = torch.full((n, k), -1, dtype=torch.int64, device=device)
        self.total = torch.zeros(total_channels, dtype=torch.float64, device=device)
        self.dead = torch.zeros(total_channels, dtype=torch.int64, device=device)
        self.image_count = 0
        self.value_count = 0  # per channel: images x positions

    def update(self, output: torch.Tensor, first: int | torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """One batch of this stage's output (n, C, H, W); ``first``: the dataset index of its first
        image, or each image's index (n,). ``active``: the output of the channel's activation (for the
        dead count), None when it is this stage. Returns the batch positions (into the batch) that
        entered some top-k list."""
        import torch

        n = output.shape[0]
        if n == 0:
            return torch.zeros(0, dtype=torch.int64)
        # Reduced over (H, W) as they are, whatever the layout (a channels_last map is not flattened).
        out = output.detach()
        # Each image's largest value per channel. amax, not max(dim): returning the positions too
        # costs ~13x more (4.8 against 0.37 ms for a batch of the lesson's first conv, one thread),
        # and only the few values that enter a top-k list need theirs (below).
        best = out.amax(dim=(2, 3))
        if torch.isnan(best).any():
            out = out.nan_to_num(nan=float("-inf"))
            best = out.amax(dim=(2, 3))
        # Summed in float32 per batch (float64 over a batch costs ~20x more), accumulated in float64.
        self.total += out.sum(dim=(0, 2, 3))
        above = best > 0 if active is None else active.detach().amax(dim=(2, 3)) > 0
        self.dead += n - above.sum(dim=0)
        self.image_count += n
        self.value_count += n * out.shape[2] * out.shape[3]

        chosen = best.index_select(1, self._index).T  # (channels, n)
        # Most batches, once the lists have filled, beat no k-th value (an equal one does not enter:
        # ties go to the image read first): nothing to merge.
        if not (chosen > self.values[:, -1:]).any():
            return torch.zeros(0, dtype=torch.int64)
        index = torch.arange(n, device=output.device) + first if isinstance(first, int) else first.to(output.device)
        values = torch.cat([self.values, chosen], dim=1)  # (channels, k + n)
        # Stable, descending: equal values keep the order they came in, kept entries (read
        # earlier) first, then the batch in image order: ties go to the smaller image index.
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.values = values.gather(1, order)
        self.images = torch.cat([self.images, index.expand(len(self.channels), n)], dim=1).gather(1, order)
        positions = torch.cat([self.positions, self.positions.new_full((len(self.channels), n), -1)], dim=1).gather(1, order)
        rows, slots = (order >= self.k).nonzero(as_tuple=True)
        batch = order[rows, slots] - self.k
        # Where in its image each new entry's value is: the first largest position, in row-major order.
        positions[rows, slots] = out[batch, self._index[rows]].flatten(1).argmax(dim=1)
        self.positions = positions
        return batch.unique()

    def hits(self) -> list[list[Hit]]:
        """Per chosen channel, its top-k, largest first (fewer where fewer images were counted)."""
        rows = []
        for values, images, positions in zip(self.values.tolist(), self.images.tolist(), self.positions.tolist()):
            rows.append([Hit(i, *divmod(p, self.width), v) for v, i, p in zip(values, images, positions) if i >= 0])
        return rows

    def means(self) -> list[float]:
        """Every channel's mean activation over the images and positions counted."""
        return (self.total / max(self.value_count, 1)).tolist()

    def dead_fractions(self) -> list[float]:
        """Every channel's fraction of images on which it is never above 0 after its activation."""
        return (self.dead.double() / max(self.image_count, 1)).tolist()
