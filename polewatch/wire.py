"""The wire model: every message that crosses Redis, as typed MessagePack structs.

Each message carries a kind tag ``k`` and a schema version ``v``. Decoding validates types and
ranges while it parses (msgspec), and every failure is raised as :class:`WireError` carrying the
reason, so consumers have exactly one exception to dead-letter.

Versioning: ``v`` is written on every message; a reader rejects versions it does not know, and
a message without ``v`` is read as version 1 (the first), so a breaking change bumps ``v``.

A stream entry holds one message under the field ``m`` (see :func:`entry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec
from msgspec import Meta

VERSION: Final = 1
FIELD: Final = b"m"
"""The one field of a stream entry that holds the encoded message."""

Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Timestamp = Annotated[float, Meta(ge=0.0)]
"""Unix time in seconds (float, microsecond resolution)."""
Ident = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@#/-]+$")]
PoleRef = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[\w.:@#/-]+$")]
"""A pole code, or a name that holds one (``button:가락지하차도-01``): like :data:`Ident` but
with the letters and digits of any script (see :mod:`polewatch.poles.codes`)."""
Text = Annotated[str, Meta(max_length=2000)]
Phone = Annotated[str, Meta(max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")]
Priority = Annotated[int, Meta(ge=1, le=4)]
Version = Literal[1]


class WireError(ValueError):
    """A message could not be decoded or failed validation; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="k"):
    """Base of every wire message."""

    v: Version = VERSION
    """Schema version; decoders reject versions they do not know."""


class Alarm(Message, tag="alarm", frozen=True, kw_only=True):
    """Something happened at a place: a pole button, a camera rule, a door, a citizen."""

    id: Ident
    """Globally unique id chosen by the source; the dispatcher is idempotent on it."""
    type: Ident
    """Alarm type, e.g. ``citizen_sos``, ``intrusion``, ``door_forced``; see the priority table."""
    source: PoleRef
    """Who raised it, e.g. ``button:1234567``, ``camera:cam-3``, ``gateway``."""
    ts: Timestamp
    lon: Lon
    lat: Lat
    pole: PoleRef | None = None
    district: Text | None = None
    grid: Ident | None = None
    text: Text | None = None
    phone: Phone | None = None
    camera: Ident | None = None
    rule: Ident | None = None
    track: int | None = None
    snapshot: Ident | None = None
    """Key suffix of a stored JPEG snapshot (see ``keys.snapshot``)."""
    clip: Ident | None = None
    """Key suffix of the alarm's event clip (H.264 MP4, see ``keys.clip``); a video agent names
    it when the alarm is raised and stores it once the seconds after the event are recorded."""
    extra: dict[str, str | int | float | bool] = {}


IncidentState = Literal[
    "new",
    "dispatched",
    "acknowledged",
    "en_route",
    "on_scene",
    "resolved",
    "closed",
    "escalated",
    "cancelled",
    "merged",
    "report",
    "declined",
    "timeout",
    "released",
    "reassigned",
    "unresponsive",
    "restored",
    "note",
]


RouteSource = Literal["road", "air"]
"""How a dispatch's ``distance_m`` was measured: over the road graph, or in a straight line."""


class IncidentEvent(Message, tag="incident", frozen=True, kw_only=True):
    """One transition of an incident, as appended to the audit stream."""

    incident: Ident
    event: IncidentState
    ts: Timestamp
    unit: Ident | None = None
    alarm: Ident | None = None
    actor: Ident | None = None
    """Who caused it: ``dispatcher``, a unit id, or an operator's login."""
    detail: Text | None = None
    priority: Priority | None = None
    reports: int | None = None
    distance_m: float | None = None
    """Of a dispatch: the unit's distance to the scene, by road or by air (``route``)."""
    eta_s: float | None = None
    """Of a dispatch by drive time: the estimated drive from the unit to the scene."""
    route: RouteSource | None = None


StoredIdent = Annotated[str, Meta(min_length=1, max_length=128)]
"""An :data:`Ident` read back from a stream that only polewatch's own services write: its
length is checked again, its characters not (they were checked when it came in)."""


class StoredIncidentEvent(IncidentEvent, tag="incident", frozen=True, kw_only=True):
    """An :class:`IncidentEvent` as the archiver reads it back from the audit stream, which
    only the dispatcher writes: everything is checked but the ids' patterns, most of the
    decoding time (about 0.3 instead of 1.2 us an event). Decode with ``decode(data,
    StoredIncidentEvent)``; it is an :class:`IncidentEvent` and encodes the same."""

    incident: StoredIdent
    unit: StoredIdent | None = None
    alarm: StoredIdent | None = None
    actor: StoredIdent | None = None


class Dispatch(Message, tag="dispatch", frozen=True, kw_only=True):
    """An incident assigned to a unit, pushed to the unit's own stream."""

    incident: Ident
    unit: Ident
    priority: Priority
    type: Ident
    lon: Lon
    lat: Lat
    ts: Timestamp
    """When the dispatch was written."""
    ack_by: Timestamp
    """The unit must acknowledge before this time or the incident goes to the next unit."""
    alarm_ts: Timestamp | None = None
    pole: PoleRef | None = None
    district: Text | None = None
    grid: Ident | None = None
    text: Text | None = None
    distance_m: float | None = None
    """From the unit to the scene: along the roads when ``route`` is ``road``, else by air."""
    reports: int = 1
    eta_s: float | None = None
    """Estimated drive time to the scene (``route`` ``road`` only); readers show it as
    "2.1 km by road, about 4 min"."""
    route: RouteSource | None = None


class DispatchCancel(Message, tag="cancel", frozen=True, kw_only=True):
    """A dispatch withdrawn from a unit (timeout, reassignment, cancellation)."""

    incident: Ident
    unit: Ident
    reason: Text
    ts: Timestamp


class DispatchNote(Message, tag="note", frozen=True, kw_only=True):
    """What an operator added to an incident while the unit works it (the caller called back,
    the suspect went north...), pushed to each of its units."""

    incident: Ident
    unit: Ident
    text: Text
    actor: Ident
    """The operator's login."""
    ts: Timestamp


UnitDuty = Literal["on_duty", "off_duty"]
UnitAction = Literal["acknowledged", "declined", "en_route", "on_scene", "resolved"]


class PatrolPosition(Message, tag="pos", frozen=True, kw_only=True):
    unit: Ident
    lon: Lon
    lat: Lat
    ts: Timestamp
    speed_mps: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    heading: Annotated[float, Meta(ge=0.0, lt=360.0)] | None = None


class PatrolDuty(Message, tag="duty", frozen=True, kw_only=True):
    """A unit going on or off duty (with its grid and capabilities when going on)."""

    unit: Ident
    duty: UnitDuty
    ts: Timestamp
    grid: Ident | None = None
    capabilities: list[Ident] = []
    lon: Lon | None = None
    lat: Lat | None = None


class PatrolStatus(Message, tag="status", frozen=True, kw_only=True):
    """A unit's answer to a dispatch or its progress on it."""

    unit: Ident
    incident: Ident
    action: UnitAction
    ts: Timestamp
    detail: Text | None = None


CommandOp = Literal[
    "reassign", "add_unit", "cancel", "close", "merge", "split", "restore_unit", "note"
]


class Command(Message, tag="cmd", frozen=True, kw_only=True):
    """A command-centre override, carried out by the dispatcher."""

    op: CommandOp
    incident: Ident
    actor: Ident
    ts: Timestamp
    unit: Ident | None = None
    other: Ident | None = None
    """The second incident of a merge, or the alarm id split out."""
    evaluation: Annotated[int, Meta(ge=1, le=5)] | None = None
    detail: Text | None = None


HeartbeatStatus = Literal["online", "offline", "stalled", "degraded", "stopping"]


class Heartbeat(Message, tag="hb", frozen=True, kw_only=True):
    """A service or device saying it is alive, with a few health figures."""

    source: PoleRef
    kind: Ident
    status: HeartbeatStatus
    ts: Timestamp
    fps: Annotated[float, Meta(ge=0.0)] | None = None
    detail: Text | None = None
    pole: PoleRef | None = None
    config_version: Annotated[int, Meta(ge=0)] | None = None
    """The version of its configuration a video agent's camera runs (``keys.camera_config``)."""


AnyMessage: TypeAlias = (
    Alarm
    | IncidentEvent
    | Dispatch
    | DispatchCancel
    | PatrolPosition
    | PatrolDuty
    | PatrolStatus
    | Command
    | Heartbeat
)
UnitInbox: TypeAlias = Dispatch | DispatchCancel | DispatchNote
PatrolEvent: TypeAlias = PatrolPosition | PatrolDuty | PatrolStatus

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(message: Message) -> bytes:
    """MessagePack bytes of a message (a map with ``k`` and ``v`` first-class fields)."""
    return _encoder.encode(message)


def decode(data: bytes | bytearray | memoryview, kind: Any = AnyMessage) -> Any:
    """Decode and validate ``data`` as ``kind`` (a message class or a union of them).

    Raises :class:`WireError` with the reason for anything that is not a valid message.
    """
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"undecodable MessagePack: {exc}") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise WireError(f"undecodable message: {exc}") from None


def entry(message: Message) -> dict[bytes, bytes]:
    """The fields of a stream entry carrying ``message``."""
    return {FIELD: _encoder.encode(message)}


def decode_entry(fields: Mapping[Any, Any], kind: Any = AnyMessage) -> Any:
    """Decode the message of a stream entry; a missing field is a :class:`WireError` too."""
    data = fields.get(FIELD)
    if data is None:
        raise WireError(f"stream entry has no {FIELD.decode()!r} field")
    return decode(data, kind)


def to_builtins(message: Message) -> dict[str, Any]:
    """A JSON-ready dict of a message (``k`` included)."""
    out: dict[str, Any] = msgspec.to_builtins(message)
    return out
