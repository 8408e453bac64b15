"""Building dispatch situations on a Redis: units on duty, alarms, answers, commands.

Used by the tests and the benchmark; everything goes through the real input streams, exactly as
the gateway and the edge agents write them.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

from polewatch import geo, keys, wire
from polewatch.zones import ZoneMap

_ids = itertools.count(1)


def alarm(lon: float, lat: float, *, type: str = "intrusion", **kw: Any) -> wire.Alarm:
    """An alarm with a fresh id at ``(lon, lat)``; ``kw`` sets any other field."""
    kw.setdefault("id", f"a{next(_ids)}-{random.getrandbits(32):08x}")
    kw.setdefault("source", "test")
    kw.setdefault("ts", time.time())
    return wire.Alarm(type=type, lon=lon, lat=lat, **kw)


def on_duty(
    unit: str,
    lon: float,
    lat: float,
    *,
    grid: str | None = None,
    capabilities: Iterable[str] = (),
    ts: float | None = None,
) -> wire.PatrolDuty:
    return wire.PatrolDuty(
        unit=unit,
        duty="on_duty",
        ts=time.time() if ts is None else ts,
        grid=grid,
        capabilities=list(capabilities),
        lon=lon,
        lat=lat,
    )


def off_duty(unit: str) -> wire.PatrolDuty:
    return wire.PatrolDuty(unit=unit, duty="off_duty", ts=time.time())


def status(unit: str, incident: str, action: str, detail: str | None = None) -> wire.PatrolStatus:
    act: Any = action
    return wire.PatrolStatus(
        unit=unit, incident=incident, action=act, ts=time.time(), detail=detail
    )


def command(op: str, incident: str, **kw: Any) -> wire.Command:
    kind: Any = op
    kw.setdefault("actor", "operator")
    return wire.Command(op=kind, incident=incident, ts=time.time(), **kw)


def stream_of(message: wire.Message, zones: ZoneMap | None = None, client: Any = None) -> str:
    """The input stream a message belongs on: its zone's (the place of an alarm, the home of
    a unit, the zone of an incident; see :mod:`polewatch.zones`)."""
    if zones is None or not zones.zoned:
        zone = keys.DEFAULT
    elif isinstance(message, wire.Alarm):
        zone = keys.zone(zones.locate(message.lon, message.lat))
    elif isinstance(message, wire.Command):
        zone = keys.zone_of_incident(message.incident)
    else:
        zone = keys.zone(_unit_zone(client, zones, message))
    if isinstance(message, wire.Alarm):
        return zone.alarms
    if isinstance(message, wire.Command):
        return zone.commands
    return zone.patrol_events


def _unit_zone(client: Any, zones: ZoneMap, message: Any) -> str:
    """The sync twin of :func:`polewatch.zones.unit_zone` (first writer wins)."""
    known = client.hget(keys.UNIT_ZONES, message.unit)
    if known is None:
        lon, lat = getattr(message, "lon", None), getattr(message, "lat", None)
        assert lon is not None and lat is not None, f"unit {message.unit} has no zone yet"
        client.hsetnx(keys.UNIT_ZONES, message.unit, zones.locate(lon, lat))
        known = client.hget(keys.UNIT_ZONES, message.unit)
    return known.decode() if isinstance(known, bytes) else str(known)


def write(client: Any, messages: Iterable[wire.Message], zones: ZoneMap | None = None) -> None:
    """XADD the messages (sync client) in one pipeline, in order; into their zones' streams
    when ``zones`` is given."""
    pipe = client.pipeline(transaction=False)
    for message in messages:
        pipe.xadd(stream_of(message, zones, client), wire.entry(message))
    pipe.execute()


def random_points(
    n: int, rng: random.Random, bbox: tuple[float, float, float, float]
) -> Iterator[tuple[float, float]]:
    """``n`` uniform random points in ``(lon_min, lat_min, lon_max, lat_max)``."""
    lon0, lat0, lon1, lat1 = bbox
    for _ in range(n):
        yield rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)


def shifted(
    lon: float, lat: float, east_m: float = 0.0, north_m: float = 0.0
) -> tuple[float, float]:
    """The point ``east_m`` metres east and ``north_m`` north of ``(lon, lat)``."""
    r = geo.EARTH_RADIUS_M
    dlat = math.degrees(north_m / r)
    dlon = math.degrees(east_m / (r * math.cos(math.radians(lat))))
    return lon + dlon, lat + dlat


def home(client: Any, unit: str) -> keys.Zone:
    """The zone a unit lives in (the default zone without zones)."""
    name = client.hget(keys.UNIT_ZONES, unit)
    return keys.zone(name.decode()) if name else keys.DEFAULT


def inbox(client: Any, unit: str) -> list[wire.Dispatch | wire.DispatchCancel]:
    """Everything in a unit's inbox, decoded (sync client)."""
    return [
        wire.decode_entry(fields, wire.UnitInbox)
        for _, fields in client.xrange(home(client, unit).unit_inbox(unit))
    ]


async def drain(redis_url: str, **overrides: Any) -> Any:
    """Run one burst-mode dispatcher over what is in the streams; its totals."""
    from dispatcher.service import Dispatcher
    from dispatcher.settings import DispatcherSettings

    overrides.setdefault("consumer", "burst")
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, **overrides), burst=True)
    await dispatcher.run()
    return dispatcher.totals


async def step(redis_url: str, client: Any, *messages: wire.Message, **overrides: Any) -> Any:
    """Write ``messages`` (into their zones' streams, with a ``zones`` setting) and drain them
    with a burst dispatcher; its totals."""
    from polewatch.settings import Settings

    write(client, messages, Settings(zones=overrides.get("zones", "")).zone_map())
    return await drain(redis_url, **overrides)


def incident(client: Any, incident_id: str = "1") -> Any:
    """The incident's record (sync client); fails if it does not exist."""
    from polewatch import records

    zone = keys.zone_of_incident(incident_id)
    inc = records.incident_from_hash(client.hgetall(zone.incident(incident_id)))
    assert inc is not None, f"no incident {incident_id}"
    return inc


def unit(client: Any, unit_id: str) -> Any:
    """The unit's record (sync client); fails if it does not exist."""
    from polewatch import records

    u = records.unit_from_hash(client.hgetall(home(client, unit_id).unit(unit_id)))
    assert u is not None, f"no unit {unit_id}"
    return u


def timeline(client: Any, incident_id: str = "1") -> list[wire.IncidentEvent]:
    """The incident's timeline, decoded."""
    raw = client.lrange(keys.incident_timeline(incident_id), 0, -1)
    return [wire.decode(x, wire.IncidentEvent) for x in raw]


def units_east(client: Any, lon: float, lat: float, distances: dict[str, float]) -> None:
    """Put units on duty ``distances[unit]`` metres east of ``(lon, lat)``."""
    write(client, [on_duty(u, *shifted(lon, lat, east_m=d)) for u, d in distances.items()])
