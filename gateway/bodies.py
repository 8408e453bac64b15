"""Request bodies: msgspec structs that validate JSON while decoding.

These structs are also the OpenAPI request schemas (see :mod:`gateway.openapi`), so the
document and the validation cannot drift apart. Every rejection is an :class:`HttpError`:
400 for bytes that are not JSON, 422 for JSON of the wrong shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.errors import HttpError
from polewatch import geo, wire

PoleCode = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^ *[^\W_](?: *[\w.:@#/-]){0,31} *$",
        description="The code on the pole as read: letters and digits of any script and "
        "_ . : @ # / - (case, width and spaces are ignored)",
    ),
]
"""What the resolver (:func:`polewatch.poles.codes.normalize`) takes, narrowed to the characters
a registered code may hold (:data:`polewatch.poles.codes.PRINTABLE_CODE`): 1-32 of them,
starting with a letter or digit (``[^\\W_]``: ``str.isalnum``), spaces anywhere. Doors that
take a code check it with this type, so the schema refuses what they refuse."""
Reason = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"\S")]
"""Why an operator did something: some text, not only spaces (it is kept in the timeline)."""


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error (a typo is not silently dropped)."""


def _check_position(lon: float | None, lat: float | None, *, required: bool = False) -> None:
    if (lon is None) != (lat is None) or (required and lon is None):
        raise ValueError("give both lon and lat")
    if lon is not None and lat is not None and not geo.plausible(lon, lat):
        raise ValueError(f"impossible position lon={lon} lat={lat}")


class PoleReport(Body, frozen=True):
    """Someone reporting trouble at a pole."""

    pole: PoleCode
    text: wire.Text | None = None
    phone: wire.Phone | None = None
    lon: wire.Lon | None = None
    """The caller's rough position, used to rank candidates when the code is unknown."""
    lat: wire.Lat | None = None

    def __post_init__(self) -> None:
        _check_position(self.lon, self.lat)

    @property
    def near(self) -> tuple[float, float] | None:
        return None if self.lon is None or self.lat is None else (self.lon, self.lat)


CitizenType = Literal["citizen_sos", "call"]
"""What the citizen door may raise: help now (P1), or a call back (P2). Every other type
(cameras, doors, devices) comes from its own agent or a call-taker, never from the public.
Priority is the system's (the dispatcher's type table): a body naming one is refused."""


class CitizenAlarm(PoleReport, kw_only=True, frozen=True):
    """A citizen asking for help at a pole (the QR page or an app); ``lon``/``lat``: the
    phone's position when the citizen allows it (an alarm far from its pole is flagged)."""

    type: CitizenType = "citizen_sos"


class OperatorIncident(PoleReport, kw_only=True, frozen=True):
    """A call-taker raising an incident for the caller's pole."""

    type: wire.Ident


class Position(Body, frozen=True):
    lon: wire.Lon
    lat: wire.Lat
    speed_mps: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    heading: Annotated[float, Meta(ge=0.0, lt=360.0)] | None = None

    def __post_init__(self) -> None:
        _check_position(self.lon, self.lat, required=True)


class Duty(Body, frozen=True):
    duty: wire.UnitDuty
    grid: wire.Ident | None = None
    capabilities: Annotated[list[wire.Ident], Meta(max_length=32)] = []
    lon: wire.Lon | None = None
    lat: wire.Lat | None = None

    def __post_init__(self) -> None:
        _check_position(self.lon, self.lat)


class StatusUpdate(Body, frozen=True):
    """A unit's answer to a dispatch (acknowledged, declined) or its progress on it."""

    action: wire.UnitAction
    detail: wire.Text | None = None


class Reassign(Body, frozen=True):
    """Send the incident to ``unit``, or (no unit) to the next nearest free one."""

    unit: wire.Ident | None = None


class AddUnit(Body, frozen=True):
    unit: wire.Ident | None = None


class Restore(Body, frozen=True):
    """Return an unresponsive unit to the rotation (``reason``: e.g. "reached by radio")."""

    reason: wire.Text | None = None


class Cancel(Body, frozen=True):
    reason: Reason


class Note(Body, frozen=True):
    """What the operator adds to the incident (the caller called back, what the camera shows
    now): kept in its timeline, sent to the phones of the units on it."""

    text: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"\S")]


class Close(Body, frozen=True):
    evaluation: Annotated[int, Meta(ge=1, le=5)]
    detail: wire.Text | None = None


class Merge(Body, frozen=True):
    """Merge incident ``other`` into this one."""

    other: wire.Ident


class Split(Body, frozen=True):
    """Split ``alarm`` out of this incident into a new one."""

    alarm: wire.Ident


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode(data: bytes, kind: Any) -> Any:
    """Decode a request body as ``kind``; :class:`HttpError` 400/422 with the reason."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    if not data.strip():
        raise HttpError(400, "request body is empty; expected a JSON object")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise HttpError(422, f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None
