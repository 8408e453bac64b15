"""Reading incidents to archive out of Redis, a batch at a time, in one zone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from archiver.writer import Archived
from polewatch import keys, records, wire

TERMINAL: Final = frozenset({"closed", "cancelled", "merged"})
"""States after which an incident is archived for good: its keys get their retention time."""
ARCHIVING: Final = TERMINAL | {"resolved"}
"""Events that archive their incident as Redis holds it. A patrol's ``resolved`` too: the
operator's close (with the evaluation) may come hours later or never, and until it does the
record would live only in Redis. Its copy is kept whole in Redis (no retention) and replaced
in the archive by the close's, a longer timeline (``revision``)."""

# One script call per batch reads the incidents, and one sets their retention, instead of
# three commands per incident: the client's per-command cost was most of the archiver's time.
# The scripts take incident ids and build the keys from the zone's key templates (ARGV): a
# dozen arguments per incident cost more to send than the reads themselves. An incident's
# keys share its zone's hash tag, named by KEYS[1], so a call stays on one cluster shard.
# An alarm's record (key 6) holds '<incident id>\n<body>' since issue 15 (records written
# before hold the id, the body in key 5); an incident's alarm list (key 3) is written once a
# second alarm joins: until then its first_alarm field is all of it (polewatch/records.py).
_KEYS: Final = """
local function key(n, id) return ARGV[2 * n - 1] .. id .. ARGV[2 * n] end
local function alarms(id)
  local list = redis.call('LRANGE', key(3, id), 0, -1)
  if #list == 0 then
    local first = redis.call('HGET', key(1, id), 'first_alarm')
    if first then list = {first} end
  end
  return list
end
local function body(a)
  local v = redis.call('GET', key(6, a))
  local cut = v and string.find(v, '\\n', 1, true)
  if cut then return string.sub(v, cut + 1) end
  return redis.call('GET', key(5, a))
end
"""
_READ: Final = (
    _KEYS
    + """
local out = {}
for i = 13, #ARGV do
  local id = ARGV[i]
  local ids = alarms(id)
  local bodies = {}
  for j, a in ipairs(ids) do bodies[j] = body(a) end
  out[#out + 1] = redis.call('HGETALL', key(1, id))
  out[#out + 1] = redis.call('LRANGE', key(2, id), 0, -1)
  out[#out + 1] = ids
  out[#out + 1] = bodies
end
return out
"""
)
_RETAIN: Final = (
    _KEYS
    + """
local function each_key(id, f)
  for _, a in ipairs(alarms(id)) do f(key(6, a)); f(key(5, a)) end
  for n = 1, 4 do f(key(n, id)) end
end
local seconds, expiring, persisting = ARGV[13], tonumber(ARGV[14]), tonumber(ARGV[15])
-- Retention never shortens an alarm record's own TTL (it is also the idempotency record).
local function expire(k)
  if redis.call('TTL', k) == -1 then redis.call('EXPIRE', k, seconds)
  else redis.call('EXPIRE', k, seconds, 'GT') end
end
local function persist(k) redis.call('PERSIST', k) end
local at = 16
for i = at, at + expiring - 1 do each_key(ARGV[i], expire) end
at = at + expiring
for i = at, at + persisting - 1 do each_key(ARGV[i], persist) end
for i = at + persisting, #ARGV do persist(key(6, ARGV[i])); persist(key(5, ARGV[i])) end
return 1
"""
)

_GREW: Final = (
    _KEYS
    + """
local read, out = cmsgpack.unpack(ARGV[13]), {}
for i = 1, #read, 2 do
  if redis.call('LLEN', key(2, read[i])) > read[i + 1] then out[#out + 1] = read[i] end
end
return out
"""
)


def _templates(zone: keys.Zone) -> list[str]:
    """Each key kind's text before and after the id (incident, timeline, alarm list, tried
    set, alarm body, alarm record), as :mod:`polewatch.keys` builds them: the scripts'
    ``key(n, id)``."""
    out: list[str] = []
    for build in (zone.incident, zone.incident_timeline, zone.incident_alarms,
                  zone.incident_tried, zone.alarm_body, zone.alarm):  # fmt: skip
        before, _, after = build("\x00").partition("\x00")
        out += [before, after]
    return out


async def read_incidents(
    redis: aioredis.Redis,
    zone: keys.Zone,
    ids: Sequence[str],
    known: Mapping[bytes, wire.IncidentEvent] | None = None,
) -> dict[str, Archived | str]:
    """The incidents ``ids`` of ``zone`` with timelines and alarm bodies (one round trip);
    an incident whose hash does not parse maps to the reason, one that is gone is left out.
    Timeline entries that do not decode are left out of the archive. ``known``: events the
    caller decoded already (the batch's audit entries, the same bytes as the timeline's)."""
    known = known or {}
    replies: Any = await redis.eval(_READ, 1, zone.audit, *_templates(zone), *ids)
    out: dict[str, Archived | str] = {}
    for n, iid in enumerate(ids):
        flat, timeline, alarm_ids, bodies = replies[4 * n : 4 * n + 4]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        try:
            incident = records.incident_from_hash(raw)
        except (KeyError, ValueError, TypeError) as exc:
            out[iid] = f"incident {iid}: unreadable hash ({type(exc).__name__}: {exc})"
            continue
        if incident is None:
            continue
        out[iid] = Archived(
            zone=zone.name,
            incident=incident,
            timeline=[e for e in (known.get(t) or _event(t) for t in timeline) if e is not None],
            alarm_ids=[_text(a) for a in alarm_ids],
            alarms=[b or None for b in bodies],  # a missing body comes back as false
            read_length=len(timeline),
        )
    return out


async def grown(redis: aioredis.Redis, zone: keys.Zone, incidents: Sequence[Archived]) -> list[str]:
    """The ids of ``incidents`` whose timeline Redis holds is longer now than when they were
    read (one call): they changed since (every change the dispatcher makes appends to it)."""
    read: list[str | int] = []
    for a in incidents:
        if a.read_length >= 0:
            read += (a.incident.id, a.read_length)
    if not read:
        return []
    # one MessagePack argument: a thousand separate ones cost the client more than the check
    packed = msgspec.msgpack.encode(read)
    reply: Any = await redis.eval(_GREW, 1, zone.audit, *_templates(zone), packed)
    return [_text(i) for i in reply]


def retain(
    pipe: Any,
    zone: keys.Zone,
    incidents: Sequence[Archived],
    retention_s: int,
    joined: Sequence[str] = (),
) -> None:
    """Queue on ``pipe`` one call that gives the keys of archived closed (cancelled, merged)
    incidents their retention time and makes those of the others (resolved and waiting for
    the operator's close, reopened) persistent, as well as the bodies
    of the ``joined`` alarms (ones that opened or joined an incident not archived yet): the
    dispatcher stores bodies with a TTL, and a body must not leave before its incident is
    archived. The keys: the incident's hash,
    timeline, alarm list, tried set and the bodies of its alarms."""
    expiring = [a.incident.id for a in incidents if a.incident.state in TERMINAL]
    persisting = [a.incident.id for a in incidents if a.incident.state not in TERMINAL]
    if expiring or persisting or joined:
        pipe.eval(_RETAIN, 1, zone.audit, *_templates(zone), retention_s, len(expiring),
                  len(persisting), *expiring, *persisting, *joined)  # fmt: skip


def _event(data: bytes) -> wire.IncidentEvent | None:
    try:
        event: wire.IncidentEvent = wire.decode(data, wire.StoredIncidentEvent)
    except wire.WireError:
        return None
    return event


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
