"""People and vehicles from a COCO detector: NanoDet-m (Apache-2.0 weights, 416x416, 80 classes)
as ONNX, vendored under ``edge/video/models/`` (see its PROVENANCE.md) and run by onnxruntime on
one thread. Nothing is downloaded at run time.

The model sees one square crop around the motion regions (or the whole frame), so a small
vehicle far away is searched at a useful scale. Boxes carry the class in :attr:`Box.label`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.video.boxes import Box
from edge.video.motion import Frame

MODEL = Path(__file__).resolve().parent / "models" / "nanodet-m-416.onnx"
VEHICLES = ("bicycle", "car", "motorbike", "bus", "truck")
"""The vehicle classes a camera may ask for; ``vehicle`` in a config means all of them."""
CLASSES = ("person", *VEHICLES)
_COCO = {"person": 0, "bicycle": 1, "car": 2, "motorbike": 3, "bus": 5, "truck": 7}
_STRIDES = (8, 16, 32)
_BINS = 11  # NanoDet's GFL head: each side's distance is a distribution over 0..10 strides


def expand(classes: Iterable[str]) -> frozenset[str]:
    """Configured class names -> detector classes (``vehicle`` stands for all vehicles)."""
    out: set[str] = set()
    for c in classes:
        out.update(VEHICLES if c == "vehicle" else (c,))
    return frozenset(out)


class NanoDetector:
    """COCO detector for the classes in ``classes`` (names from :data:`CLASSES`).

    ``threshold`` is the class score a box must reach; ``min_side`` the smallest object, in
    source pixels, worth reporting.
    """

    def __init__(
        self,
        classes: Iterable[str] = VEHICLES,
        *,
        model: str | Path = MODEL,
        threshold: float = 0.35,
        min_side: float = 12.0,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.size = int(inp.shape[2])
        # Outputs come unordered: pair each level's scores (N x 80) with its boxes (N x 44).
        by_cells: dict[int, dict[int, str]] = {}
        for out in self._session.get_outputs():
            by_cells.setdefault(int(out.shape[1]), {})[int(out.shape[2])] = out.name
        self._levels = []
        for stride in _STRIDES:
            cells = (self.size // stride) ** 2
            self._levels.append((stride, by_cells[cells][80], by_cells[cells][4 * _BINS]))
        self.classes = expand(classes)
        self._ids = {_COCO[c]: c for c in self.classes}
        self.threshold = threshold
        self.min_side = min_side
        self.calls = 0
        """Model runs so far (the detector's workload)."""
        self.seconds = 0.0
        """Time spent in those runs (``polewatch bench edge`` reports it)."""

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        """Objects of the configured classes inside the square around ``regions``."""
        if not regions:
            return []
        fh, fw = frame.shape[:2]
        x0 = min(r.x for r in regions)
        y0 = min(r.y for r in regions)
        x1 = max(r.x + r.w for r in regions)
        y1 = max(r.y + r.h for r in regions)
        # A square crop keeps the aspect the model was trained on; grown a little for context.
        side = min(max(fw, fh), max(x1 - x0, y1 - y0) * 1.25 + 32)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx = int(min(max(0.0, cx - side / 2), max(0.0, fw - side)))
        sy = int(min(max(0.0, cy - side / 2), max(0.0, fh - side)))
        crop = frame[sy : sy + int(side), sx : sx + int(side)]
        return [Box(sx + b.x, sy + b.y, b.w, b.h, b.score, b.label) for b in self.run(crop)]

    def run(self, image: Frame) -> list[Box]:
        """Objects in a whole image (its own pixels)."""
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            return []
        start = time.perf_counter()
        blob = cv2.dnn.blobFromImage(
            image, 1 / 255.0, (self.size, self.size), swapRB=True, crop=False
        )
        outputs = dict(
            zip(
                [o.name for o in self._session.get_outputs()],
                self._session.run(None, {self._input: blob}),
                strict=True,
            )
        )
        self.calls += 1
        found: list[Box] = []
        for stride, score_name, box_name in self._levels:
            found.extend(self._decode(outputs[score_name][0], outputs[box_name][0], stride, w, h))
        found = _nms_per_class(found)
        self.seconds += time.perf_counter() - start
        return found

    def _decode(
        self, scores: npt.NDArray[Any], dist: npt.NDArray[Any], stride: int, w: int, h: int
    ) -> list[Box]:
        ids = np.fromiter(self._ids, int)
        wanted = scores[:, ids]
        cells, cls = np.nonzero(wanted >= self.threshold)
        if not len(cells):
            return []
        logits = dist[cells].reshape(-1, 4, _BINS)
        prob = np.exp(logits - logits.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        ltrb = (prob * np.arange(_BINS)).sum(axis=2) * stride
        n = self.size // stride
        px = (cells % n + 0.5) * stride
        py = (cells // n + 0.5) * stride
        kx, ky = w / self.size, h / self.size
        out = []
        for i in range(len(cells)):
            left, top, right, bottom = ltrb[i]
            bx, by = (px[i] - left) * kx, (py[i] - top) * ky
            bw, bh = (left + right) * kx, (top + bottom) * ky
            if min(bw, bh) < self.min_side:
                continue
            label = self._ids[int(ids[cls[i]])]
            out.append(
                Box(
                    float(bx),
                    float(by),
                    float(bw),
                    float(bh),
                    float(wanted[cells[i], cls[i]]),
                    label,
                )
            )
        return out


def _nms_per_class(boxes: list[Box], threshold: float = 0.5) -> list[Box]:
    """People among people; vehicles among all vehicles (one van is often car and truck)."""
    from edge.video.detect import nms

    people = [b for b in boxes if b.label == "person"]
    others = [b for b in boxes if b.label != "person"]
    return nms(people, threshold) + nms(others, threshold)


class MotionVehicleDetector:
    """Every moving blob wider than tall (and at least ``min_side``) is a car: kind ``motion``
    of ``[vehicles]``, for synthetic scenes and car parks where nothing else moves."""

    def __init__(self, *, min_side: float = 16.0) -> None:
        self.min_side = min_side

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        return [
            Box(r.x, r.y, r.w, r.h, 1.0, "car")
            for r in regions
            if r.score == 0.0 and r.w >= 1.1 * r.h and r.h >= self.min_side
        ]
