"""The door event decoder: the documented format, the reference codes, clear rejections,
and no input that can crash it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.door.events import MAX_LINE, DoorEventError, decode, decode_many


def test_a_full_event():
    ev = decode(
        b'{"controller": "ctl-7", "door": "D-0042", "event": "card_granted", "ts": 1732550000.25,'
        b' "reader": "R1", "card": "0012345678", "direction": "in", "seq": 991}'
    )
    assert (ev.controller, ev.door, ev.event, ev.ts) == (
        "ctl-7",
        "D-0042",
        "card_granted",
        1732550000.25,
    )
    assert (ev.reader, ev.card, ev.direction, ev.seq) == ("R1", "0012345678", "in", 991)


@pytest.mark.parametrize(
    ("fields", "event"),
    [
        ({"code": 102}, "forced_open"),
        ({"code": 28}, "held_open"),
        ({"code": 27}, "card_denied"),
        ({"code": 24}, "anti_passback"),
        ({"bacnet": "door-open-too-long"}, "held_open"),
        ({"bacnet": "forced-open", "event": "forced_open", "code": 102}, "forced_open"),
    ],
)
def test_reference_codes(fields, event):
    assert decode(json.dumps({"controller": "c", "door": "d", **fields})).event == event


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"controller": "c", "door": "d"}', "needs one of"),
        (b'{"controller": "c", "door": "d", "code": 9999}', "unknown code 9999"),
        (b'{"controller": "c", "door": "d", "bacnet": "x"}', "unknown bacnet"),
        (b'{"controller": "c", "door": "d", "event": "tamper", "code": 102}', "disagree"),
        (b'{"controller": "c", "event": "tamper"}', "needs 'door'"),
        (b'{"controller": "c", "door": "d", "event": "person_crossed"}', "needs 'direction'"),
        (b'{"controller": "c", "door": "d", "event": "boom"}', "invalid event"),
        (b'{"controller": "c", "door": "d", "event": "tamper", "colour": 1}', "colour"),
        (b'{"controller": "c", "door": "d", "event": "tamper", "ts": -1}', "ts"),
        (b'{"controller": "c d", "door": "d", "event": "tamper"}', "controller"),
        (b"[]", "invalid event"),
        (b" " * (MAX_LINE + 1), "longer than"),
    ],
)
def test_rejections_say_why(body, reason):
    with pytest.raises(DoorEventError) as err:
        decode(body)
    assert reason in err.value.reason


def test_a_webhook_batch_is_all_or_nothing():
    good = {"controller": "c", "door": "d", "event": "tamper"}
    assert len(decode_many(json.dumps([good, good]))) == 2
    assert len(decode_many(json.dumps(good))) == 1
    with pytest.raises(DoorEventError, match="event 1: needs one of|event 1: an event needs"):
        decode_many(json.dumps([good, {"controller": "c", "door": "d"}]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "controller": st.sampled_from(["c1", "", "c 1"]) | st.text(max_size=5),
        "door": st.sampled_from(["D1", None]) | st.text(max_size=5),
        "event": st.sampled_from(["tamper", "heartbeat", "person_crossed", "x"]),
        "code": st.integers(-5, 300),
        "bacnet": st.sampled_from(["tamper", "forced-open", "?"]),
        "ts": st.floats(allow_nan=True) | st.integers(),
        "direction": st.sampled_from(["in", "out", "up"]),
        "card": json_values,
    },
)


@given(
    st.binary(max_size=200) | json_values.map(json.dumps).map(str.encode) | fields.map(json.dumps)
)
def test_no_input_crashes_the_decoder(data):
    for fn in (decode, decode_many):
        try:
            out = fn(data)
        except DoorEventError as exc:
            assert exc.reason
        else:
            for ev in out if isinstance(out, list) else [out]:
                assert ev.controller and ev.event
                assert ev.door is not None or ev.event == "heartbeat"
