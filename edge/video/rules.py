"""Rules turn tracks and frames into events: zone intrusion, tripwire, loitering, crowd, tamper,
camera offline.

Each rule sees one :class:`~edge.video.scene.Scene` per analysed frame and returns the events
it raises. A cooldown makes one happening one alarm: a rule does not raise the same event again
(for the same track, where it is about a track) until ``cooldown`` seconds have passed.
:func:`build` makes a camera's rules, these and those of :mod:`edge.video.activity`.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge.video import activity
from edge.video import config as cfg
from edge.video.boxes import Point, segment_param, side_of
from edge.video.motion import Frame
from edge.video.scene import Cooldown, Event, Rule, Scene, in_schedule, inside, of_classes
from edge.video.track import Track


def _kind(track: Track) -> dict[str, Any]:
    """``{"class": "car"}`` for events about anything but a person (people's events keep the
    shape they always had)."""
    return {} if track.label == "person" else {"class": track.label}


class ZoneIntrusion:
    """Someone's feet inside the polygon during the schedule (one alarm per cooldown)."""

    def __init__(self, name: str, c: cfg.ZoneRule, tz: ZoneInfo) -> None:
        self.name, self.c, self.tz = name, c, tz
        self._cool = Cooldown(c.cooldown)
        self._inside: set[int] = set()

    def update(self, scene: Scene) -> list[Event]:
        events = []
        now_inside = set()
        for t in of_classes(scene.tracks, self.c.classes):
            if t.misses or not t.confirmed or not inside(self.c.polygon, t.box.foot):
                continue
            now_inside.add(t.id)
            entered = t.id not in self._inside
            active = entered and in_schedule(self.c.schedule, scene.ts, self.tz)
            if active and self._cool.ready(None, scene.ts):
                events.append(
                    Event("zone", self.name, scene.frame, scene.ts, t.id, t.box, _kind(t))
                )
        self._inside = now_inside | {
            t.id for t in scene.tracks if t.misses and t.id in self._inside
        }
        return events


class Tripwire:
    """A track's feet cross the line, in the configured direction.

    A foot must be clearly on one side (``margin`` px) before and after, and cross within the
    segment, so a person standing on the line does not count again and again.
    """

    def __init__(self, name: str, c: cfg.TripwireRule, margin: float = 3.0) -> None:
        self.name, self.c, self.margin = name, c, margin
        self.line: tuple[Point, Point] = (c.line[0], c.line[1])
        self._cool = Cooldown(c.cooldown)
        self._side: dict[int, tuple[str, Point]] = {}

    def update(self, scene: Scene) -> list[Event]:
        events = []
        for t in of_classes(scene.tracks, self.c.classes):
            if t.misses or not t.confirmed:
                continue
            foot = t.box.foot
            d = side_of(self.line, foot)
            if abs(d) < self.margin:
                continue
            side = "a" if d < 0 else "b"
            before = self._side.get(t.id)
            self._side[t.id] = (side, foot)
            if before is None or before[0] == side:
                continue
            # Where the path crossed the line's infinite extension must lie on the segment.
            d0 = side_of(self.line, before[1])
            k = d0 / (d0 - d)
            cross = (
                before[1][0] + k * (foot[0] - before[1][0]),
                before[1][1] + k * (foot[1] - before[1][1]),
            )
            if not 0.0 <= segment_param(self.line, cross) <= 1.0:
                continue
            direction = f"{before[0]}_to_{side}"
            if self.c.direction not in ("any", direction):
                continue
            if self._cool.ready((t.id, direction), scene.ts):
                events.append(
                    Event(
                        "tripwire",
                        self.name,
                        scene.frame,
                        scene.ts,
                        t.id,
                        t.box,
                        {"direction": direction, **_kind(t)},
                    )
                )
        live = {t.id for t in scene.tracks}
        for gone in [k for k in self._side if k not in live]:
            del self._side[gone]
        return events


class Loitering:
    """A track stays inside the polygon for ``dwell`` seconds (one alarm per track)."""

    def __init__(self, name: str, c: cfg.LoiteringRule) -> None:
        self.name, self.c = name, c
        self._since: dict[int, float] = {}
        self._cool = Cooldown(c.cooldown)
        self._fired: set[int] = set()

    def update(self, scene: Scene) -> list[Event]:
        events = []
        live = set()
        for t in of_classes(scene.tracks, self.c.classes):
            if not t.confirmed or not inside(self.c.polygon, t.box.foot):
                continue
            live.add(t.id)
            since = self._since.setdefault(t.id, scene.ts)
            dwell = scene.ts - since
            if dwell >= self.c.dwell and t.id not in self._fired:
                self._fired.add(t.id)
                if self._cool.ready(t.id, scene.ts):
                    events.append(
                        Event(
                            "loitering",
                            self.name,
                            scene.frame,
                            scene.ts,
                            t.id,
                            t.box,
                            {"dwell": round(dwell, 1)},
                        )
                    )
        self._since = {k: v for k, v in self._since.items() if k in live}
        return events


class Crowd:
    """At least ``min_people`` tracks (inside the polygon, if any) for ``duration`` seconds."""

    def __init__(self, name: str, c: cfg.CrowdRule) -> None:
        self.name, self.c = name, c
        self._since: float | None = None
        self._cool = Cooldown(c.cooldown)

    def update(self, scene: Scene) -> list[Event]:
        poly = self.c.polygon
        people = [
            t
            for t in of_classes(scene.tracks, self.c.classes)
            if t.confirmed and (poly is None or inside(poly, t.box.foot))
        ]
        if len(people) < self.c.min_people:
            self._since = None
            return []
        if self._since is None:
            self._since = scene.ts
        if scene.ts - self._since >= self.c.duration and self._cool.ready(None, scene.ts):
            return [
                Event(
                    "crowd", self.name, scene.frame, scene.ts, None, None, {"people": len(people)}
                )
            ]
        return []


class Tamper:
    """Lens covered (dark or featureless), view blurred (sharpness fell below ``blur_ratio`` of
    the reference) or camera moved (global shift against the reference view).

    The reference is the view after a short settling time; it follows slow changes (light)
    while nothing is wrong.
    """

    _SIZE = (160, 120)

    def __init__(self, name: str, c: cfg.TamperRule) -> None:
        self.name, self.c = name, c
        self._ref: Frame | None = None
        self._ref_sharp = 0.0
        self._since: dict[str, float] = {}
        self._cool = Cooldown(c.cooldown)
        self._window = cv2.createHanningWindow(self._SIZE, cv2.CV_32F)

    def update(self, scene: Scene) -> list[Event]:
        if scene.image is None:
            return []
        small = cv2.resize(scene.image, self._SIZE, interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        g = grey.astype(np.float32)
        sharp = float(cv2.Laplacian(grey, cv2.CV_32F).var())
        found = set()
        if float(g.mean()) < 20.0 or float(g.std()) < 6.0:
            found.add("covered")
        elif self._ref is not None:
            if sharp < self.c.blur_ratio * self._ref_sharp:
                found.add("blurred")
            (dx, dy), response = cv2.phaseCorrelate(self._ref, g, self._window)
            if response > 0.05 and np.hypot(dx, dy) > self.c.shift * self._SIZE[0]:
                found.add("moved")
        if not found:
            if self._ref is None:
                self._ref, self._ref_sharp = g, sharp
            else:
                cv2.accumulateWeighted(g, self._ref, 0.02)
                self._ref_sharp = 0.98 * self._ref_sharp + 0.02 * sharp
        for kind in [k for k in self._since if k not in found]:
            del self._since[kind]
        events = []
        for kind in sorted(found):
            since = self._since.setdefault(kind, scene.ts)
            if scene.ts - since >= self.c.duration and self._cool.ready(kind, scene.ts):
                events.append(
                    Event("tamper", self.name, scene.frame, scene.ts, None, None, {"tamper": kind})
                )
        return events


class CameraOffline:
    """The capture has been offline or stalled for ``after`` seconds (once per outage)."""

    def __init__(self, name: str, c: cfg.OfflineRule) -> None:
        self.name, self.c = name, c
        self._since: float | None = None
        self._fired = False

    def update(self, scene: Scene) -> list[Event]:
        if scene.status == "online":
            self._since, self._fired = None, False
            return []
        if self._since is None:
            self._since = scene.ts
        if not self._fired and scene.ts - self._since >= self.c.after:
            self._fired = True
            return [
                Event(
                    "offline",
                    self.name,
                    scene.frame,
                    scene.ts,
                    None,
                    None,
                    {"status": scene.status},
                )
            ]
        return []


def build(config: cfg.CameraConfig) -> list[Rule]:
    """The camera's rules, in configuration order."""
    tz = ZoneInfo(config.timezone)
    rules: list[Rule] = []
    for i, c in enumerate(config.rules):
        name = config.rule_name(i)
        if isinstance(c, cfg.ZoneRule):
            rules.append(ZoneIntrusion(name, c, tz))
        elif isinstance(c, cfg.TripwireRule):
            rules.append(Tripwire(name, c))
        elif isinstance(c, cfg.LoiteringRule):
            rules.append(Loitering(name, c))
        elif isinstance(c, cfg.CrowdRule):
            rules.append(Crowd(name, c))
        elif isinstance(c, cfg.TamperRule):
            rules.append(Tamper(name, c))
        elif isinstance(c, cfg.MotionRule):
            rules.append(activity.ZoneMotion(name, c, tz))
        elif isinstance(c, cfg.NoParkingRule):
            rules.append(activity.NoParking(name, c, tz))
        else:
            rules.append(CameraOffline(name, c))
    return rules
