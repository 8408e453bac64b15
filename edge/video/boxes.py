"""Axis-aligned boxes in a frame's own pixel coordinates, and the geometry the stages share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]


class Box(NamedTuple):
    """``x, y`` top-left corner, ``w, h`` size, ``score`` the detector's confidence, ``label``
    the object's class (``person``, ``car``, ...)."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    label: str = "person"

    @property
    def foot(self) -> Point:
        """Bottom centre: where a person stands, the point rules test against zones/lines."""
        return (self.x + self.w / 2.0, self.y + self.h)

    @property
    def centre(self) -> Point:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy, self.score, self.label)

    def grown(self, margin: float, width: float, height: float) -> Box:
        """The box grown by ``margin`` px on each side, clipped to a ``width x height`` frame."""
        x0 = max(0.0, self.x - margin)
        y0 = max(0.0, self.y - margin)
        x1 = min(width, self.x + self.w + margin)
        y1 = min(height, self.y + self.h + margin)
        return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), self.score, self.label)

    def as_list(self, digits: int = 1) -> list[float]:
        return [round(v, digits) for v in (self.x, self.y, self.w, self.h)] + [round(self.score, 3)]


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> npt.NDArray[np.float64]:
    """Intersection over union of every box of ``a`` against every box of ``b``."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    aa = np.array([bx[:4] for bx in a], dtype=np.float64)
    bb = np.array([bx[:4] for bx in b], dtype=np.float64)
    ax0, ay0, ax1, ay1 = aa[:, 0:1], aa[:, 1:2], aa[:, 0:1] + aa[:, 2:3], aa[:, 1:2] + aa[:, 3:4]
    bx0, by0 = bb[:, 0], bb[:, 1]
    bx1, by1 = bb[:, 0] + bb[:, 2], bb[:, 1] + bb[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0.0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0.0, None)
    inter = iw * ih
    union = aa[:, 2:3] * aa[:, 3:4] + bb[:, 2] * bb[:, 3] - inter
    out: npt.NDArray[np.float64] = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    return out


def containment(a: Sequence[Box], b: Sequence[Box]) -> list[float]:
    """For each box of ``a``, the largest share of its area inside any one box of ``b``."""
    out = []
    for p in a:
        best = 0.0
        for q in b:
            iw = min(p.x + p.w, q.x + q.w) - max(p.x, q.x)
            ih = min(p.y + p.h, q.y + q.h) - max(p.y, q.y)
            if iw > 0 and ih > 0:
                best = max(best, iw * ih / max(p.w * p.h, 1e-9))
        out.append(best)
    return out


def merge_overlapping(boxes: Sequence[Box]) -> list[Box]:
    """Union boxes that overlap until none do (regions for the detector)."""
    out = [list(b[:4]) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if (
                    a[0] <= b[0] + b[2]
                    and b[0] <= a[0] + a[2]
                    and a[1] <= b[1] + b[3]
                    and (b[1] <= a[1] + a[3])
                ):
                    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
                    x1 = max(a[0] + a[2], b[0] + b[2])
                    y1 = max(a[1] + a[3], b[1] + b[3])
                    out[i] = [x0, y0, x1 - x0, y1 - y0]
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return [Box(b[0], b[1], b[2], b[3]) for b in out]


def side_of(line: tuple[Point, Point], p: Point) -> float:
    """Signed distance of ``p`` from the line; negative on its left walking from the first point
    to the second as seen on screen (image y grows downwards)."""
    (x1, y1), (x2, y2) = line
    dx, dy = x2 - x1, y2 - y1
    length = float(np.hypot(dx, dy)) or 1.0
    return (dx * (p[1] - y1) - dy * (p[0] - x1)) / length


def segment_param(line: tuple[Point, Point], p: Point) -> float:
    """Where ``p`` projects on the segment: 0 at its first point, 1 at its second."""
    (x1, y1), (x2, y2) = line
    dx, dy = x2 - x1, y2 - y1
    denom = dx * dx + dy * dy or 1.0
    return ((p[0] - x1) * dx + (p[1] - y1) * dy) / denom
