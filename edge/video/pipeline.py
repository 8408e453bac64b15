"""The hot loop: one frame in, tracked people and rule events out.

:class:`Analyzer` owns no I/O. Its stages come in as parameters (motion gate, detector,
tracker, rules), so the same object runs live cameras, ``polewatch replay`` and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2

from edge.video import config as cfg
from edge.video import rules as rules_mod
from edge.video.boxes import Box, containment
from edge.video.detect import Detector, HogDetector, MotionBoxDetector, OnnxDetector
from edge.video.motion import Frame, Mog2Motion, MotionDetector
from edge.video.objects import MODEL, MotionVehicleDetector, NanoDetector
from edge.video.scene import Event, Rule, Scene
from edge.video.track import Track, Tracker


@dataclass
class Result:
    """What the pipeline made of one frame (coordinates in the source frame's pixels)."""

    frame: int
    ts: float
    boxes: list[Box]
    tracks: list[Track]
    events: list[Event]
    regions: list[Box] = field(default_factory=list)


@dataclass
class GateStats:
    """How much work the motion gate spared the detector."""

    frames: int = 0
    frames_detected: int = 0
    """Frames where at least one region reached the detector."""
    area: float = 0.0
    """Sum over frames of the share of the frame inside the regions."""

    def as_dict(self) -> dict[str, float]:
        n = max(1, self.frames)
        return {
            "frames": self.frames,
            "frames_to_detector": round(self.frames_detected / n, 3),
            "area_to_detector": round(self.area / n, 4),
        }


class Analyzer:
    """Motion gate -> detector on motion and track regions -> tracker -> rules."""

    def __init__(
        self,
        *,
        motion: MotionDetector,
        detector: Detector,
        tracker: Tracker,
        rules: Sequence[Rule] = (),
        width: int = 0,
        person_height: tuple[float, float] = (48.0, 400.0),
        sweep: int = 0,
        steady_hits: int = 4,
        vehicles: Detector | None = None,
        vehicle_every: int = 1,
    ) -> None:
        self.motion = motion
        self.detector = detector
        self.tracker = tracker
        self.rules = list(rules)
        self.width = width
        self.person_height = person_height
        self.gate = GateStats()
        self.sweep = sweep
        """Every ``sweep`` frames the whole frame goes to the detector (0: never)."""
        self._frames = 0
        self._scale = 1.0
        self.steady_hits = steady_hits
        """Hits after which a track is searched for every other frame only (0: every frame)."""
        self.vehicles = vehicles
        """The vehicle detector (None: people only), run every ``vehicle_every`` frames on the
        motion regions and the vehicles' tracks; its own tracker holds them in between."""
        self.vehicle_every = max(1, vehicle_every)
        self.vehicle_tracker = Tracker(max_misses=3, coast=1, first_id=1_000_000)
        self._vehicle_tracks: list[Track] = []

    def analyse(self, image: Frame, frame: int, ts: float) -> Result:
        """Run every stage over one frame."""
        h0, w0 = image.shape[:2]
        scale = self.width / w0 if 0 < self.width < w0 else 1.0
        work = (
            image
            if scale == 1.0
            else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        inv = 1.0 / scale
        blobs = self.motion.detect(image)  # it downsizes on its own; masks are in source px
        lo, hi = self.person_height
        moving = [Box(*b[:4], 0.0) for b in blobs if b.h >= lo * 0.3]
        # Regions: what moved, plus where tracked people are expected (people who stop
        # walking stop moving, and Frigate-style we keep looking at them), plus the whole
        # frame now and then: the background model has not seen a person who never moved.
        # A person tracked steadily (seen in the last frame, for a while) is searched for
        # every other frame; in between the track's prediction stands in.
        steady: list[Track] = []
        rest: list[Track] = []
        for t in self.tracker.tracks:
            is_steady = self.steady_hits > 0 and t.confirmed and not t.misses
            (steady if is_steady and t.hits >= self.steady_hits else rest).append(t)
        tracked = [
            Box(*t.predicted()[:4], t.box.h * 0.8)
            for t in rest + [t for t in steady if (frame + t.id) % 2 == 0]
        ]
        if steady and moving:
            # A blob that a tracked person explains needs no search of its own.
            seen = [Box(*t.predicted()[:4]).grown(t.box.h * 0.15, w0, h0) for t in steady]
            cover = containment(moving, seen)
            moving = [b for b, c in zip(moving, cover, strict=True) if c < 0.8]
        regions = moving + tracked
        if self.sweep and self._frames % self.sweep == 0:
            regions.append(Box(0.0, 0.0, float(w0), float(h0), score=min(hi, lo * 1.3)))
        self._frames += 1
        self.gate.frames += 1
        if regions:
            self.gate.frames_detected += 1
            self.gate.area += _coverage(regions, w0, h0)
            if scale != self._scale:
                self._scale = scale  # the detector's size limits are in analysis pixels
                for attr, value in (("min_height", lo), ("max_height", hi)):
                    if hasattr(self.detector, attr):
                        setattr(self.detector, attr, value * scale)
            scaled = [Box(*r.scaled(scale, scale)[:4], r.score * scale) for r in regions]
            found = self.detector.detect(work, scaled)
            detections = [b.scaled(inv, inv) for b in found]
        else:
            detections = []
        tracks = self.tracker.update(frame, detections)
        if self.vehicles is not None:
            if self._frames % self.vehicle_every == 1 or self.vehicle_every == 1:
                self._vehicle_tracks = self._find_vehicles(image, blobs, w0, h0, frame)
            tracks = tracks + self._vehicle_tracks
        boxes = [Box(*t.box[:4], round(t.score, 3), t.label) for t in tracks]
        scene = Scene(
            frame,
            ts,
            tracks,
            image,
            foreground=getattr(self.motion, "foreground", None),
            motion_scale=getattr(self.motion, "scale", 1.0),
        )
        events = [e for rule in self.rules for e in rule.update(scene)]
        return Result(frame, ts, boxes, tracks, events, regions)

    def _find_vehicles(
        self, image: Frame, blobs: Sequence[Box], w0: int, h0: int, frame: int
    ) -> list[Track]:
        assert self.vehicles is not None
        regions = [Box(*b[:4], 0.0) for b in blobs]
        regions += [
            Box(*t.predicted().grown(t.box.w * 0.25, w0, h0)[:4], t.box.h)
            for t in self.vehicle_tracker.tracks
        ]
        if self.sweep and (self._frames - 1) % self.sweep < self.vehicle_every:
            regions.append(Box(0.0, 0.0, float(w0), float(h0), 1.0))
        found = self.vehicles.detect(image, regions) if regions else []
        return self.vehicle_tracker.update(frame, found)

    def status(self, status: str, frame: int, ts: float) -> list[Event]:
        """Tell the rules about the capture's state when there is no frame (offline)."""
        scene = Scene(frame, ts, [], None, status)
        return [e for rule in self.rules for e in rule.update(scene)]


def _coverage(regions: Sequence[Box], width: int, height: int) -> float:
    import numpy as np

    mask = np.zeros((max(1, height // 8), max(1, width // 8)), np.uint8)
    for r in regions:
        x0, y0 = int(r.x // 8), int(r.y // 8)
        mask[y0 : int((r.y + r.h) // 8) + 1, x0 : int((r.x + r.w) // 8) + 1] = 1
    return float(mask.mean())


def build(config: cfg.CameraConfig) -> Analyzer:
    """An analyzer with the stages the camera's configuration asks for."""
    a = config.analysis
    detector: Detector
    d = config.detector
    if d.kind == "onnx":
        assert d.model is not None
        detector = OnnxDetector(
            d.model, size=d.input_size, threshold=0.4 if d.threshold is None else d.threshold
        )
    elif d.kind == "motion":
        detector = MotionBoxDetector(min_height=a.person_min_height, max_height=a.person_max_height)
    elif d.kind == "nanodet":
        detector = NanoDetector(["person"], threshold=0.35 if d.threshold is None else d.threshold)
    else:
        detector = HogDetector(min_height=a.person_min_height, max_height=a.person_max_height)
        if d.threshold is not None:
            detector.threshold = d.threshold
    fps = a.fps
    vehicles: Detector | None = None
    v = config.vehicles
    if v is not None and v.kind == "motion":
        vehicles = MotionVehicleDetector(min_side=v.min_size)
    elif v is not None:
        vehicles = NanoDetector(
            v.classes, model=v.model or MODEL, threshold=v.threshold, min_side=v.min_size
        )
    return Analyzer(
        motion=Mog2Motion(width=a.motion_width, mask=a.motion_mask),
        detector=detector,
        tracker=Tracker(max_misses=max(3, round(1.5 * fps)), coast=max(1, round(0.2 * fps))),
        rules=rules_mod.build(config),
        width=a.width,
        person_height=(a.person_min_height, a.person_max_height),
        sweep=round(a.sweep * fps),
        # Skipping steady tracks saves detector time; motion boxes cost nothing to recompute.
        steady_hits=0 if config.detector.kind in ("motion", "nanodet") else 4,
        vehicles=vehicles,
        vehicle_every=max(1, round((v.interval if v else 0.0) * fps)),
    )
