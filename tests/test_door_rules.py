"""Door rules, scenario by scenario, on an injected clock: each scenario's exact alarms."""

from __future__ import annotations

from typing import Any

import pytest

from edge.door.config import Controller, Door
from edge.door.events import DoorEvent
from edge.door.rules import DoorRules
from polewatch import wire

T0 = 1_700_000_000.0


def door(**kw: Any) -> Door:
    base: dict[str, Any] = {
        "id": "D1",
        "controller": "C1",
        "pole": "1234567",
        "lon": 114.05,
        "lat": 22.54,
        "district": "Futian",
        "grid": "G-7",
        "cooldown_s": 60.0,
    }
    base.update(kw)
    return Door(**base)


def rules(**kw: Any) -> DoorRules:
    return DoorRules([door(**kw)], {"C1": Controller(id="C1", offline_s=60)}, start=T0)


def ev(event: str, dt: float, **kw: Any) -> DoorEvent:
    base: dict[str, Any] = {"controller": "C1", "door": "D1", "event": event, "ts": T0 + dt}
    base.update(kw)
    return DoorEvent(**base)


def play(r: DoorRules, script: list[DoorEvent | float]) -> list[tuple[str, float]]:
    """Feed events (received at their own ts) and ticks (a float: seconds after T0)."""
    out: list[wire.Alarm] = []
    for step in script:
        if isinstance(step, DoorEvent):
            assert step.ts is not None
            out += r.event(step, step.ts)
        else:
            out += r.tick(T0 + step)
    for alarm in out:  # every alarm is valid on the wire and placed at the door
        assert wire.decode(wire.encode(alarm), wire.Alarm) == alarm
        assert (alarm.lon, alarm.lat, alarm.pole, alarm.grid) == (114.05, 22.54, "1234567", "G-7")
    return [(a.type, round(a.ts - T0, 3)) for a in out]


def test_normal_entry_raises_nothing():
    script = [
        ev("card_granted", 0, card="42", direction="in"),
        ev("door_opened", 1),
        ev("person_crossed", 2, direction="in"),
        ev("door_closed", 4),
        10.0,
        50.0,
    ]
    assert play(rules(), script) == []


def test_forced_open_reported_or_inferred():
    assert play(rules(), [ev("forced_open", 5)]) == [("door_forced", 5)]
    assert play(rules(), [ev("door_opened", 5)]) == [("door_forced", 5)]
    assert play(rules(infer_forced=False), [ev("door_opened", 5)]) == []
    # the exit button authorises the opening; a grant expires after unlock_s
    assert play(rules(), [ev("exit_request", 0), ev("door_opened", 3)]) == []
    assert play(rules(), [ev("card_granted", 0), ev("door_opened", 9)]) == [("door_forced", 9)]


def test_held_open_too_long_once_per_opening():
    r = rules(held_open_s=30)
    script = [ev("card_granted", 0), ev("door_opened", 1), 30.0, 31.0, 45.0]
    assert play(r, script) == [("door_held", 31)]
    # closing and a new long opening after the cooldown raise it again
    again = [ev("door_closed", 50), ev("card_granted", 100), ev("door_opened", 100), 131.0]
    assert play(r, again) == [("door_held", 131)]


def test_invalid_card_burst_at_one_reader():
    r = rules(denied_burst=3, denied_window_s=30)
    spread = [ev("card_denied", t, reader="R1") for t in (0, 20, 40)]  # never 3 within 30 s
    assert play(r, spread) == []
    burst = [ev("card_denied", 50 + t, reader="R2") for t in (0, 1, 2)]
    assert play(r, burst) == [("invalid_card_burst", 52)]
    # another burst inside the cooldown is suppressed and counted
    assert play(r, [ev("card_denied", 60 + t, reader="R2") for t in (0, 1, 2)]) == []
    assert r.suppressed == 1


def test_anti_passback_reported_or_inferred():
    assert play(rules(), [ev("anti_passback", 3, card="7")]) == [("anti_passback", 3)]
    r = rules()
    script = [ev("card_granted", 0, card="7", direction="in"),
              ev("card_granted", 60, card="7", direction="out"),
              ev("card_granted", 120, card="7", direction="in"),
              ev("card_granted", 130, card="9", direction="in"),
              ev("card_granted", 200, card="7", direction="in")]  # fmt: skip
    assert play(r, script) == [("anti_passback", 200)]
    assert play(rules(anti_passback=False), script) == []


@pytest.mark.parametrize(
    ("crossings", "expected"),
    [
        ([2.0], []),  # one card, one person
        ([2.0, 2.5], [("tailgating", 7.0)]),  # one card, two people
        ([2.0, 6.5], [("tailgating", 7.0)]),  # the second one reported late, within grace
        ([2.0, 9.0], []),  # after the grace: not this opening's
    ],
)
def test_tailgating_counts_people_against_cards(crossings, expected):
    r = rules(crossing_grace_s=3)
    script: list[DoorEvent | float] = [ev("card_granted", 0, card="1"), ev("door_opened", 1)]
    script += [ev("person_crossed", t, direction="in") for t in crossings if t < 4]
    script.append(ev("door_closed", 4))
    script += [ev("person_crossed", t, direction="in") for t in crossings if t >= 4]
    script += [6.9, 7.0, 8.0]
    assert play(r, script) == expected


def test_tailgating_crossings_from_the_video_agent_call():
    r = rules()
    play(r, [ev("card_granted", 0), ev("card_granted", 0.5), ev("door_opened", 1)])
    for t in (1.5, 2.0, 2.5):
        r.person_crossed("D1", T0 + t, "in")
    r.person_crossed("D1", T0 + 2.2, "out")  # leaving does not count
    alarms = r.event(ev("door_closed", 4), T0 + 4) + r.tick(T0 + 10)
    assert [(a.type, a.extra["people"], a.extra["cards"]) for a in alarms] == [("tailgating", 3, 2)]


def test_tamper():
    assert play(rules(), [ev("tamper", 1)]) == [("door_tamper", 1)]


def test_controller_offline_once_until_seen_again():
    r = rules(cooldown_s=0)
    script = [ev("heartbeat", 10, door=None), 69.0, 70.0, 71.0, 120.0]
    assert play(r, script) == [("controller_offline", 70)]
    # back (any event counts) and silent again
    assert play(r, [ev("heartbeat", 130, door=None), 189.0, 190.0]) == [("controller_offline", 190)]


def test_unknown_doors_and_controllers_are_counted_not_alarmed():
    r = rules()
    assert play(r, [ev("forced_open", 1, door="D9"), ev("forced_open", 1, controller="X")]) == []
    assert r.unknown == 2
