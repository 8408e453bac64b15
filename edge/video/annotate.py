"""``polewatch replay --annotate OUT.mp4``: the analysis drawn over the video, for tuning.

Drawn on every analysed frame: the motion masks (hatched grey), each rule's zone with its name
(and, for a motion rule, the share of it moving), each tripwire with an arrow across it for
every direction it counts and its running counts, the tracked objects with id, class and
score, and each event as a caption for two seconds (its box in red).

The file is H.264 (yuv420p, ``+faststart``) in MP4, which Chromium plays natively, written by
PyAV, whose wheels carry their own FFmpeg with libx264. OpenCV's own FFmpeg has no H.264
encoder; where PyAV cannot be imported the writer falls back to OpenCV's VP9 in MP4, which
Chromium also plays.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from edge.video import config as cfg
from edge.video.boxes import Point
from edge.video.motion import Frame
from edge.video.pipeline import Analyzer, Result

TEXT = {
    "mask": "mask",
    "frame": "frame {frame}  {ts:.1f} s",
    "moving": "{share:.0%} moving",
}
"""Every word drawn (move to the i18n catalogue with the console's; OpenCV's Hershey fonts
draw ASCII only, so the video keeps English)."""

_CLASS_COLOURS = {"person": (80, 220, 80), "motion": (0, 200, 255)}
_VEHICLE = (255, 160, 40)
_RULE_COLOURS = {
    "zone": (0, 165, 255),
    "loitering": (200, 120, 255),
    "crowd": (255, 200, 0),
    "motion": (0, 220, 255),
    "no_parking": (60, 60, 255),
}
_EVENT = (40, 40, 230)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CAPTION_S = 2.0


def _pts(points: list[Point]) -> np.ndarray[Any, Any]:
    return np.array([[round(x), round(y)] for x, y in points], np.int32)


def _label(img: Frame, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text on a dark plate so it reads on any background."""
    (w, h), base = cv2.getTextSize(text, _FONT, 0.45, 1)
    x = max(0, min(org[0], img.shape[1] - w - 4))
    y = max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 3), (x + w + 4, y + base), (20, 20, 20), -1)
    cv2.putText(img, text, (x + 2, y - 1), _FONT, 0.45, colour, 1, cv2.LINE_AA)


@dataclass
class _Caption:
    text: str
    until: float


class Overlay:
    """Draws one camera's analysis on its frames; counts tripwire crossings as they come."""

    def __init__(self, config: cfg.CameraConfig) -> None:
        self.config = config
        self.counts: dict[str, Counter[str]] = {
            config.rule_name(i): Counter()
            for i, r in enumerate(config.rules)
            if isinstance(r, cfg.TripwireRule)
        }
        self.captions: list[_Caption] = []

    def draw(self, image: Frame, result: Result, analyzer: Analyzer | None = None) -> Frame:
        """A copy of ``image`` with the analysis of ``result`` drawn on it."""
        img = image.copy()
        self._masks(img)
        self._rules(img, analyzer)
        for t in result.tracks:
            b = t.box
            colour = _CLASS_COLOURS.get(t.label, _VEHICLE)
            p0, p1 = (round(b.x), round(b.y)), (round(b.x + b.w), round(b.y + b.h))
            cv2.rectangle(img, p0, p1, colour, 1 if t.misses else 2)
            _label(img, f"#{t.id} {t.label} {t.score:.2f}", (p0[0], p0[1] - 2), colour)
        for e in result.events:
            if e.rule == "tripwire" and e.name in self.counts:
                self.counts[e.name][str(e.detail.get("direction", ""))] += 1
            who = f" #{e.track}" if e.track is not None else ""
            extra = " ".join(f"{k}={v}" for k, v in e.detail.items())
            self.captions.append(
                _Caption(f"{e.ts:.1f}s {e.rule} {e.name}{who} {extra}".strip(), e.ts + _CAPTION_S)
            )
            if e.box is not None:
                b = e.box
                cv2.rectangle(
                    img, (round(b.x), round(b.y)), (round(b.x + b.w), round(b.y + b.h)), _EVENT, 3
                )
        self._tripwires(img)
        self.captions = [c for c in self.captions if c.until > result.ts]
        h = img.shape[0]
        for i, c in enumerate(reversed(self.captions[-6:])):
            _label(img, c.text, (6, h - 8 - 20 * i), (255, 255, 255))
        header = TEXT["frame"].format(frame=result.frame, ts=result.ts)
        _label(img, header, (6, 18), (230, 230, 230))
        return img

    def _masks(self, img: Frame) -> None:
        for poly in self.config.analysis.motion_mask:
            pts = _pts(list(poly))
            shade = img.copy()
            cv2.fillPoly(shade, [pts], (90, 90, 90))
            cv2.addWeighted(shade, 0.5, img, 0.5, 0, dst=img)
            cv2.polylines(img, [pts], True, (160, 160, 160), 1, cv2.LINE_AA)
            x, y = pts.min(axis=0)
            _label(img, TEXT["mask"], (int(x) + 2, int(y) + 14), (200, 200, 200))

    def _rules(self, img: Frame, analyzer: Analyzer | None) -> None:
        live = {getattr(r, "name", None): r for r in (analyzer.rules if analyzer else [])}
        for i, rule in enumerate(self.config.rules):
            polygon = getattr(rule, "polygon", None)
            kind = type(rule).__struct_config__.tag
            if not polygon or not isinstance(kind, str):
                continue
            name = self.config.rule_name(i)
            colour = _RULE_COLOURS.get(kind, (255, 255, 255))
            pts = _pts(list(polygon))
            cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)
            text = f"{kind} {name}"
            share = getattr(live.get(name), "fraction", None)
            if isinstance(rule, cfg.MotionRule) and share is not None:
                text += " " + TEXT["moving"].format(share=share)
            x, y = pts.min(axis=0)
            _label(img, text, (int(x) + 2, int(y) + 14), colour)

    def _tripwires(self, img: Frame) -> None:
        for i, rule in enumerate(self.config.rules):
            if not isinstance(rule, cfg.TripwireRule) or len(rule.line) != 2:
                continue
            name = self.config.rule_name(i)
            (x1, y1), (x2, y2) = rule.line
            cv2.line(img, (round(x1), round(y1)), (round(x2), round(y2)), (255, 0, 255), 2)
            # Side a is on the left walking from the first point to the second (image y down).
            dx, dy = x2 - x1, y2 - y1
            norm = float(np.hypot(dx, dy)) or 1.0
            to_b = (-dy / norm, dx / norm)
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            wanted = {"a_to_b": (1,), "b_to_a": (-1,), "any": (1, -1)}[rule.direction]
            for sign in wanted:
                tail = (round(mx - sign * 22 * to_b[0]), round(my - sign * 22 * to_b[1]))
                head = (round(mx + sign * 22 * to_b[0]), round(my + sign * 22 * to_b[1]))
                cv2.arrowedLine(img, tail, head, (255, 0, 255), 2, cv2.LINE_AA, tipLength=0.35)
            n = self.counts[name]
            text = f"{name} a>b {n['a_to_b']} b>a {n['b_to_a']}"
            _label(img, text, (round(min(x1, x2)) + 4, round(min(y1, y2)) - 4), (255, 0, 255))


class VideoWriter:
    """H.264 MP4 through PyAV (VP9 MP4 through OpenCV where PyAV is missing)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        # yuv420p needs even sides.
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self.frames = 0
        self.codec: str = "h264"
        """``h264`` (PyAV) or ``vp9`` (OpenCV's fallback)."""
        self._av: Any = None
        self._cv: cv2.VideoWriter | None = None
        if importlib.util.find_spec("av") is None:
            self.codec = "vp9"
            fourcc = cv2.VideoWriter.fourcc(*"VP90")
            self._cv = cv2.VideoWriter(str(self.path), fourcc, fps, self.size)
            if not self._cv.isOpened():
                raise OSError(f"cannot write {self.path}: no H.264 (PyAV) or VP9 encoder")
            return
        import av

        self._av = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        stream = self._av.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "26"}
        self._stream = stream

    def write(self, image: Frame) -> None:
        h, w = image.shape[:2]
        if (w, h) != self.size:
            image = image[: self.size[1], : self.size[0]]
        self.frames += 1
        if self._cv is not None:
            self._cv.write(image)
            return
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, np.uint8), format="bgr24")
        self._av.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        elif self._av is not None:
            self._av.mux(self._stream.encode(None))
            self._av.close()
            self._av = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
