"""What a citizen sees of their alarm: derived from ``keys.alarm(id)`` -> the incident hash ->
the assigned units' hashes (positions for distance and ETA)."""

from __future__ import annotations

from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from polewatch import geo, keys, records

PHASES: Final[dict[str, str]] = {
    "new": "received",
    "escalated": "waiting",
    "dispatched": "dispatched",
    "acknowledged": "on_the_way",
    "en_route": "on_the_way",
    "on_scene": "on_scene",
    "resolved": "resolved",
    "closed": "resolved",
    "cancelled": "cancelled",
}
"""Incident state -> the citizen's phase. ``waiting``: every unit is busy, the command centre
has it. A ``merged`` incident is followed to the one it went into."""

FINAL_PHASES: Final = frozenset({"resolved", "cancelled"})
MAX_MERGE_HOPS: Final = 8


class UnitView(msgspec.Struct, kw_only=True):
    unit: str
    status: str
    distance_m: float | None = None
    eta_s: float | None = None


class AlarmStatus(msgspec.Struct, kw_only=True):
    """The answer of ``GET /api/alarms/{id}`` and each event of its stream."""

    alarm: str
    status: str
    """received, waiting, dispatched, on_the_way, on_scene, resolved or cancelled."""
    incident: str | None = None
    state: str | None = None
    """The incident's own state (see :mod:`polewatch.records`)."""
    pole: str | None = None
    district: str | None = None
    units: list[UnitView] = []
    times: dict[str, float] = {}
    reports: int | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_PHASES


async def incident_of(redis: aioredis.Redis, alarm_id: str) -> str | None:
    """The incident an alarm went to, or ``None`` while the dispatcher has not seen it."""
    key = keys.alarm(alarm_id)
    try:
        raw = await redis.get(key)
    except ResponseError:  # stored as a hash rather than a string
        raw = await redis.hget(key, "incident")
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def alarm_status(redis: aioredis.Redis, alarm_id: str, speed_mps: float) -> AlarmStatus:
    """The current status of ``alarm_id`` (``received`` until the dispatcher has it)."""
    incident_id = await incident_of(redis, alarm_id)
    incident: records.Incident | None = None
    for _ in range(MAX_MERGE_HOPS):
        if incident_id is None:
            break
        incident = records.incident_from_hash(await redis.hgetall(keys.incident(incident_id)))
        if incident is None or incident.state != "merged" or not incident.merged_into:
            break
        incident_id = incident.merged_into
    if incident is None:
        return AlarmStatus(alarm=alarm_id, status="received", incident=incident_id)
    units = await _units(redis, incident, speed_mps)
    return AlarmStatus(
        alarm=alarm_id,
        status=PHASES.get(incident.state, "received"),
        incident=incident.id,
        state=incident.state,
        pole=incident.pole,
        district=incident.district,
        units=units,
        times=incident.times,
        reports=incident.reports,
    )


async def _units(
    redis: aioredis.Redis, incident: records.Incident, speed_mps: float
) -> list[UnitView]:
    if not incident.units:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for unit_id in incident.units:
            pipe.hgetall(keys.unit(unit_id))
        hashes: list[Any] = await pipe.execute()
    views = []
    for unit_id, raw in zip(incident.units, hashes, strict=True):
        unit = records.unit_from_hash(raw)
        view = UnitView(unit=unit_id, status=unit.status if unit else "unknown")
        if unit is not None and unit.lon is not None and unit.lat is not None:
            distance = geo.haversine_m(unit.lon, unit.lat, incident.lon, incident.lat)
            view.distance_m = round(distance, 1)
            view.eta_s = round(distance / speed_mps, 1) if speed_mps > 0 else None
        views.append(view)
    return views
