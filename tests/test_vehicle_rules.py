"""The vehicle rules on scripted detections with known answers, run through the real pipeline
(motion gate, trackers, rules) with a detector that reports what the script says: a vehicle
stopped in a no-parking zone, a vehicle driving the wrong way over a line, a vehicle in a
pedestrian-only zone; people and vehicles never stand in for each other."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.video import config as cfg
from edge.video import rules as rules_mod
from edge.video.boxes import Box
from edge.video.motion import Frame, Mog2Motion
from edge.video.pipeline import Analyzer
from edge.video.scene import Event
from edge.video.track import Tracker

FPS = 10
ZONE = [[100, 100], [300, 100], [300, 220], [100, 220]]
Path = list[Box | None]
"""One box (or nothing) per frame."""


class Scripted:
    """A detector that reports the scripted boxes of the frame it is called on."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = paths
        self.frame = 0
        self.calls = 0

    def detect(self, frame: Frame, regions: Sequence[Box]) -> list[Box]:
        self.calls += 1
        return [b for p in self.paths if self.frame < len(p) and (b := p[self.frame]) is not None]


def drive(
    label: str,
    start: tuple[float, float],
    end: tuple[float, float],
    frames: int,
    size: tuple[float, float] = (60, 30),
) -> Path:
    """A vehicle (or person) whose ground point moves from ``start`` to ``end``, with a pixel
    of jitter as a detector gives."""
    jitter = np.random.default_rng(len(label) + frames).normal(0, 0.7, (frames, 2))
    out: Path = []
    for i in range(frames):
        k = i / max(1, frames - 1)
        fx = start[0] + k * (end[0] - start[0]) + jitter[i, 0]
        fy = start[1] + k * (end[1] - start[1]) + jitter[i, 1]
        out.append(Box(fx - size[0] / 2, fy - size[1], size[0], size[1], 0.8, label))
    return out


def stay(path: Path, frames: int) -> Path:
    last = path[-1]
    assert last is not None
    return path + [last] * frames


def camera(*rules: dict[str, Any]) -> cfg.CameraConfig:
    return cfg.parse(
        {
            "id": "street",
            "source": "synthetic",
            "lon": 114.05,
            "lat": 22.54,
            "analysis": {"fps": FPS, "sweep": 0},
            "vehicles": {"kind": "motion"},
            "rules": list(rules),
        }
    )


def run(config: cfg.CameraConfig, paths: Sequence[Path], every: int = 1) -> list[Event]:
    """The scripted detections through both trackers and the camera's rules; people come
    from the same script through the people detector's slot."""
    vehicles = Scripted([p for p in paths if p and p[0] and p[0].label != "person"])
    people = Scripted([p for p in paths if p and p[0] and p[0].label == "person"])
    analyzer = Analyzer(
        motion=Mog2Motion(),
        detector=people,
        tracker=Tracker(max_misses=15, coast=2),
        rules=rules_mod.build(config),
        sweep=1,
        vehicles=vehicles,
        vehicle_every=every,
    )
    blank = np.zeros((240, 320, 3), np.uint8)
    events: list[Event] = []
    for i in range(max(len(p) for p in paths)):
        vehicles.frame = people.frame = i
        events += analyzer.analyse(blank, i, 1_700_000_000.0 + i / FPS).events
    return events


NO_PARKING = {"type": "no_parking", "name": "fire-lane", "polygon": ZONE, "stopped": 5}


def test_a_car_stopped_in_the_zone_raises_one_alarm_after_n_seconds() -> None:
    car = stay(drive("car", (10, 160), (200, 160), 20), 80)  # stops at frame 19 for 8 s
    events = run(camera(NO_PARKING), [car])
    assert [(e.rule, e.name, e.detail["class"]) for e in events] == [
        ("no_parking", "fire-lane", "car")
    ]
    assert 66 <= events[0].frame <= 72  # five seconds after it stopped
    assert events[0].detail["stopped"] >= 5.0
    assert events[0].track is not None and events[0].track >= 1_000_000


def test_a_stop_shorter_than_n_passing_traffic_and_people_raise_nothing() -> None:
    short = stay(drive("car", (10, 160), (200, 160), 20), 30)
    slow = drive("truck", (10, 180), (310, 180), 120)  # crawls through, never stands
    outside = stay(drive("bus", (10, 60), (200, 60), 20), 80)
    person = stay(drive("person", (150, 200), (160, 200), 10, size=(20, 60)), 90)
    assert run(camera(NO_PARKING), [short, slow, outside, person]) == []


def test_no_parking_with_the_detector_run_every_half_second() -> None:
    car = stay(drive("car", (10, 160), (200, 160), 20), 80)
    events = run(camera(NO_PARKING), [car], every=5)
    assert [e.name for e in events] == ["fire-lane"]


WRONG_WAY = {
    "type": "tripwire",
    "name": "one-way",
    "line": [[160, 20], [160, 230]],
    "direction": "a_to_b",
    "classes": ["vehicle"],
}


def test_a_vehicle_crossing_against_the_one_way_line() -> None:
    # The line runs downwards, so side a is on the right: a_to_b is driving right to left.
    right_way = drive("car", (20, 120), (300, 120), 30)
    wrong_way = drive("truck", (300, 200), (20, 200), 30)
    walker = drive("person", (300, 80), (20, 80), 30, size=(20, 60))
    events = run(camera(WRONG_WAY), [right_way, wrong_way, walker])
    assert [(e.name, e.detail["direction"]) for e in events] == [("one-way", "a_to_b")]
    assert events[0].detail["class"] == "truck"


PEDESTRIAN = {"type": "zone", "name": "plaza", "polygon": ZONE, "classes": ["vehicle"]}


@pytest.mark.parametrize("label", ["bicycle", "motorbike", "car"])
def test_a_vehicle_in_a_pedestrian_only_zone(label: str) -> None:
    rider = drive(label, (10, 200), (250, 200), 40)
    people = [drive("person", (120 + 20 * k, 150), (140, 210), 40, size=(20, 60)) for k in range(3)]
    events = run(camera(PEDESTRIAN), [rider, *people])
    assert [(e.rule, e.name) for e in events] == [("zone", "plaza")]
    assert events[0].box is not None and events[0].box.label == label
    assert events[0].to_json()["class"] == label


def test_people_rules_ignore_vehicles_and_class_lists_are_checked() -> None:
    crowd = {"type": "crowd", "name": "gathering", "min_people": 3, "duration": 1}
    cars = [stay(drive("car", (60 + 70 * k, 200), (60 + 70 * k, 200), 2), 40) for k in range(4)]
    assert run(camera(crowd), cars) == []
    with pytest.raises(cfg.ConfigError, match=r"rules\[0\]\.classes"):
        cfg.parse(
            {"id": "x", "source": "s", "lon": 1, "lat": 1, "rules": [{**PEDESTRIAN}]}
        )  # vehicles without a vehicle detector
    with pytest.raises(cfg.ConfigError, match=r"rules\[0\]\.classes"):
        camera({**PEDESTRIAN, "classes": ["lorry"]})
    with pytest.raises(cfg.ConfigError, match=r"vehicles\.kind"):
        cfg.parse({"id": "x", "source": "s", "lon": 1, "lat": 1, "vehicles": {"kind": "yolo"}})


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["kind", "classes", "threshold", "interval", "min_size", "model", "x"]),
        st.one_of(
            st.none(),
            st.floats(allow_nan=True),
            st.integers(),
            st.text(max_size=8),
            st.lists(st.sampled_from(["car", "vehicle", "person", "tram", ""]), max_size=3),
        ),
    ),
    st.dictionaries(
        st.sampled_from(["polygon", "stopped", "tolerance", "classes", "schedule", "y"]),
        st.one_of(
            st.floats(allow_nan=True),
            st.text(max_size=8),
            st.lists(st.lists(st.integers(-5, 500), max_size=3), max_size=5),
        ),
    ),
)
def test_any_vehicles_table_and_no_parking_rule_is_accepted_or_a_config_error(
    vehicles: dict[str, Any], rule: dict[str, Any]
) -> None:
    data = {"id": "x", "source": "s", "lon": 1, "lat": 1, "vehicles": vehicles}
    with contextlib.suppress(cfg.ConfigError):
        cfg.parse({**data, "rules": [{"type": "no_parking", **rule}]})
