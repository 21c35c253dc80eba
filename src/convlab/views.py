"""Pure tensor -> image-batch functions: what a layer's output looks like as pictures."""

from __future__ import annotations

import torch


def reshape_view(output: torch.Tensor) -> torch.Tensor:
    """The tutorial's ``torch.reshape(output, (-1, 3, H, W))``, generalised so it never fails.

    Each image's channels are taken in order, three at a time, as one RGB tile: 6 channels
    give 2 tiles per image, exactly what the tutorial's reshape gives. Channels left over
    (``C % 3`` of them: 1 or 2) become one grey tile each, so nothing is dropped and no
    colour is invented. Tiles stay grouped by image: image 0's tiles, then image 1's, ...

    ``(N, C, H, W)`` -> ``(N * (C // 3 + C % 3), 3, H, W)``.
    """
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
