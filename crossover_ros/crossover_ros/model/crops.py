"""Object crops from instance masks: per-frame boxes and square, padded crop windows.

The paper feeds the frozen image extractor with crops of each object's 2D box; here a box is
padded and made square so that resizing to the backbone's square input keeps the object's aspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskBox:
    """Where one instance shows in one frame: pixel count and bounding box (end-exclusive)."""

    instance_id: int
    pixels: int
    x0: int
    y0: int
    x1: int
    y1: int


def instance_boxes(instance: np.ndarray, ignore: int = 0) -> list[MaskBox]:
    """Pixel count and bounding box of every instance id in an (H, W) mask, in one pass.

    Sorting the foreground pixels by id and reducing per run is far cheaper than one boolean mask
    per object when a frame shows tens of objects.
    """
    ys, xs = np.nonzero(instance != ignore)
    if len(ys) == 0:
        return []
    ids = instance[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    counts = np.diff(np.r_[starts, len(ids)])
    x0 = np.minimum.reduceat(xs, starts)
    x1 = np.maximum.reduceat(xs, starts) + 1
    y0 = np.minimum.reduceat(ys, starts)
    y1 = np.maximum.reduceat(ys, starts) + 1
    return [
        MaskBox(int(ids[s]), int(c), int(a), int(b), int(cc), int(d))
        for s, c, a, b, cc, d in zip(starts, counts, x0, y0, x1, y1, strict=True)
    ]


def square_crop_window(
    box: MaskBox, image_height: int, image_width: int, pad: float = 0.1
) -> tuple[int, int, int]:
    """(x0, y0, side) of a square around ``box``, ``pad`` of its longer side added around it.

    The window is shifted to stay inside the image when it fits; when it is larger than the image
    along an axis it is centred on the image there, and :func:`crop_square` fills the overflow.
    """
    side = max(int(np.ceil(max(box.x1 - box.x0, box.y1 - box.y0) * (1.0 + 2.0 * pad))), 4)
    cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0

    def place(center: float, size: int) -> int:
        if side <= size:
            return int(np.clip(round(center - side / 2.0), 0, size - side))
        return (size - side) // 2

    return place(cx, image_width), place(cy, image_height), side


def crop_square(image: np.ndarray, window: tuple[int, int, int], fill: int = 0) -> np.ndarray:
    """The (side, side, ...) window of ``image``; parts outside the image are ``fill``."""
    x0, y0, side = window
    height, width = image.shape[:2]
    out = np.full((side, side, *image.shape[2:]), fill, dtype=image.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
