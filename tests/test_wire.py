"""The wire model: MessagePack that any client can read, and strict validation of what comes in."""

from __future__ import annotations

import time

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polewatch import wire


def alarm(**over: object) -> wire.Alarm:
    fields: dict[str, object] = dict(
        id="a-1",
        type="citizen_sos",
        source="button:1234567",
        ts=time.time(),
        lon=114.0579,
        lat=22.5431,
        pole="1234567",
        district="Futian",
        grid="89411c5a6b7ffff",
        text="help",
    )
    fields.update(over)
    return wire.Alarm(**fields)  # type: ignore[arg-type]


MESSAGES = [
    alarm(),
    wire.IncidentEvent(incident="INC-1", event="dispatched", ts=1.5, unit="U1", priority=1),
    wire.Dispatch(
        incident="INC-1",
        unit="U1",
        priority=1,
        type="citizen_sos",
        lon=114.0,
        lat=22.5,
        ts=2.0,
        ack_by=32.0,
        distance_m=412.5,
    ),  # fmt: skip
    wire.DispatchCancel(incident="INC-1", unit="U1", reason="ack timeout", ts=33.0),
    wire.PatrolPosition(unit="U1", lon=114.0, lat=22.5, ts=3.0, speed_mps=8.3, heading=90.0),
    wire.PatrolDuty(unit="U1", duty="on_duty", ts=3.0, grid="g1", capabilities=["medic"]),
    wire.PatrolStatus(unit="U1", incident="INC-1", action="acknowledged", ts=4.0),
    wire.Command(op="close", incident="INC-1", actor="alice", ts=5.0, evaluation=5),
    wire.Heartbeat(source="camera:c1", kind="camera", status="online", ts=6.0, fps=9.8),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_and_plain_msgpack_reads_it(message: wire.Message) -> None:
    data = wire.encode(message)
    assert wire.decode(data) == message
    assert wire.decode(data, type(message)) == message
    plain = msgpack.unpackb(data)  # what a non-Python edge device sees
    assert plain["k"] == type(message).__struct_config__.tag
    assert plain["v"] == wire.VERSION


def test_a_message_written_by_plain_msgpack_is_accepted() -> None:
    data = msgpack.packb(
        {
            "k": "alarm",
            "v": 1,
            "id": "x1",
            "type": "intrusion",
            "source": "camera:c7",
            "ts": 1700000000.25,
            "lon": -94.58,
            "lat": 39.1,
        }  # fmt: skip
    )
    decoded = wire.decode(data)
    assert isinstance(decoded, wire.Alarm)
    assert (decoded.lon, decoded.lat, decoded.source) == (-94.58, 39.1, "camera:c7")


@pytest.mark.parametrize(
    ("careless", "reason"),
    [
        ({"k": "alarm", "v": 1, "id": "x", "type": "t", "source": "s", "ts": 1, "lon": 200,
          "lat": 0}, "$.lon"),
        ({"k": "alarm", "v": 1, "id": "x", "type": "t", "source": "s", "ts": 1, "lon": "114.1",
          "lat": 22.5}, "$.lon"),
        ({"k": "alarm", "v": 1, "id": "x", "type": "t", "source": "s", "lon": 1, "lat": 1},
         "ts"),
        ({"k": "alarm", "v": 2, "id": "x", "type": "t", "source": "s", "ts": 1, "lon": 1,
          "lat": 1}, "$.v"),
        ({"k": "nonsense", "v": 1}, "nonsense"),
        ({"v": 1, "id": "x"}, "k"),
        ({"k": "alarm", "v": 1, "id": "has space", "type": "t", "source": "s", "ts": 1,
          "lon": 1, "lat": 1}, "$.id"),
        ({"k": "alarm", "v": 1, "id": "x", "type": "t", "source": "s", "ts": 1, "lon": 1,
          "lat": 1, "text": "x" * 5000}, "$.text"),
        ([1, 2, 3], "array"),
    ],
)  # fmt: skip
def test_what_a_careless_client_writes_is_rejected_with_the_reason(
    careless: object, reason: str
) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode(msgpack.packb(careless))
    assert reason in err.value.reason


def test_a_message_without_a_version_is_read_as_version_1() -> None:
    data = msgpack.packb(
        {"k": "hb", "source": "door:d1", "kind": "door", "status": "online", "ts": 1.0}
    )
    assert wire.decode(data).v == 1


def test_a_stream_entry_without_the_message_field_is_a_wire_error() -> None:
    with pytest.raises(wire.WireError, match="no 'm' field"):
        wire.decode_entry({b"data": b"x"})
    assert wire.decode_entry(wire.entry(MESSAGES[0])) == MESSAGES[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_no_bytes_crash_the_decoder(data: bytes) -> None:
    try:
        wire.decode(data)
    except wire.WireError as exc:
        assert exc.reason


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["k", "v", "id", "type", "source", "ts", "lon", "lat", "pole", "x"]),
        msgpack_values,
    ),
    st.sampled_from(["alarm", "pos", "dispatch", "status", "cmd", "hb"]),
)
def test_no_structured_garbage_crashes_the_decoder(fields: dict[str, object], kind: str) -> None:
    fields.setdefault("k", kind)
    try:
        wire.decode(msgpack.packb(fields))
    except wire.WireError as exc:
        assert exc.reason
