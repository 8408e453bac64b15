"""What every rule sees and raises: the :class:`Scene` of one analysed frame, the
:class:`Event` a rule fires, the :class:`Rule` interface, and the habits the rules share (a
:class:`Cooldown`, a schedule, a zone test, the tracks of the wanted classes).

The rule families (:mod:`edge.video.rules`: who crosses a place; :mod:`edge.video.activity`:
what happens in it) import this; the pipeline builds scenes and reads events from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge.video.boxes import Box, Point
from edge.video.motion import Frame
from edge.video.objects import expand
from edge.video.track import Track


@dataclass
class Scene:
    """What one analysed frame shows the rules."""

    frame: int
    ts: float
    tracks: Sequence[Track]
    image: Frame | None = None
    status: str = "online"
    """The capture's status: ``online``, ``stalled`` or ``offline``."""
    foreground: Frame | None = None
    """The motion gate's binary mask of what moved (masks applied), at ``motion_scale``."""
    motion_scale: float = 1.0


@dataclass
class Event:
    """A rule fired. ``rule`` is the rule's type, ``name`` its configured name."""

    rule: str
    name: str
    frame: int
    ts: float
    track: int | None = None
    box: Box | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "name": self.name}
        out.update(self.detail)
        if self.track is not None:
            out["track"] = self.track
        out["ts"] = round(self.ts, 3)
        if self.box is not None:
            out["box"] = self.box.as_list()
        return out


class Rule(Protocol):
    """A rule: its configured name, and the events it raises on each scene."""

    name: str

    def update(self, scene: Scene) -> list[Event]: ...


class Cooldown:
    """One event per ``seconds`` for each key (a track, a direction, a kind of tamper)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[object, float] = {}

    def ready(self, key: object, ts: float) -> bool:
        last = self._last.get(key)
        if last is not None and ts - last < self.seconds:
            return False
        self._last[key] = ts
        return True


def of_classes(tracks: Sequence[Track], classes: Sequence[str]) -> list[Track]:
    """The tracks of the given classes (``vehicle``: every vehicle class)."""
    wanted = expand(classes)
    return [t for t in tracks if t.label in wanted]


def inside(polygon: Sequence[Point], p: Point) -> bool:
    """Whether ``p`` lies in ``polygon`` or on its edge."""
    contour = np.asarray(polygon, dtype=np.float32)
    return cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), False) >= 0


def in_schedule(windows: Sequence[str], ts: float, tz: ZoneInfo) -> bool:
    """Whether ``ts`` falls in one of the ``HH:MM-HH:MM`` windows (local to ``tz``; a window
    may run past midnight); no windows: always."""
    if not windows:
        return True
    now = datetime.fromtimestamp(ts, tz)
    minute = now.hour * 60 + now.minute
    for window in windows:
        start, end = window.split("-")
        a = int(start[:2]) * 60 + int(start[3:])
        b = int(end[:2]) * 60 + int(end[3:])
        if (a <= minute < b) if a <= b else (minute >= a or minute < b):
            return True
    return False
