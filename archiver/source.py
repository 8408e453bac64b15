"""Reading incidents to archive out of Redis, a batch at a time, in one zone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from archiver.writer import Archived
from polewatch import keys, records, wire

TERMINAL: Final = frozenset({"closed", "cancelled", "merged"})
"""States after which an incident is archived (and the events that put it there)."""

# One script call per batch instead of three commands per incident: the client's per-command
# cost was most of the archiver's time. An incident's keys share its zone's hash tag, so the
# call stays on one shard of a cluster.
_READ: Final = """
local out = {}
for i = 1, #KEYS, 3 do
  out[#out + 1] = redis.call('HGETALL', KEYS[i])
  out[#out + 1] = redis.call('LRANGE', KEYS[i + 1], 0, -1)
  out[#out + 1] = redis.call('LRANGE', KEYS[i + 2], 0, -1)
end
return out
"""
_RETAIN: Final = """
for i, key in ipairs(KEYS) do
  if ARGV[i] == '0' then redis.call('PERSIST', key) else redis.call('EXPIRE', key, ARGV[i]) end
end
return #KEYS
"""


async def read_incidents(
    redis: aioredis.Redis, zone: keys.Zone, ids: Sequence[str]
) -> dict[str, Archived | str]:
    """The incidents ``ids`` of ``zone`` with timelines and alarm bodies (two round trips);
    an incident whose hash does not parse maps to the reason, one that is gone is left out.
    Timeline entries that do not decode are left out of the archive."""
    names = [
        name
        for iid in ids
        for name in (zone.incident(iid), zone.incident_timeline(iid), zone.incident_alarms(iid))
    ]
    replies: Any = await redis.eval(_READ, len(names), *names)
    out: dict[str, Archived | str] = {}
    found: list[Archived] = []
    for n, iid in enumerate(ids):
        flat, timeline, alarm_ids = replies[3 * n : 3 * n + 3]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
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


def retain(
    pipe: Any,
    zone: keys.Zone,
    incidents: Sequence[Archived],
    retention_s: int,
    joined: Sequence[str] = (),
) -> None:
    """Queue on ``pipe`` one call that gives the keys of archived closed incidents their
    retention time and makes those of reopened ones persistent again, as well as the bodies
    of the ``joined`` alarms (ones that opened or joined an incident not archived yet): the
    dispatcher stores bodies with a TTL, and a body must not leave before its incident is
    archived."""
    names = [zone.alarm_body(a) for a in joined]
    seconds = [0] * len(names)
    for inc in incidents:
        mine = retention_keys(zone, inc)
        names += mine
        seconds += [retention_s if inc.incident.state in TERMINAL else 0] * len(mine)
    if names:
        pipe.eval(_RETAIN, len(names), *names, *seconds)


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
