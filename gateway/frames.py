"""The patrol WebSocket protocol: JSON text frames, both ways.

Server to unit::

    {"type": "hello", "unit": "U1", "last": "<id the push starts after>"}
    {"type": "inbox", "id": "<stream id>", "message": {"k": "dispatch", ...wire fields...}}
    {"type": "ok", "ref": <the frame's ref or null>, "entry": "<patrol-events id>"}
    {"type": "error", "ref": <ref or null>, "error": "<why>"}
    {"type": "refused", "entry": "<patrol-events id an ok gave>", "incident": "I1",
     "action": "declined", "error": "<the dispatcher's reason>", "error_key": "reject.…",
     "error_args": {...}}

A ``refused`` frame says that the dispatcher did not take an answer the gateway had already
answered ``ok`` (:mod:`gateway.refusals`); ``error_key``/``error_args`` name the reason's
catalogue entry when it is one of the dispatcher's forms. It is sent again when the unit
reconnects within ten minutes, so a client acts only on answers it still holds as pending.

``inbox`` frames carry the unit's inbox entries (:class:`wire.Dispatch`, ``k: "dispatch"``;
:class:`wire.DispatchCancel`, ``k: "cancel"``) in stream order; a client remembers the last
``id`` and reconnects with ``?last=<id>`` to get exactly what it has not seen.

Unit to server (``ref`` is optional and echoed back)::

    {"type": "ack", "incident": "I1"}
    {"type": "decline", "incident": "I1", "detail": "flat tyre"}
    {"type": "status", "incident": "I1", "action": "en_route" | "on_scene" | "resolved" | ...}
    {"type": "position", "lon": 114.05, "lat": 22.54, "speed_mps": 8.0, "heading": 90}
    {"type": "duty", "duty": "on_duty" | "off_duty", "grid": "G1", "capabilities": ["car"],
     "lon": 114.05, "lat": 22.54}

In a deployment with dispatch zones a unit seen for the first time belongs to no zone until a
``position`` or ``duty`` frame with ``lon``/``lat`` places it; before that every other frame is
answered with an ``error`` ("report a position first"), and its inbox is pushed from then on.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway import bodies
from gateway.errors import HttpError
from polewatch import alarmtexts, details, wire


class FrameError(ValueError):
    """A unit's frame is not valid JSON or not a known frame; the message says why."""


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """A unit's answer on an incident, whichever door it came through."""

    incident: wire.Ident
    action: wire.UnitAction
    detail: wire.Text | None = None


class Frame(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
            tag_field="type"):  # fmt: skip
    ref: Any = None
    """Anything the client wants echoed back in the reply (a counter, a uuid)."""

    def item(self) -> bodies.Position | bodies.Duty | Action:
        raise NotImplementedError


class Ack(Frame, tag="ack", frozen=True):
    incident: wire.Ident
    detail: wire.Text | None = None

    def item(self) -> Action:
        return Action(incident=self.incident, action="acknowledged", detail=self.detail)


class Decline(Frame, tag="decline", frozen=True):
    incident: wire.Ident
    detail: wire.Text | None = None

    def item(self) -> Action:
        return Action(incident=self.incident, action="declined", detail=self.detail)


class Status(Frame, tag="status", frozen=True):
    incident: wire.Ident
    action: wire.UnitAction
    detail: wire.Text | None = None

    def item(self) -> Action:
        return Action(incident=self.incident, action=self.action, detail=self.detail)


class PositionFrame(bodies.Position, tag_field="type", tag="position", frozen=True):
    ref: Any = None

    def item(self) -> bodies.Position:
        return bodies.Position(
            lon=self.lon, lat=self.lat, speed_mps=self.speed_mps, heading=self.heading
        )


class DutyFrame(bodies.Duty, tag_field="type", tag="duty", frozen=True):
    ref: Any = None

    def item(self) -> bodies.Duty:
        return bodies.Duty(
            duty=self.duty, grid=self.grid, capabilities=self.capabilities,
            lon=self.lon, lat=self.lat,
        )  # fmt: skip


AnyFrame = Ack | Decline | Status | PositionFrame | DutyFrame
_encoder = msgspec.json.Encoder()


def decode(data: str | bytes) -> AnyFrame:
    """A unit's frame; :class:`FrameError` for anything else."""
    try:
        frame: AnyFrame = bodies.decode(data.encode() if isinstance(data, str) else data, AnyFrame)
        return frame
    except HttpError as exc:
        raise FrameError(exc.message.replace("request body", "frame")) from None


def encode_hello(unit: str, last: str) -> str:
    return _encoder.encode({"type": "hello", "unit": unit, "last": last}).decode()


def encode_inbox(entry_id: str, fields: dict[bytes, bytes]) -> str:
    """An inbox entry as a frame; an entry that does not decode is sent with its error."""
    try:
        decoded = wire.decode_entry(fields, wire.UnitInbox)
        message: Any = wire.to_builtins(decoded)
        if isinstance(decoded, wire.DispatchCancel):  # why it was withdrawn, in its language
            details.label(message, "reason")
        elif isinstance(decoded, wire.Dispatch):  # what the camera or door said, likewise
            alarmtexts.label(message)
    except wire.WireError as exc:
        message = {"k": "invalid", "error": exc.reason}
    return _encoder.encode({"type": "inbox", "id": entry_id, "message": message}).decode()


def encode_ok(ref: Any, entry: str) -> str:
    return _encoder.encode({"type": "ok", "ref": ref, "entry": entry}).decode()


def encode_refused(entry: str, incident: str, action: str, error: str) -> str:
    """The dispatcher refused the answer written as ``entry``; why, with its catalogue key."""
    view = {"type": "refused", "entry": entry, "incident": incident, "action": action,
            "error": error}  # fmt: skip
    return _encoder.encode(details.label(view, "error")).decode()


def encode_error(error: str, ref: Any) -> str:
    return _encoder.encode({"type": "error", "ref": ref, "error": error}).decode()
