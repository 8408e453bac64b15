"""The motion rule on a rendered night scene whose alarms are known: a door zone where anything
moving is an alarm, a masked tree that moves all night, movement outside the zone, a schedule
and a cooldown; and its configuration errors naming the key."""

from __future__ import annotations

import contextlib
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.video import config as cfg
from edge.video import pipeline, synthetic
from edge.video.motion import Frame
from edge.video.scene import Event

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DOOR = [[200, 60], [300, 60], [300, 200], [200, 200]]
TREE = [[10, 10], [90, 10], [90, 100], [10, 100]]


def camera(*rules: dict[str, Any], mask: bool = True) -> cfg.CameraConfig:
    return cfg.parse(
        {
            "id": "door",
            "source": "synthetic",
            "lon": 114.05,
            "lat": 22.54,
            "analysis": {"fps": 10, "sweep": 0, "motion_mask": [TREE] if mask else []},
            "detector": {"kind": "motion"},
            "rules": list(rules),
        }
    )


def night(frames: int, door: set[int], outside: frozenset[int] = frozenset()) -> list[Frame]:
    """A dark yard: the tree (top left) sways in every frame; a lit shape moves in the door
    zone in the frames of ``door``, and one moves at the bottom left in ``outside``."""
    base = (synthetic.background(seed=3) * 0.4).astype(np.uint8)
    rng = np.random.default_rng(5)
    out: list[Frame] = []
    for i in range(frames):
        img = base.copy()
        for _ in range(3):  # leaves: bright blobs somewhere new in every frame
            x, y = (int(v) for v in rng.integers((25, 25), (75, 85)))
            cv2.circle(img, (x, y), 12, (90, 230, 120), -1)
        if i in door:
            x = 210 + (i * 7) % 60
            cv2.rectangle(img, (x, 90), (x + 25, 190), (200, 200, 220), -1)
        if i in outside:
            x = 20 + (i * 9) % 90
            cv2.rectangle(img, (x, 150), (x + 30, 230), (220, 220, 220), -1)
        out.append(img)
    return out


def run(config: cfg.CameraConfig, frames: list[Frame]) -> list[Event]:
    analyzer = pipeline.build(config)
    events: list[Event] = []
    for i, image in enumerate(frames):
        events += analyzer.analyse(image, i, T0 + i / 10).events
    return events


RULE = {"type": "motion", "name": "door", "polygon": DOOR, "area": 0.05, "duration": 1.0}


def test_motion_in_the_zone_for_the_duration_raises_one_alarm_after_it() -> None:
    events = run(camera(RULE), night(80, door=set(range(30, 60)), outside=frozenset(range(5, 80))))
    assert [(e.rule, e.name) for e in events] == [("motion", "door")]
    # Movement began at frame 30 and lasted; the alarm comes one second (10 frames) later.
    assert 39 <= events[0].frame <= 42
    assert events[0].detail["area"] >= 0.05
    box = events[0].box
    assert box is not None and box.x >= 195 and box.x + box.w <= 305


def test_short_movement_and_movement_elsewhere_raise_nothing() -> None:
    events = run(camera(RULE), night(70, door=set(range(30, 35)), outside=frozenset(range(5, 70))))
    assert events == []


def test_the_mask_is_honoured_and_without_it_the_tree_is_an_alarm() -> None:
    whole = {"type": "motion", "name": "yard", "area": 0.0005, "duration": 1.0}
    assert run(camera(whole), night(60, door=set())) == []
    events = run(camera(whole, mask=False), night(60, door=set()))
    assert [e.name for e in events] == ["yard"]


def test_cooldown_and_schedule() -> None:
    # Two bursts 3 s apart: a 10 s cooldown keeps it to one alarm, a 1 s cooldown gives two.
    bursts = set(range(20, 40)) | set(range(70, 90))
    assert len(run(camera({**RULE, "cooldown": 10}), night(100, bursts))) == 1
    assert len(run(camera({**RULE, "cooldown": 1}), night(100, bursts))) == 2
    # T0 is 22:13 UTC: a night schedule 22:00-06:00 is on, a day schedule is off.
    assert len(run(camera({**RULE, "schedule": ["22:00-06:00"]}), night(60, bursts))) == 1
    assert run(camera({**RULE, "schedule": ["08:00-18:00"]}), night(60, bursts)) == []


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"area": 0}, "rules[0].area"),
        ({"area": 1.5}, "rules[0].area"),
        ({"duration": -1}, "rules[0].duration"),
        ({"polygon": [[0, 0], [1, 1]]}, "rules[0].polygon"),
        ({"schedule": ["25:00-06:00"]}, "rules[0].schedule[0]"),
        ({"zone": DOOR}, "rules[0]"),
    ],
)
def test_bad_motion_rule_names_the_key(rule: dict[str, Any], key: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        camera({"type": "motion", **rule})
    assert f"{key}" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["area", "duration", "polygon", "schedule", "cooldown", "name", "x"]),
        st.one_of(
            st.none(),
            st.floats(allow_nan=True),
            st.integers(),
            st.text(max_size=8),
            st.lists(st.lists(st.integers(-5, 500), max_size=3), max_size=5),
        ),
    )
)
def test_any_motion_rule_table_is_accepted_or_a_config_error(rule: dict[str, Any]) -> None:
    with contextlib.suppress(cfg.ConfigError):
        camera({"type": "motion", **rule})


def test_every_rule_type_has_an_alarm_type_on_the_wire() -> None:
    from typing import get_args

    from polewatch.alarmtexts import CAMERA_RULES

    tags = {rule.__struct_config__.tag for rule in get_args(cfg.RuleConfig)}
    assert {"motion", "no_parking"} <= tags
    assert tags <= set(CAMERA_RULES)
