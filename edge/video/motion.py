"""The cheap stage: where in the frame did something move?

A MOG2 background model runs on a small grey copy of the frame (a few hundred pixels wide),
so it costs a millisecond or two; only the regions it reports reach the person detector.
Masked polygons (trees in the wind, a road with cars) never count as motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias

import cv2
import numpy as np
from cv2.typing import MatLike

from edge.video.boxes import Box, Point

Frame: TypeAlias = MatLike
"""A BGR (or grey) image as OpenCV returns it."""


class MotionDetector(Protocol):
    """``detect(frame) -> regions`` in the frame's own pixel coordinates."""

    def detect(self, frame: Frame) -> list[Box]: ...


class Mog2Motion:
    """MOG2 background subtraction on a downscaled grey frame -> bounding boxes of blobs.

    ``width`` is about the working width (the frame is shrunk by the nearest whole factor);
    ``min_area`` is a fraction of the frame (blobs smaller than that are noise); shadows (MOG2
    marks them grey) do not count as motion.
    """

    def __init__(
        self,
        *,
        width: int = 256,
        mask: Sequence[Sequence[Point]] = (),
        min_area: float = 0.0004,
        history: int = 300,
        var_threshold: float = 24.0,
    ) -> None:
        self.width = width
        self.mask_polygons = [list(p) for p in mask]
        self.min_area = min_area
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=history, varThreshold=var_threshold, detectShadows=True
        )
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 9))
        self._mask: Frame | None = None
        self._scale = 1.0
        self.foreground: Frame | None = None
        """The last binary foreground mask (working resolution), for inspection and tamper."""
        self.fraction = 0.0
        """Share of the (unmasked) frame that moved in the last frame."""

    def _prepare(self, frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        # An integer factor near width: INTER_AREA is ~20x faster on whole-pixel blocks.
        factor = max(1, round(w / self.width))
        self._scale = 1.0 / factor
        size = (max(1, w // factor), max(1, h // factor))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if self._mask is None or self._mask.shape != grey.shape:
            self._mask = np.full(grey.shape, 255, np.uint8)
            for poly in self.mask_polygons:
                pts = np.array([[x * self._scale, y * self._scale] for x, y in poly], np.int32)
                cv2.fillPoly(self._mask, [pts], 0)
        out: Frame = cv2.GaussianBlur(grey, (3, 3), 0)
        return out

    @property
    def scale(self) -> float:
        """Working resolution over source resolution (of :attr:`foreground`)."""
        return self._scale

    def detect(self, frame: Frame) -> list[Box]:
        grey = self._prepare(frame)
        fg = self._mog.apply(grey)
        _, fg = cv2.threshold(fg, 200, 255, cv2.THRESH_BINARY)  # drop shadows (127)
        assert self._mask is not None
        fg = cv2.bitwise_and(fg, self._mask)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        # Close the gaps between the parts of one body (uniform clothes leave holes).
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._close)
        fg = cv2.dilate(fg, self._kernel, iterations=1)
        self.foreground = fg
        self.fraction = float(np.count_nonzero(fg)) / fg.size
        n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        min_px = self.min_area * fg.size
        inv = 1.0 / self._scale
        boxes = []
        for i in range(1, n):
            x, y, w, h, area = stats[i]
            if area >= min_px:
                boxes.append(Box(x * inv, y * inv, w * inv, h * inv, 1.0))
        return boxes
