"""Raising alarms at a pole: resolve the code, build the :class:`wire.Alarm`, queue the XADD.

Shared by the citizen door (``POST /api/alarms``, the QR page) and the call-taker's
``POST /api/incidents``. Alarm ids carry a short signature so ``GET /api/alarms/{id}`` can say
"received" for an alarm the dispatcher has not picked up yet and 404 for an id never issued.
With dispatch zones an alarm goes to the stream of the zone its pole lies in, and its id starts
with that zone's name (``<zone>:<uuid>-<signature>``), so its status is looked up there.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
import uuid
from typing import Any, Literal

from gateway.errors import HttpError
from gateway.state import Gateway
from gateway.writer import Overloaded
from polewatch import keys, wire
from polewatch.geo import haversine_m
from polewatch.poles.codes import CodeError
from polewatch.poles.index import FAR_M, PoleIndex
from polewatch.poles.model import Candidate, Pole
from polewatch.zones import ZoneMap

CANDIDATES = 10
RETRY_S = 1
"""What a refused alarm (the write queue is full) tells the client to wait, in seconds."""


def new_alarm_id(secret: str, zone: str = "") -> str:
    """A fresh alarm id: a random UUID (after ``<zone>:`` for a named zone) and its
    12-hex-digit signature."""
    head = uuid.uuid4().hex
    if zone:
        head = f"{zone}:{head}"
    return f"{head}-{_sign(secret, head)}"


def issued_here(secret: str, alarm_id: str) -> bool:
    """Whether ``alarm_id`` was made by :func:`new_alarm_id` with this secret."""
    head, _, sig = alarm_id.rpartition("-")
    raw = head.rpartition(":")[2]
    return len(raw) == 32 and sig.isascii() and hmac.compare_digest(sig, _sign(secret, head))


def home_zone(secret: str, zones: ZoneMap, alarm_id: str) -> str | None:
    """The zone an alarm issued here was appended to; ``None`` when the id does not say (an
    edge agent's alarm, or a forged one)."""
    if not zones.zoned:
        return ""
    zone, sep, _ = alarm_id.partition(":")
    if sep and zone in zones.names and issued_here(secret, alarm_id):
        return zone
    return None


def _sign(secret: str, raw: str) -> str:
    # keyed BLAKE2 is a MAC by design, and one call instead of HMAC's two hashes
    return hashlib.blake2s(raw.encode(), key=_key(secret), digest_size=6).hexdigest()


@functools.lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.blake2s(secret.encode()).digest()


def candidate_view(candidate: Candidate) -> dict[str, Any]:
    """A candidate as shown to a caller: the pole's place and how the code differs."""
    return {
        **pole_view(candidate.pole),
        "mistake": candidate.mistake,
        "score": candidate.score,
        "distance_m": None if candidate.distance_m is None else round(candidate.distance_m, 1),
    }


def pole_view(pole: Pole) -> dict[str, Any]:
    return {
        "code": pole.code,
        "lon": pole.lon,
        "lat": pole.lat,
        "road": pole.road,
        "district": pole.district,
        "grid": pole.grid,
        "side": pole.side,
    }


def find_pole(index: PoleIndex, code: str, near: tuple[float, float] | None = None) -> Pole:
    """The pole ``code`` names; 404 with ranked candidates when none does, 422 for non-codes."""
    pole = index.get(code)
    if pole is not None:
        return pole
    try:
        resolution = index.resolve(code, near=near, limit=CANDIDATES)
    except CodeError as exc:
        raise HttpError(422, f"not a pole code: {exc}") from None
    if resolution.pole is not None:
        return resolution.pole
    raise HttpError(
        404,
        f"unknown pole code {code!r}",
        query=code,
        candidates=[candidate_view(c) for c in resolution.candidates],
    )


def caller_extra(
    pole: Pole, caller: tuple[float, float] | None
) -> dict[str, str | int | float | bool]:
    """What an alarm carries about the reporter's own position: where they were, how far from
    the pole, and ``caller_far_m`` when farther than :data:`~polewatch.poles.index.FAR_M`
    (the dispatcher copies that onto the incident; the console shows it loudly)."""
    if caller is None:
        return {}
    distance = round(haversine_m(caller[0], caller[1], pole.lon, pole.lat), 1)
    extra: dict[str, str | int | float | bool] = {
        "caller_lon": caller[0], "caller_lat": caller[1], "caller_distance_m": distance,
    }  # fmt: skip
    if distance > FAR_M:
        extra["caller_far_m"] = distance
    return extra


def status_url(gw: Gateway, alarm_id: str) -> str:
    return f"{gw.settings.public_url.rstrip('/')}/api/alarms/{alarm_id}"


async def raise_alarm(
    gw: Gateway,
    *,
    pole: Pole,
    type: str,
    source: str,
    channel: Literal["citizen", "operator"],
    text: str | None = None,
    phone: str | None = None,
    caller: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Write an alarm at ``pole`` to its zone's alarm stream; the 202 body once Redis has
    it."""
    zone = keys.zone(gw.zones.locate(pole.lon, pole.lat))
    alarm_id = new_alarm_id(gw.settings.secret, zone.name)
    extra = caller_extra(pole, caller)
    alarm = wire.Alarm(
        id=alarm_id,
        type=type,
        source=source,
        ts=time.time(),
        lon=pole.lon,
        lat=pole.lat,
        pole=pole.code,
        district=pole.district,
        grid=pole.grid,
        text=text,
        phone=phone,
        extra=extra,
    )
    try:
        entry_id = await gw.need_writer().add(zone.alarms, wire.entry(alarm))
    except Overloaded as exc:
        raise HttpError(
            503,
            f"alarm not accepted: {exc}; retry",
            headers={"Retry-After": str(RETRY_S)},
            retry_after=RETRY_S,
        ) from None
    except Exception as exc:
        raise HttpError(503, f"alarm store unavailable ({type_name(exc)}); retry") from None
    gw.metrics.alarms_by[channel].inc()
    return {
        "alarm": alarm_id,
        "status": "received",
        "status_url": status_url(gw, alarm_id),
        "events_url": status_url(gw, alarm_id) + "/events",
        "entry": entry_id,
        "pole": pole_view(pole),
    }


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
