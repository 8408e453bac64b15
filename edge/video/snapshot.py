"""Snapshots: a frame with the people found drawn on it, as a small JPEG."""

from __future__ import annotations

from collections.abc import Sequence

import cv2

from edge.video.boxes import Box
from edge.video.motion import Frame


def annotate(
    image: Frame, boxes: Sequence[Box], *, highlight: Sequence[Box] = (), width: int = 640
) -> Frame:
    """A copy of ``image`` scaled to ``width`` px, ``boxes`` in green, ``highlight`` in red."""
    h, w = image.shape[:2]
    scale = min(1.0, width / w)
    out: Frame = (
        cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1.0
        else image.copy()
    )
    for colour, group in (((0, 200, 0), boxes), ((0, 0, 255), highlight)):
        for b in group:
            p0 = (round(b.x * scale), round(b.y * scale))
            p1 = (round((b.x + b.w) * scale), round((b.y + b.h) * scale))
            cv2.rectangle(out, p0, p1, colour, 2)
    return out


def jpeg(image: Frame, quality: int = 80) -> bytes:
    """JPEG bytes of ``image``."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()
