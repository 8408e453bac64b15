"""Reading incidents to archive out of Redis, a batch at a time, in one zone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from archiver.writer import Archived
from polewatch import keys, records, wire

TERMINAL: Final = frozenset({"closed", "cancelled", "merged"})
"""States after which an incident is archived (and the events that put it there)."""


async def read_incidents(
    redis: aioredis.Redis, zone: keys.Zone, ids: Sequence[str]
) -> dict[str, Archived | str]:
    """The incidents ``ids`` of ``zone`` with timelines and alarm bodies (two round trips);
    an incident whose hash does not parse maps to the reason, one that is gone is left out.
    Timeline entries that do not decode are left out of the archive."""
    async with redis.pipeline(transaction=False) as pipe:
        for iid in ids:
            pipe.hgetall(zone.incident(iid))
            pipe.lrange(zone.incident_timeline(iid), 0, -1)
            pipe.lrange(zone.incident_alarms(iid), 0, -1)
        replies = await pipe.execute()
    out: dict[str, Archived | str] = {}
    found: list[Archived] = []
    for n, iid in enumerate(ids):
        raw, timeline, alarm_ids = replies[3 * n : 3 * n + 3]
        try:
            incident = records.incident_from_hash(raw)
        except (KeyError, ValueError, TypeError) as exc:
            out[iid] = f"incident {iid}: unreadable hash ({type(exc).__name__}: {exc})"
            continue
        if incident is None:
            continue
        archived = Archived(
            zone=zone.name,
            incident=incident,
            timeline=[e for e in map(_event, timeline) if e is not None],
            alarm_ids=[_text(a) for a in alarm_ids],
            alarms=[],
        )
        out[iid] = archived
        found.append(archived)
    bodies_wanted = [zone.alarm_body(a) for inc in found for a in inc.alarm_ids]
    bodies: list[Any] = await redis.mget(bodies_wanted) if bodies_wanted else []
    at = 0
    for inc in found:
        inc.alarms = list(bodies[at : at + len(inc.alarm_ids)])
        at += len(inc.alarm_ids)
    return out


def retention_keys(zone: keys.Zone, archived: Archived) -> list[str]:
    """The Redis keys of an archived incident that retention expires."""
    iid = archived.incident.id
    return [
        zone.incident(iid),
        zone.incident_timeline(iid),
        zone.incident_alarms(iid),
        zone.incident_tried(iid),
        *(zone.alarm_body(a) for a in archived.alarm_ids),
    ]


def _event(data: bytes) -> wire.IncidentEvent | None:
    try:
        event: wire.IncidentEvent = wire.decode(data, wire.IncidentEvent)
    except wire.WireError:
        return None
    return event


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
