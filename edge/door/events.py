"""Door-controller events as they arrive (JSON), decoded and validated in one step.

See :mod:`edge.door` (and ``docs/door-events.md``) for the format. :func:`decode` is the only
entry point; every rejection is a :class:`DoorEventError` carrying the reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from polewatch.wire import Ident, Timestamp

EventName = Literal[
    "door_opened",
    "door_closed",
    "card_granted",
    "card_denied",
    "exit_request",
    "forced_open",
    "held_open",
    "tamper",
    "anti_passback",
    "heartbeat",
    "person_crossed",
]
Direction = Literal["in", "out"]

ZKTECO_CODES: Final[dict[int, EventName]] = {
    0: "card_granted",  # normal punch open
    1: "card_granted",  # punch during normal-open time zone
    20: "card_denied",  # too short punch interval
    22: "card_denied",  # illegal time zone
    23: "card_denied",  # access denied
    24: "anti_passback",
    27: "card_denied",  # unregistered card
    28: "held_open",  # opening timeout
    29: "card_denied",  # card expired
    30: "card_denied",  # password error
    100: "tamper",
    102: "forced_open",  # door opened unexpectedly
    200: "door_opened",  # opened correctly
    201: "door_closed",
    202: "exit_request",  # exit button
}
"""ZKTeco access-controller event types (C3/inBIO "PULL SDK" numbering) accepted in ``code``."""

BACNET_DOOR_ALARM: Final[dict[str, EventName]] = {
    "forced-open": "forced_open",
    "door-open-too-long": "held_open",
    "tamper": "tamper",
}
"""BACnet Access Door ``door-alarm-state`` values accepted in ``bacnet``."""

MAX_LINE: Final = 64 * 1024
"""Longest TCP line accepted."""
MAX_BODY: Final = 1024 * 1024
"""Largest webhook body accepted."""


class DoorEventError(ValueError):
    """An event could not be decoded or is invalid; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RawEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    controller: Ident
    door: Ident | None = None
    event: EventName | None = None
    code: Annotated[int, Meta(ge=0, le=65535)] | None = None
    bacnet: str | None = None
    ts: Timestamp | None = None
    reader: Ident | None = None
    card: Annotated[str, Meta(max_length=64)] | None = None
    direction: Direction | None = None
    seq: Annotated[int, Meta(ge=0)] | None = None


class DoorEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One validated event: ``event`` is always set, ``door`` for every event but heartbeat."""

    controller: str
    event: EventName
    ts: float | None
    """Controller time; ``None`` when it sent none (the agent then uses its own clock)."""
    door: str | None = None
    reader: str | None = None
    card: str | None = None
    direction: Direction | None = None
    seq: int | None = None


_json_one = msgspec.json.Decoder(RawEvent)
_json_many = msgspec.json.Decoder(RawEvent | list[RawEvent])


def _normal(raw: RawEvent) -> DoorEvent:
    names = [
        n
        for n in (
            raw.event,
            None if raw.code is None else ZKTECO_CODES.get(raw.code, "?"),
            None if raw.bacnet is None else BACNET_DOOR_ALARM.get(raw.bacnet, "?"),
        )
        if n is not None
    ]
    if not names:
        raise DoorEventError("an event needs one of 'event', 'code' or 'bacnet'")
    if "?" in names:
        what = f"code {raw.code}" if raw.code is not None else f"bacnet {raw.bacnet!r}"
        raise DoorEventError(f"unknown {what}")
    if len(set(names)) > 1:
        raise DoorEventError(f"'event', 'code' and 'bacnet' disagree: {sorted(set(names))}")
    event: EventName = names[0]  # type: ignore[assignment]
    if event != "heartbeat" and raw.door is None:
        raise DoorEventError(f"a {event} event needs 'door'")
    if event == "person_crossed" and raw.direction is None:
        raise DoorEventError("a person_crossed event needs 'direction' ('in' or 'out')")
    return DoorEvent(
        controller=raw.controller,
        event=event,
        ts=raw.ts,
        door=raw.door,
        reader=raw.reader,
        card=raw.card,
        direction=raw.direction,
        seq=raw.seq,
    )


def decode(data: bytes | str) -> DoorEvent:
    """One event from a JSON object (a TCP line)."""
    return _normal(_decode(_json_one, data))


def decode_many(data: bytes | str) -> list[DoorEvent]:
    """Events from a JSON object or array (a webhook body); all valid or DoorEventError."""
    found = _decode(_json_many, data, MAX_BODY)
    batch = found if isinstance(found, list) else [found]
    out = []
    for i, raw in enumerate(batch):
        try:
            out.append(_normal(raw))
        except DoorEventError as exc:
            raise DoorEventError(f"event {i}: {exc.reason}") from None
    return out


def _decode(decoder: Any, data: bytes | str, limit: int = MAX_LINE) -> Any:
    if len(data) > limit:
        raise DoorEventError(f"longer than {limit} bytes")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise DoorEventError(f"invalid event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DoorEventError(f"not JSON: {exc}") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise DoorEventError(f"undecodable event: {exc}") from None
