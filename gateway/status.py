"""What a citizen sees of their alarm: derived from ``keys.alarm(id)`` -> the incident hash ->
the assigned units' hashes (positions for distance and ETA: by road over the city's road graph
when it can answer, see :func:`gateway.routes.road_etas`, else the straight line).

With dispatch zones the alarm's record is in the zone that took it: the zone it was appended
to, or the neighbouring zone that zone routed it to (``alarm_route``). The incident's id names
its zone, and its units are that zone's (incidents never span zones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.routes import Source, road_etas, straight
from gateway.state import incident_zone
from polewatch import keys, records
from polewatch.zones import ZoneMap

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
ZONELESS: Final = ZoneMap.single()


class UnitView(msgspec.Struct, kw_only=True):
    unit: str
    status: str
    distance_m: float | None = None
    eta_s: float | None = None
    eta_source: Source | None = None
    """``road``: distance and ETA over the road graph; ``straight``: as the crow flies."""


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


async def incident_of(
    redis: aioredis.Redis, alarm_id: str, where: Sequence[keys.Zone] = (keys.DEFAULT,)
) -> str | None:
    """The incident an alarm went to, or ``None`` while the dispatcher has not seen it.

    ``where``: the zone the alarm was appended to (a route recorded there is followed), or,
    when that is not known, every zone of the deployment (looked up in one round trip).
    """
    if len(where) > 1:
        async with redis.pipeline(transaction=False) as pipe:
            for zone in where:
                pipe.get(zone.alarm(alarm_id))
            found: list[Any] = await pipe.execute()
        return next((records.alarm_incident(f) for f in found if f is not None), None)
    if where[0].name:
        home = where[0]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(home.alarm(alarm_id))
            pipe.get(home.alarm_route(alarm_id))
            record, route = await pipe.execute()
        if record is None and route is not None:
            record = await redis.get(keys.zone(_text(route)).alarm(alarm_id))
        return records.alarm_incident(record)
    key = keys.alarm(alarm_id)
    try:
        raw = await redis.get(key)
    except ResponseError:  # stored as a hash rather than a string
        raw = await redis.hget(key, "incident")
    return records.alarm_incident(raw)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def alarm_status(
    redis: aioredis.Redis,
    alarm_id: str,
    speed_mps: float,
    zones: ZoneMap | None = None,
    home: str | None = None,
    city: str | None = None,
) -> AlarmStatus:
    """The current status of ``alarm_id`` (``received`` until the dispatcher has it).

    ``zones``: the deployment's zones (none: the default zone only); ``home``: the zone the
    alarm was appended to, when known; ``city``: whose road graph gives the units' ETAs by
    road (none: straight-line ETAs at ``speed_mps``).
    """
    zones = zones or ZONELESS
    where = [keys.zone(home)] if home is not None else zones.all_keys()
    incident_id = await incident_of(redis, alarm_id, where)
    incident: records.Incident | None = None
    zone: keys.Zone | None = None
    for _ in range(MAX_MERGE_HOPS):
        if incident_id is None:
            break
        zone = incident_zone(zones, incident_id)
        if zone is None:
            break
        incident = records.incident_from_hash(await redis.hgetall(zone.incident(incident_id)))
        if incident is None or incident.state != "merged" or not incident.merged_into:
            break
        incident_id = incident.merged_into
    if incident is None or zone is None:
        return AlarmStatus(alarm=alarm_id, status="received", incident=incident_id)
    units = await _units(redis, zone, incident, speed_mps, city)
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
    redis: aioredis.Redis,
    zone: keys.Zone,
    incident: records.Incident,
    speed_mps: float,
    city: str | None,
) -> list[UnitView]:
    if not incident.units:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for unit_id in incident.units:
            pipe.hgetall(zone.unit(unit_id))
        hashes: list[Any] = await pipe.execute()
    views = []
    placed: list[tuple[UnitView, tuple[float, float]]] = []
    for unit_id, raw in zip(incident.units, hashes, strict=True):
        unit = records.unit_from_hash(raw)
        view = UnitView(unit=unit_id, status=unit.status if unit else "unknown")
        if unit is not None and unit.lon is not None and unit.lat is not None:
            placed.append((view, (unit.lon, unit.lat)))
        views.append(view)
    target = (incident.lon, incident.lat)
    by_road = await road_etas(redis, city, target, [p for _, p in placed]) if city else []
    for n, (view, position) in enumerate(placed):
        road = by_road[n] if by_road else None
        if road is not None:
            view.distance_m, view.eta_s = round(road[0], 1), round(road[1], 1)
            view.eta_source = "road"
            continue
        line = straight(position, target, speed_mps)
        view.distance_m, view.eta_s = line.distance_m, line.eta_s if speed_mps > 0 else None
        view.eta_source = "straight"
    return views
