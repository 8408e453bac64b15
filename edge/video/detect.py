"""The expensive stage: people, searched for only inside the regions the motion gate reported.

:class:`HogDetector` (the default) is OpenCV's HOG + linear SVM people detector. It was trained
on 64x128 windows holding a person about 96 px tall, so it misses anyone smaller: each region is
scaled so the person the motion blob suggests is ~100 px tall, searched over a short pyramid,
and the window (which has a margin around the person) is shrunk back to the person.
:class:`OnnxDetector` runs a YOLO-style ONNX model through ``cv2.dnn`` as a plug-in;
:class:`MotionBoxDetector` takes every motion blob for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.video.boxes import Box, iou_matrix, merge_overlapping
from edge.video.motion import Frame

# Where the person sits inside the HOG window: x, y, w, h as fractions of the window. The
# INRIA training crops put a ~96 px person in a 128 px window with 16 px above and below; the
# median over windows matched to ground truth on PETS09 was (0.24, 0.10, 0.54, 0.79).
_WINDOW_TO_PERSON = (0.23, 0.10, 0.55, 0.80)
_PERSON_PX = 100.0
"""Target height of a person after scaling a region (the detector's sweet spot)."""


class Detector(Protocol):
    """``detect(frame, regions) -> boxes`` of people, in the frame's pixel coordinates.

    A region's ``score`` is the height a person there is expected to have, in pixels (a
    tracked person's last height), or 0 when unknown (a motion blob)."""

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]: ...


def nms(boxes: Sequence[Box], threshold: float = 0.4, *, fuse: float = 0.0) -> list[Box]:
    """Greedy non-maximum suppression: the best-scoring box wins over any box overlapping it
    by more than ``threshold`` IoU. With ``fuse`` > 0 the winner becomes the score-weighted
    mean of the boxes overlapping it by at least ``fuse`` (steadier than any single window)."""
    order = sorted(boxes, key=lambda b: -b.score)
    overlap = iou_matrix(order, order)
    keep: list[int] = []
    for i in range(len(order)):
        if all(overlap[i, j] <= threshold for j in keep):
            keep.append(i)
    if not fuse:
        return [order[i] for i in keep]
    out = []
    for i in keep:
        group = [order[j] for j in range(len(order)) if overlap[i, j] >= fuse]
        weights = np.array([max(b.score, 1e-3) for b in group])
        coords = np.array([b[:4] for b in group]) * weights[:, None]
        x, y, w, h = coords.sum(axis=0) / weights.sum()
        out.append(Box(float(x), float(y), float(w), float(h), order[i].score))
    return out


class HogDetector:
    """HOG people detector on motion regions, each scaled to the detector's working size.

    ``min_height`` / ``max_height``: the smallest and largest person, in source pixels, worth
    finding; ``threshold``: the SVM margin a window must exceed (OpenCV's default is 0; windows
    are not grouped by OpenCV but fused here, and then 0.5 is the better cut).
    """

    def __init__(
        self,
        *,
        min_height: float = 48.0,
        max_height: float = 400.0,
        threshold: float = 0.5,
        max_upscale: float = 2.2,
    ) -> None:
        self.min_height = min_height
        self.max_height = max_height
        self.threshold = threshold
        self.max_upscale = max_upscale
        # A short pyramid (1.06 ** 12 = 2x the expected height) is enough: each crop is
        # already scaled for the person expected in it, and levels are where the time goes.
        self._hog = cv2.HOGDescriptor(
            (64, 128),
            (16, 16),
            (8, 8),
            (8, 8),
            9,
            1,
            -1.0,
            cv2.HOGDescriptor_L2Hys,
            0.2,
            False,
            8,
        )
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
        self.pixels = 0
        """Pixels searched so far (after scaling): the detector's workload."""

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        fh, fw = frame.shape[:2]
        found: list[Box] = []
        crops = []
        for r in regions:
            # The blob's height is the best guess of a person's height; guess low (legs alone
            # move first) so the pyramid, which only looks for larger people, covers the rest.
            guess = r.score if r.score > 0 else r.h * 0.8
            guess = min(max(guess, self.min_height), self.max_height)
            scale = min(self.max_upscale, max(0.5, _PERSON_PX / guess))
            # The crop must hold a whole person even when only part of one moved.
            need_h, need_w = 1.6 * max(r.h, guess), 0.9 * max(r.h, guess)
            cx, cy = r.centre
            w, h = max(r.w, need_w), max(r.h, need_h)
            crops.append((Box(cx - w / 2, cy - h / 2, w, h).grown(8.0, fw, fh), scale))
        # Regions of similar scale that overlap are searched once.
        for region, scale in _merge_by_scale(crops):
            x0, y0 = int(region.x), int(region.y)
            x1, y1 = int(region.x + region.w), int(region.y + region.h)
            crop = frame[y0:y1, x0:x1]
            if crop.size == 0:
                continue
            img = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            ph, pw = max(0, 136 - img.shape[0]), max(0, 72 - img.shape[1])
            top, left = ph // 2, pw // 2
            if ph or pw:
                img = cv2.copyMakeBorder(img, top, ph - top, left, pw - left, cv2.BORDER_REPLICATE)
            self.pixels += img.shape[0] * img.shape[1]
            rects, weights = self._hog.detectMultiScale(
                img,
                hitThreshold=self.threshold,
                winStride=(8, 8),
                padding=(8, 8),
                scale=1.1,
                groupThreshold=0,
            )
            fx, fy, fw_, fh_ = _WINDOW_TO_PERSON
            for (rx, ry, rw, rh), wt in zip(rects, np.ravel(weights), strict=False):
                h = rh * fh_ / scale
                if not self.min_height * 0.8 <= h <= self.max_height:
                    continue
                found.append(
                    Box(
                        x0 + (rx - left + rw * fx) / scale,
                        y0 + (ry - top + rh * fy) / scale,
                        rw * fw_ / scale,
                        h,
                        float(wt),
                    )
                )
        # Every window is kept (no OpenCV grouping) and fused here: on PETS09 this found more
        # people, better placed, than groupRectangles (recall 0.78 against 0.73).
        return nms(found, fuse=0.5)


def _merge_by_scale(crops: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Merge overlapping crops whose scales are within 30% of each other."""
    crops = sorted(crops, key=lambda c: c[1])
    groups: list[list[tuple[Box, float]]] = []
    for crop in crops:
        if groups and crop[1] <= groups[-1][0][1] * 1.3:
            groups[-1].append(crop)
        else:
            groups.append([crop])
    out: list[tuple[Box, float]] = []
    for group in groups:
        scale = max(s for _, s in group)
        out.extend((box, scale) for box in merge_overlapping([b for b, _ in group]))
    return out


class MotionBoxDetector:
    """Every motion blob is a person (kind ``motion``): for scenes where anything that moves
    counts, such as a fenced yard at night, and for synthetic test scenes."""

    def __init__(self, *, min_height: float = 16.0, max_height: float = 10_000.0) -> None:
        self.min_height = min_height
        self.max_height = max_height

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        return [
            Box(r.x, r.y, r.w, r.h, 1.0)
            for r in regions
            if r.score == 0.0 and self.min_height <= r.h <= self.max_height
        ]


class OnnxDetector:
    """A YOLO-style ONNX model (YOLOv5 ``[1, N, 5+C]`` or YOLOv8 ``[1, 4+C, N]`` output) run by
    ``cv2.dnn`` on the bounding box of the motion regions; only class ``person_class`` counts."""

    def __init__(
        self, model: str | Path, *, size: int = 640, threshold: float = 0.4, person_class: int = 0
    ) -> None:
        self._net = cv2.dnn.readNetFromONNX(str(model))
        self.size = size
        self.threshold = threshold
        self.person_class = person_class

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        if not regions:
            return []
        fh, fw = frame.shape[:2]
        x0 = int(max(0, min(r.x for r in regions) - 16))
        y0 = int(max(0, min(r.y for r in regions) - 16))
        x1 = int(min(fw, max(r.x + r.w for r in regions) + 16))
        y1 = int(min(fh, max(r.y + r.h for r in regions) + 16))
        crop = frame[y0:y1, x0:x1]
        blob = cv2.dnn.blobFromImage(
            crop, 1 / 255.0, (self.size, self.size), swapRB=True, crop=False
        )
        self._net.setInput(blob)
        out = np.squeeze(self._net.forward())
        if out.ndim != 2:
            return []
        if out.shape[0] < out.shape[1]:  # YOLOv8: (4 + classes, N)
            out = out.T
            scores = out[:, 4 + self.person_class]
        else:  # YOLOv5: (N, 5 + classes)
            scores = out[:, 4] * out[:, 5 + self.person_class]
        sx = crop.shape[1] / self.size
        sy = crop.shape[0] / self.size
        found = []
        for row, score in zip(out, scores, strict=True):
            if score < self.threshold:
                continue
            cx, cy, w, h = (float(v) for v in row[:4])
            found.append(
                Box(x0 + (cx - w / 2) * sx, y0 + (cy - h / 2) * sy, w * sx, h * sy, float(score))
            )
        return nms(found)
