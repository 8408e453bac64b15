"""Intake: turn stream entries into the ``pw_batch`` arguments, or into dead letters.

Everything that can be checked without state is checked here (the wire schema, plausible
coordinates, what each command needs), so the Redis functions only see well-formed messages,
re-encoded canonically. Entries of the three streams are put back into arrival order (stream
ids are times) so a unit's duty change and an alarm right after it are seen in that order.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from dispatcher.library import ALARM, COMMAND, DIGEST, PATROL, alarm_triples, digest
from polewatch import geo, wire

# A zone's streams are ``<zone prefix>:<role>``; the role says what an entry holds.
_KINDS: Final[dict[str, Any]] = {
    "alarms": wire.Alarm,
    "patrol-events": wire.PatrolEvent,
    "commands": wire.Command,
}
_CODES: Final = {"alarms": ALARM, "patrol-events": PATROL, "commands": COMMAND}


def role(stream: str) -> str:
    """``alarms``, ``patrol-events`` or ``commands``: which of a zone's streams this is."""
    return stream.rpartition(":")[2]


class Entry(NamedTuple):
    stream: str
    id: bytes
    fields: dict[bytes, bytes]

    @property
    def is_alarm(self) -> bool:
        return role(self.stream) == "alarms"


class Rejected(NamedTuple):
    entry: Entry
    reason: str


def flatten(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP / XAUTOCLAIM reply, oldest first across streams."""
    out: list[Entry] = []
    if isinstance(reply, dict):  # RESP3 shape
        reply = list(reply.items())
    for stream, items in reply or ():
        name = stream.decode() if isinstance(stream, bytes) else stream
        for entry_id, fields in items:
            if fields is None:  # deleted while pending
                continue
            out.append(Entry(name, entry_id, fields))
    out.sort(key=_order)
    return out


# Within one millisecond the order across streams is unknown; units' news goes first so an
# alarm sees the unit that came on duty "at the same time".
_RANK: Final = {"patrol-events": 0, "commands": 1, "alarms": 2}


def _order(entry: Entry) -> tuple[int, int, int]:
    ms, _, seq = entry.id.partition(b"-")
    return int(ms), _RANK[role(entry.stream)], int(seq or 0)


class Checked(NamedTuple):
    """A batch's entries checked (:func:`checked`)."""

    good: list[tuple[Entry, bytes]]
    """The good entries with their canonical messages."""
    bad: list[Rejected]
    args: list[bytes]
    """The ``pw_batch`` triples of the good ones (as :func:`arguments` makes them)."""
    places: list[tuple[float, float]]
    """Each alarm's ``(lon, lat)``, in order."""


def check(stream: str, fields: dict[bytes, bytes]) -> bytes:
    """The canonical encoding of a valid entry's message; :class:`wire.WireError` otherwise."""
    return wire.encode(_message(stream, fields))


def _message(stream: str, fields: dict[bytes, bytes]) -> wire.Message:
    message: wire.Message = wire.decode_entry(fields, _KINDS[role(stream)])
    if isinstance(message, wire.Alarm | wire.PatrolPosition):
        _place(message.lon, message.lat)
    elif isinstance(message, wire.PatrolDuty):
        if (message.lon is None) != (message.lat is None):
            raise wire.WireError("a duty position needs both lon and lat")
        if message.lon is not None and message.lat is not None:
            _place(message.lon, message.lat)
    elif isinstance(message, wire.Command):
        if message.op == "close" and message.evaluation is None:
            raise wire.WireError("close needs an evaluation (1-5)")
        if message.op == "restore_unit" and not message.unit:
            raise wire.WireError("restore_unit needs 'unit'")
        if message.op in ("merge", "split") and not message.other:
            raise wire.WireError(f"{message.op} needs 'other'")
    return message


def _place(lon: float, lat: float) -> None:
    if not geo.plausible(lon, lat):
        raise wire.WireError(f"impossible coordinates lon={lon} lat={lat}")


def checked(entries: list[Entry]) -> Checked:
    """The good entries with their canonical messages (:func:`check`), the rejected ones, and
    the good ones' :func:`arguments`, in one pass, each message decoded once (its
    digest and place are taken from the checked message, not decoded again)."""
    out = Checked([], [], [], [])
    for entry in entries:
        try:
            message = _message(entry.stream, entry.fields)
        except wire.WireError as exc:
            out.bad.append(Rejected(entry, exc.reason))
            continue
        payload = wire.encode(message)
        out.good.append((entry, payload))
        code = _CODES[role(entry.stream)]
        out.args.extend((code, entry.id, payload))
        if isinstance(message, wire.Alarm):
            out.places.append((message.lon, message.lat))
            if (flat := digest(message)) is not None:
                out.args.extend((DIGEST, b"", flat))
    return out


def arguments(good: list[tuple[Entry, bytes]]) -> list[bytes]:
    """The ``pw_batch`` entry triples of validated entries (an alarm's digest after it)."""
    args: list[bytes] = []
    for entry, payload in good:
        code = _CODES[role(entry.stream)]
        if code == ALARM:
            args += alarm_triples(payload, entry.id)
        else:
            args += (code, entry.id, payload)
    return args
