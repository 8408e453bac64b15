"""Two more synthetic camera scenes for the demo, each with its ground truth: a street with
vehicles (wrong-way driving, a car parked in a no-parking bay, a car driving onto the
pedestrian plaza) and a door at night (any movement at the door, someone lingering there,
someone climbing into the yard). Every rule of a scene fires for a reason one can see, at a
known moment of its loop (:attr:`Scene.expected`), and nothing else is expected of it: the car
driving the allowed way and the pedestrians on the plaza raise nothing.

Vehicles are textured boxes wider than tall, people the figures of
:mod:`edge.video.synthetic`; the cameras use the motion detectors (``[detector] kind =
"motion"`` for people, ``[vehicles] kind = "motion"`` for cars), so the demo spends no
model time on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.video import synthetic
from edge.video.motion import Frame

FPS = 10.0
SIZE = (480, 360)
Foot = tuple[float, float] | None
Path_ = list[Foot]


@dataclass(frozen=True)
class Expected:
    """A rule's alarm the scene is made to raise, between ``start`` and ``end`` seconds of the
    loop (analysis at 5 fps or more)."""

    rule: str
    start: float
    end: float


@dataclass(frozen=True)
class Scene:
    """A rendered camera scene and the camera config that watches it."""

    name: str
    seconds: int
    render: Callable[[], Iterator[Frame]]
    rules: list[dict[str, object]]
    analysis: dict[str, object]
    vehicles: dict[str, object] | None = None
    expected: list[Expected] = field(default_factory=list)

    @property
    def file(self) -> str:
        return f"scene-{self.name}-v1.avi"


def path(start: float, a: tuple[float, float], b: tuple[float, float], secs: float) -> Path_:
    """Absent until ``start`` s, then moving from ``a`` to ``b`` in ``secs`` s."""
    n = max(2, int(secs * FPS))
    lead: Path_ = [None] * int(start * FPS)
    return lead + [(a[0] + (b[0] - a[0]) * i / (n - 1), a[1] + (b[1] - a[1]) * i / (n - 1))
                   for i in range(n)]  # fmt: skip


def hold(p: Path_, secs: float, sway: float = 0.0) -> Path_:
    """Stay at the path's last point for ``secs`` s (a person sways, so the background model
    keeps seeing them)."""
    last = p[-1]
    assert last is not None
    return p + [(last[0] + sway * math.sin(i / 3.0), last[1]) for i in range(int(secs * FPS))]


def car(image: Frame, foot: tuple[float, float], colour: tuple[int, int, int],
        size: tuple[int, int] = (76, 30)) -> None:  # fmt: skip
    """A car seen from the side, its ground point (bottom centre) at ``foot``: a body, a cabin
    with windows, two wheels."""
    w, h = size
    x0, y0 = int(foot[0] - w / 2), int(foot[1] - h)
    cv2.rectangle(image, (x0, y0 + h // 3), (x0 + w, y0 + h - 5), colour, -1)
    cv2.rectangle(image, (x0 + w // 5, y0), (x0 + 4 * w // 5, y0 + h // 3), colour, -1)
    for k in (1, 2):  # windows
        wx = x0 + w // 5 + (k - 1) * 3 * w // 10 + 3
        cv2.rectangle(image, (wx, y0 + 3), (wx + 3 * w // 10 - 6, y0 + h // 3), (200, 220, 230), -1)
    for wx in (x0 + w // 5, x0 + 4 * w // 5):
        cv2.circle(image, (wx, y0 + h - 6), 6, (20, 20, 20), -1)
    cv2.line(image, (x0 + 4, y0 + h // 2), (x0 + w - 4, y0 + h // 2), (240, 240, 240), 1)


def _draw(base: Frame, seconds: int, cars: list[tuple[Path_, tuple[int, int, int]]],
          people: list[Path_], height: float) -> Iterator[Frame]:  # fmt: skip
    for i in range(int(seconds * FPS)):
        img = base.copy()
        for p, colour in cars:
            if i < len(p) and (foot := p[i]) is not None:
                car(img, foot, colour)
        for p in people:
            if i < len(p) and (foot := p[i]) is not None:
                synthetic.figure(img, foot, height)
        yield img


# --- a street with vehicles ----------------------------------------------------------------
# The road runs across the picture (y 210-320, traffic drives left to right), a no-parking
# bay on its far right, the pedestrian plaza above it (y 110-200).
PLAZA = [[0, 110], [480, 110], [480, 200], [0, 200]]
BAY = [[330, 225], [480, 225], [480, 320], [330, 320]]
ONE_WAY_X = 200


def _street_base() -> Frame:
    img = synthetic.background(*SIZE, seed=21)
    cv2.rectangle(img, (0, 210), (480, 320), (70, 70, 72), -1)  # asphalt
    rng = np.random.default_rng(5)
    grain = rng.integers(-12, 12, (110, 480, 1)).astype(np.int16)
    img[210:320] = np.clip(img[210:320].astype(np.int16) + grain, 0, 255).astype(np.uint8)
    for x in range(0, 480, 60):
        cv2.line(img, (x, 265), (x + 30, 265), (230, 230, 230), 2)  # lane marks
    cv2.rectangle(img, (330, 225), (478, 318), (40, 200, 240), 2)  # the bay's yellow box
    cv2.putText(img, "NO PARKING", (345, 245), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 200, 240), 1)
    return img


def _street() -> Iterator[Frame]:
    cars = [
        (path(2.0, (-50, 300), (530, 300), 6.0), (200, 60, 40)),  # the right way: nothing
        (path(12.0, (530, 255), (-50, 255), 6.0), (40, 90, 200)),  # wrong way
        (path(24.0, (-50, 300), (200, 300), 3.0) + path(0.0, (200, 300), (200, 180), 2.0)
         + hold(path(0.0, (200, 180), (120, 180), 2.0), 3.0), (60, 160, 60)),  # onto the plaza
        (hold(path(36.0, (-50, 300), (405, 300), 5.0), 14.0), (150, 150, 160)),  # parks in bay
    ]  # fmt: skip
    people = [path(1.0, (-20, 160), (500, 150), 20.0), path(30.0, (500, 190), (-20, 170), 18.0)]
    return _draw(_street_base(), 60, cars, people, 64.0)


STREET = Scene(
    name="traffic",
    seconds=60,
    render=_street,
    rules=[
        {
            "type": "tripwire",
            "name": "one-way",
            "classes": ["vehicle"],
            "direction": "a_to_b",
            "line": [[ONE_WAY_X, 215], [ONE_WAY_X, 318]],
            "cooldown": 5,
        },
        {"type": "no_parking", "name": "bay", "polygon": BAY, "stopped": 5, "cooldown": 30},
        {
            "type": "zone",
            "name": "plaza-cars",
            "classes": ["vehicle"],
            "polygon": PLAZA,
            "cooldown": 20,
        },
    ],  # fmt: skip
    analysis={"fps": 5, "person_min_height": 40, "person_max_height": 160, "sweep": 0},
    vehicles={"kind": "motion", "interval": 0.0, "min_size": 16},
    expected=[
        Expected("one-way", 13.0, 17.0),
        Expected("plaza-cars", 26.0, 31.0),
        Expected("bay", 41.0, 50.0),
    ],  # fmt: skip
)

# --- a door at night -----------------------------------------------------------------------
# A dark yard; one lamp lights the door (x 180-300) and the path to it. The yard behind the
# fence (right, x > 360) is out of bounds.
DOOR = [[170, 150], [310, 150], [310, 320], [170, 320]]
YARD = [[360, 150], [480, 150], [480, 330], [360, 330]]


def _night_base() -> Frame:
    rng = np.random.default_rng(9)
    img = rng.integers(18, 34, (SIZE[1], SIZE[0], 3)).astype(np.uint8)
    disc = np.zeros(img.shape[:2], np.float32)
    cv2.circle(disc, (240, 140), 190, 1.0, -1)
    light = cv2.GaussianBlur(disc, (0, 0), 50)
    lit = (img.astype(np.float32) + light[..., None] * 200).clip(0, 255).astype(np.uint8)
    cv2.rectangle(lit, (200, 130), (280, 300), (110, 160, 205), -1)  # the door
    cv2.rectangle(lit, (200, 130), (280, 300), (150, 170, 190), 2)
    cv2.circle(lit, (268, 220), 4, (200, 200, 120), -1)  # handle
    cv2.circle(lit, (240, 110), 9, (210, 250, 255), -1)  # lamp
    for x in range(350, 480, 14):  # fence
        cv2.line(lit, (x, 150), (x, 330), (70, 70, 60), 3)
    cv2.line(lit, (350, 160), (480, 160), (70, 70, 60), 3)
    return lit


def _night() -> Iterator[Frame]:
    lingerer = path(4.0, (-20, 320), (240, 310), 4.0)  # then paces before the door for 14 s
    lingerer += [(240 + 35 * math.sin(i / 10), 310.0) for i in range(int(14 * FPS))]
    lingerer += path(0.0, (240, 310), (-20, 330), 4.0)
    climber = path(36.0, (-20, 340), (420, 300), 7.0)
    return _draw(_night_base(), 60, [], [lingerer, climber], 90.0)


DOOR_NIGHT = Scene(
    name="door",
    seconds=60,
    render=_night,
    rules=[
        {
            "type": "motion",
            "name": "door-motion",
            "polygon": DOOR,
            "area": 0.03,
            "duration": 1,
            "cooldown": 40,
        },
        {"type": "loitering", "name": "at-the-door", "polygon": DOOR, "dwell": 8, "cooldown": 40},
        {"type": "zone", "name": "yard", "polygon": YARD, "cooldown": 30},
    ],  # fmt: skip
    analysis={"fps": 5, "person_min_height": 50, "person_max_height": 200, "sweep": 0},
    expected=[
        Expected("door-motion", 6.0, 10.0),
        Expected("at-the-door", 14.0, 22.0),
        Expected("yard", 40.0, 44.0),
    ],  # fmt: skip
)

SCENES = (STREET, DOOR_NIGHT)


def render(scene: Scene, folder: Path) -> Path:
    """Render ``scene`` into ``folder`` (an MJPEG AVI) unless it is already there."""
    out = folder / scene.file
    if out.is_file() and out.stat().st_size > 0:
        return out
    partial = out.with_suffix(".part.avi")
    synthetic.write(partial, scene.render(), fps=FPS)
    partial.replace(out)
    return out
