"""What a console gets once when it connects to the live feed (:mod:`gateway.console.live`):
the open incidents, the resolved ones waiting to be closed, the units, the cameras and the
latest audit entries; and the pipelined read
of incident and unit records that the feed's fan-outs share."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from gateway.console.cameras import latest_cameras
from gateway.incidents import Newest, unit_ids
from polewatch import details, keys, records, wire
from polewatch.poles.index import PoleIndex

RECENT_AUDIT: Final = 60
MAX_OPEN: Final = 2000
MAX_TO_CLOSE: Final = 500
"""Resolved incidents sent with the picture, the most recently resolved (``Zone.resolved``)."""


async def read_records(
    redis: aioredis.Redis, incidents: Mapping[str, keys.Zone], units: Mapping[str, keys.Zone]
) -> tuple[list[records.Incident], list[records.Unit]]:
    """The incident and unit hashes named (id -> zone), in one pipelined round trip."""
    if not incidents and not units:
        return [], []
    async with redis.pipeline(transaction=False) as pipe:
        for i, zone in incidents.items():
            pipe.hgetall(zone.incident(i))
        for u, zone in units.items():
            pipe.hgetall(zone.unit(u))
        hashes: list[Any] = await pipe.execute()
    found_i = [records.incident_from_hash(h) for h in hashes[: len(incidents)]]
    found_u = [records.unit_from_hash(h) for h in hashes[len(incidents) :]]
    return [i for i in found_i if i], [u for u in found_u if u]


async def picture(
    redis: aioredis.Redis,
    poles: PoleIndex | None = None,
    zones: Sequence[keys.Zone] = (keys.DEFAULT,),
) -> dict[str, Any]:
    """The whole current picture, sent once to a console when it connects."""
    open_ids = await Newest(redis, [(z, z.incidents_open) for z in zones], MAX_OPEN).take(MAX_OPEN)
    to_close = await Newest(redis, [(z, z.resolved) for z in zones], MAX_TO_CLOSE).take(
        MAX_TO_CLOSE
    )
    incidents, units = await read_records(
        redis, {i: z for z, i in [*open_ids, *to_close]}, await unit_ids(redis, zones)
    )
    async with redis.pipeline(transaction=False) as pipe:
        for zone in zones:
            pipe.xrevrange(zone.audit, count=RECENT_AUDIT)
        recent: list[Any] = [entry for entries in await pipe.execute() for entry in entries]
    if len(zones) > 1:  # the latest of every zone's, oldest first as one stream would be
        recent.sort(key=lambda entry: _stream_id(entry[0]), reverse=True)
        del recent[RECENT_AUDIT:]
    audit = []
    for entry_id, fields in reversed(recent):
        with contextlib.suppress(wire.WireError):
            message = wire.decode_entry(fields, wire.IncidentEvent)
            audit.append(details.event_view({"id": entry_id.decode(), **wire.to_builtins(message)}))
    return {
        "incidents": [i for i in incidents if i.state != "resolved"],
        "resolved": [i for i in incidents if i.state == "resolved"],
        "units": units,
        "cameras": await latest_cameras(redis, poles, zones),
        "audit": audit,
    }


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
