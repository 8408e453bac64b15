"""Rules about what happens in a place rather than who crosses it: plain motion in a zone (for
cameras where any movement at night is an alarm) and a vehicle standing in a no-parking zone.

Both follow the house rules of :mod:`edge.video.rules` (a schedule, a cooldown, one event per
happening), through what :mod:`edge.video.scene` gives every rule.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge.video import config as cfg
from edge.video.boxes import Box, Point
from edge.video.motion import Frame
from edge.video.scene import Cooldown, Event, Scene, in_schedule, inside, of_classes


class ZoneMotion:
    """More than ``area`` of the polygon moving for ``duration`` seconds.

    It reads the motion gate's foreground mask, where ``analysis.motion_mask`` is already
    blanked, so a masked tree never counts. The event's box bounds what moved in the zone.
    """

    def __init__(self, name: str, c: cfg.MotionRule, tz: ZoneInfo) -> None:
        self.name, self.c, self.tz = name, c, tz
        self._cool = Cooldown(c.cooldown)
        self._since: float | None = None
        self._zone: Frame | None = None
        self._zone_key: tuple[int, int, float] | None = None
        self.fraction = 0.0
        """Share of the zone that moved in the last frame (the annotated replay shows it)."""

    def _mask(self, shape: tuple[int, int], scale: float) -> Frame:
        key = (shape[0], shape[1], scale)
        if self._zone is None or self._zone_key != key:
            zone = np.zeros(shape, np.uint8)
            if self.c.polygon is None:
                zone[:] = 255
            else:
                pts = np.array([[x * scale, y * scale] for x, y in self.c.polygon], np.int32)
                cv2.fillPoly(zone, [pts], 255)
            self._zone, self._zone_key = zone, key
        return self._zone

    def update(self, scene: Scene) -> list[Event]:
        fg = scene.foreground
        if fg is None:
            self._since, self.fraction = None, 0.0
            return []
        zone = self._mask(fg.shape[:2], scene.motion_scale)
        total = cv2.countNonZero(zone)
        moving = cv2.bitwise_and(fg, zone)
        self.fraction = cv2.countNonZero(moving) / total if total else 0.0
        if self.fraction < self.c.area:
            self._since = None
            return []
        if self._since is None:
            self._since = scene.ts
        if scene.ts - self._since < self.c.duration:
            return []
        if not in_schedule(self.c.schedule, scene.ts, self.tz):
            return []
        if not self._cool.ready(None, scene.ts):
            return []
        x, y, w, h = cv2.boundingRect(moving)
        inv = 1.0 / scene.motion_scale
        box = Box(x * inv, y * inv, w * inv, h * inv, round(self.fraction, 3), "motion")
        detail = {"area": round(self.fraction, 3)}
        return [Event("motion", self.name, scene.frame, scene.ts, None, box, detail)]


class NoParking:
    """A vehicle's ground point stays within ``tolerance`` of its width of where it stopped,
    inside the polygon, for ``stopped`` seconds: one event per stop (it must move off and stop
    again to raise another)."""

    def __init__(self, name: str, c: cfg.NoParkingRule, tz: ZoneInfo) -> None:
        self.name, self.c, self.tz = name, c, tz
        self._cool = Cooldown(c.cooldown)
        self._stop: dict[int, tuple[Point, float]] = {}
        self._fired: set[int] = set()

    def update(self, scene: Scene) -> list[Event]:
        events = []
        live = set()
        for t in of_classes(scene.tracks, self.c.classes):
            foot = t.box.foot
            if not t.confirmed or not inside(self.c.polygon, foot):
                continue
            live.add(t.id)
            anchor = self._stop.get(t.id)
            moved = anchor is not None and np.hypot(
                foot[0] - anchor[0][0], foot[1] - anchor[0][1]
            ) > self.c.tolerance * max(t.box.w, 1.0)
            if anchor is None or moved:
                self._stop[t.id] = (foot, scene.ts)
                self._fired.discard(t.id)
                continue
            stood = scene.ts - anchor[1]
            if stood < self.c.stopped or t.id in self._fired:
                continue
            if not in_schedule(self.c.schedule, scene.ts, self.tz):
                continue
            self._fired.add(t.id)
            if self._cool.ready(t.id, scene.ts):
                detail = {"stopped": round(stood, 1), "class": t.label}
                events.append(
                    Event("no_parking", self.name, scene.frame, scene.ts, t.id, t.box, detail)
                )
        self._stop = {k: v for k, v in self._stop.items() if k in live}
        self._fired &= live
        return events
