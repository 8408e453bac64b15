"""Every video rule on a synthetic scene whose alarms are known: a figure walking across a
tripwire, into a zone, loitering, a crowd gathering, a covered / blurred / turned camera, a
camera going offline. Each expects exactly the alarms a person watching would raise."""

from __future__ import annotations

from typing import Any

import pytest

from edge.video import config as cfg
from edge.video import pipeline, synthetic
from edge.video.boxes import Point
from edge.video.motion import Frame
from edge.video.scene import Event


def camera(*rules: dict[str, Any], **analysis: Any) -> cfg.CameraConfig:
    return cfg.parse(
        {
            "id": "synth",
            "source": "synthetic",
            "lon": 114.05,
            "lat": 22.54,
            "analysis": {"fps": 10, "person_min_height": 20, "sweep": 0, **analysis},
            "detector": {"kind": "motion"},
            "rules": list(rules),
        }
    )


def run(config: cfg.CameraConfig, frames: list[Frame]) -> list[Event]:
    analyzer = pipeline.build(config)
    events: list[Event] = []
    for i, image in enumerate(frames):
        events += analyzer.analyse(image, i, 1_700_000_000.0 + i / 10).events
    return events


LINE = {"type": "tripwire", "name": "gate", "line": [[160, 40], [160, 230]]}


@pytest.mark.parametrize(
    ("start", "end", "direction"),
    [((40, 150), (280, 150), "b_to_a"), ((280, 150), (40, 150), "a_to_b")],
)
def test_tripwire_counts_one_crossing_with_its_direction(
    start: tuple[int, int], end: tuple[int, int], direction: str
) -> None:
    # The line runs downwards on screen, so its left (side a) is the right half of the frame.
    events = run(camera(LINE), synthetic.scene([synthetic.walk(start, end, 40)]))
    assert [(e.rule, e.name, e.detail["direction"]) for e in events] == [
        ("tripwire", "gate", direction)
    ]
    assert events[0].track is not None


def test_tripwire_at_half_the_analysis_resolution_reports_source_pixels() -> None:
    frames = synthetic.scene([synthetic.walk((40, 150), (280, 150), 40)])
    events = run(camera(LINE, width=160), frames)
    assert [e.detail["direction"] for e in events] == ["b_to_a"]
    assert events[0].box is not None and 40 < events[0].box.h < 80  # source pixels


def test_tripwire_direction_filter_and_walking_back() -> None:
    there = synthetic.walk((40, 150), (280, 150), 40)
    back = synthetic.walk((280, 150), (40, 150), 40)
    frames = synthetic.scene([there + back])
    only_b_to_a = run(camera({**LINE, "direction": "b_to_a"}), frames)
    assert [e.detail["direction"] for e in only_b_to_a] == ["b_to_a"]
    both = run(camera(LINE), frames)
    assert [e.detail["direction"] for e in both] == ["b_to_a", "a_to_b"]


def test_tripwire_ignores_a_walk_past_the_end_of_the_line() -> None:
    short = {**LINE, "line": [[160, 40], [160, 100]]}
    frames = synthetic.scene([synthetic.walk((40, 200), (280, 200), 40)])
    assert run(camera(short), frames) == []


ZONE = [[200, 60], [310, 60], [310, 230], [200, 230]]


def test_zone_intrusion_one_alarm_per_cooldown_and_schedule() -> None:
    late: list[Point | None] = [None] * 10
    paths = [
        list[Point | None](synthetic.walk((40, 150), (260, 150), 30)),
        late + synthetic.walk((40, 120), (250, 200), 30),
    ]
    frames = synthetic.scene(paths)
    rule = {"type": "zone", "name": "yard", "polygon": ZONE, "cooldown": 60}
    events = run(camera(rule), frames)
    assert [(e.rule, e.name) for e in events] == [("zone", "yard")]
    # 1_700_000_000 is 22:13 UTC: a night-time schedule is active, a day-time one is not.
    night = run(camera({**rule, "schedule": ["22:00-06:00"]}), frames)
    day = run(camera({**rule, "schedule": ["08:00-18:00"]}), frames)
    assert len(night) == 1 and day == []
    no_cooldown = run(camera({**rule, "cooldown": 0}), frames)
    assert len(no_cooldown) == 2


def test_loitering_after_the_dwell_time_only() -> None:
    # Pacing to and fro inside the zone for 6 s (it keeps moving, so motion sees it).
    pace = synthetic.walk((220, 150), (290, 150), 15) + synthetic.walk((290, 150), (220, 150), 15)
    frames = synthetic.scene([pace * 2])
    rule = {"type": "loitering", "name": "linger", "polygon": ZONE}
    events = run(camera({**rule, "dwell": 4}), frames)
    assert [(e.rule, e.name) for e in events] == [("loitering", "linger")]
    assert events[0].detail["dwell"] >= 4
    assert run(camera({**rule, "dwell": 20}), frames) == []


def test_crowd_gathering_needs_enough_people_for_long_enough() -> None:
    paths = [
        synthetic.walk((30 + 60 * k, 100 + 20 * (k % 2)), (50 + 60 * k, 200), 50) for k in range(4)
    ]
    frames = synthetic.scene(paths, height=50)
    rule = {"type": "crowd", "name": "square", "min_people": 4, "duration": 2, "cooldown": 600}
    events = run(camera(rule), frames)
    assert [(e.rule, e.detail["people"]) for e in events] == [("crowd", 4)]
    assert run(camera({**rule, "min_people": 5}), frames) == []


@pytest.mark.parametrize(
    ("spoil", "kind"),
    [
        (synthetic.covered, "covered"),
        (synthetic.blurred, "blurred"),
        (lambda img: synthetic.shifted(img, 40, 10), "moved"),
    ],
)
def test_tamper_each_kind_once(spoil: Any, kind: str) -> None:
    base = synthetic.background()
    frames = [base.copy() for _ in range(30)] + [spoil(base) for _ in range(60)]
    events = run(camera({"type": "tamper", "duration": 2, "cooldown": 600}), frames)
    assert [(e.rule, e.detail["tamper"]) for e in events] == [("tamper", kind)]
    assert events[0].frame >= 30 + 20  # it lasted the configured 2 s first


def test_tamper_quiet_on_a_healthy_view_with_people() -> None:
    frames = synthetic.scene([synthetic.walk((40, 150), (280, 150), 60)], lead=30)
    assert run(camera({"type": "tamper", "duration": 1}), frames) == []


def test_camera_offline_after_the_configured_time_once_per_outage() -> None:
    analyzer = pipeline.build(camera({"type": "offline", "after": 5}))
    events = []
    for second in range(12):
        events += analyzer.status("offline", 0, 1000.0 + second)
    assert [(e.rule, e.detail["status"], e.ts) for e in events] == [("offline", "offline", 1005.0)]
    analyzer.status("online", 0, 1013.0)
    again = [e for s in range(7) for e in analyzer.status("stalled", 0, 1014.0 + s)]
    assert [e.detail["status"] for e in again] == ["stalled"]
