"""Border alarms: which zone should take an alarm read from a zone's stream.

An alarm deep inside its zone is the zone's (every unit near it is the zone's own). An alarm
within ``max_radius_m`` of another zone may be better served across the border. For those the
replica asks Redis, read-only and pipelined (two round trips per batch at most, none for a
batch without border alarms):

1. has the alarm been routed before (a replay after a crash)? is there a free unit of the home
   zone nearer than the border? is there an open incident of the alarm's merge group within
   its merge radius in a neighbouring zone (then the report merges there)?
2. for the rest: which of the zones within reach has the nearest free unit?

A decision to send an alarm away is recorded first (``SET NX`` on the home zone's
``alarm_route`` key), so a replica that dies after forwarding and before acknowledging sends the
replay to the same zone, where the alarm id makes it a duplicate. The incident is then created
in the chosen zone, atomically with its units; incidents never span zones, so no unit can be
assigned twice. The choice is made on positions (a unit the zone's function then finds stale or
lacking a capability is skipped there), and a unit taken by a concurrent batch between the
check and the call is replaced by that zone's next nearest.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from dispatcher import library
from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import keys, records, wire
from polewatch.records import OPEN_STATES
from polewatch.zones import ZoneMap

ROUTE_TTL_S = 7 * 86_400
_DECODER = msgspec.msgpack.Decoder(wire.Alarm)


class Candidate(NamedTuple):
    position: int
    """Position in the batch."""
    alarm: wire.Alarm
    border_m: float


class Route(NamedTuple):
    zone: str
    """The zone that takes the alarm."""
    alarm: wire.Alarm


class Router:
    """Routes a zone's border alarms (see the module doc)."""

    def __init__(
        self,
        zones: ZoneMap,
        settings: DispatcherSettings,
        table: PriorityTable,
        conf: dict[str, bytes],
    ) -> None:
        self.zones = zones
        self.max_radius_m = settings.max_radius_m
        self.table = table
        self.conf = conf
        """Each zone's settings argument of the functions."""
        self.routed = 0
        """Alarms sent to another zone since start."""

    def candidates(self, zone: keys.Zone, payloads: list[bytes | None]) -> list[Candidate]:
        """The batch's alarms (``None``: not an alarm) lying within reach of another zone."""
        out = []
        for i, payload in enumerate(payloads):
            if payload is None:
                continue
            alarm = _DECODER.decode(payload)
            border = self.zones.border_m(alarm.lon, alarm.lat, zone.name, self.max_radius_m)
            if border < math.inf:
                out.append(Candidate(i, alarm, border))
        return out

    async def route(
        self,
        client: aioredis.Redis,
        zone: keys.Zone,
        payloads: list[bytes | None],
        *,
        replay: bool = False,
    ) -> dict[int, Route]:
        """Batch position -> the other zone that takes it, for the alarms that go elsewhere.
        ``replay``: the entries were delivered before (claimed from a dead replica or left
        pending by a restart), so an earlier routing decision may exist and must hold."""
        if not self.zones.zoned:
            return {}
        found = self.candidates(zone, payloads)
        if not found:
            return {}
        decided: dict[int, str] = {}
        undecided: list[Candidate] = []
        foreign: list[tuple[Candidate, list[tuple[str, str]], bool]] = []
        # Round trip 1: for the whole batch, one read-only call on the home shard (any home
        # unit nearer than the border, a home incident nearby, incidents of other zones placed
        # here); plus an earlier decision (replays only) and, right at a border, the
        # incidents of the zones next door.
        args: list[Any] = []
        extra: list[list[str]] = []
        async with client.pipeline(transaction=False) as pipe:
            for c in found:
                a = c.alarm
                radius = self.table[a.type].radius_m
                group = self.table.group(a.type)
                args += (a.lon, a.lat, c.border_m, group, radius)
                sets: list[str] = []
                if c.border_m <= radius:
                    for z in self.zones.near(a.lon, a.lat, radius):
                        if z != zone.name:
                            sets += (keys.zone(z).merge_area(group), keys.zone(z).merge_refs(group))
                for key in sets:
                    pipe.geosearch(key, longitude=a.lon, latitude=a.lat, radius=radius,
                                   unit="m", sort="ASC", count=4)  # fmt: skip
                if replay:
                    pipe.get(zone.alarm_route(a.id))
                extra.append(sets)
            # How many units are free in each zone: an overloaded zone is not searched.
            for other in self.zones.names:
                pipe.zcard(keys.zone(other).units_free_geo)
            pipe.fcall(library.ROUTE, 1, zone.alarms, self.conf[zone.name], *args)
            replies = await pipe.execute()
        free = dict(zip(self.zones.names, replies[-1 - len(self.zones.names) : -1], strict=True))
        at = 0
        for c, sets, (unit, home, refs) in zip(found, extra, replies[-1], strict=True):
            nearby = [(zone.merge_refs(self.table.group(c.alarm.type)), _text(i)) for i in refs]
            for key in sets:
                nearby += [(key, _text(i)) for i in replies[at]]
                at += 1
            earlier = None
            if replay:
                earlier, at = replies[at], at + 1
            if earlier is not None:
                if (earlier_zone := _text(earlier)) != zone.name:
                    decided[c.position] = earlier_zone
            elif home and not unit:
                pass  # an incident of the home zone is there: its function merges the report
            elif nearby:
                foreign.append((c, nearby, bool(unit)))
            elif not unit:
                undecided.append(c)
        # Round trip 1b (rare): are those incidents of other zones still open and recent?
        if foreign:
            async with client.pipeline(transaction=False) as pipe:
                for _, nearby, _ in foreign:
                    for _, i in nearby:
                        pipe.hmget(
                            keys.zone_of_incident(i).incident(i),
                            "state",
                            *records.LAST_REPORT_FIELDS,
                        )
                replies = await pipe.execute()
            at = 0
            stale: list[tuple[str, str]] = []
            for c, nearby, home_unit in foreign:
                window = self.table[c.alarm.type].window_s
                target: str | None = None
                for (key, i), (state, *last) in zip(nearby, replies[at:], strict=False):
                    if _text(state or b"") not in OPEN_STATES:
                        if ":merge-refs:" in key:
                            stale.append((key, i))
                    elif (
                        target is None and abs(c.alarm.ts - records.last_report_ts(*last)) <= window
                    ):
                        target = keys.zone_of_incident(i).name
                at += len(nearby)
                if target is not None:
                    decided[c.position] = target
                elif not home_unit:
                    undecided.append(c)
            if stale:
                async with client.pipeline(transaction=False) as pipe:
                    for key, i in stale:
                        pipe.zrem(key, i)
                    await pipe.execute()
        # Round trips 2 and 3: the home zone's nearest free unit, then whether a zone next
        # door has a nearer one (only zones that near and with free units are asked).
        if undecided:
            limit = self.max_radius_m
            home_args = [
                x for c in undecided for x in (c.alarm.lon, c.alarm.lat, c.border_m, limit)
            ]
            reply = await client.fcall(library.NEAREST, 1, zone.alarms, self.conf[zone.name],
                                       *home_args)  # fmt: skip
            home_m = {
                c.position: float(d) if d else math.inf
                for c, d in zip(undecided, reply, strict=True)
            }
            points: dict[str, list[Candidate]] = {}
            for c in undecided:
                reach = min(home_m[c.position], limit)
                for z in self.zones.near(c.alarm.lon, c.alarm.lat, reach):
                    if z != zone.name and free[z]:
                        points.setdefault(z, []).append(c)
            async with client.pipeline(transaction=False) as pipe:
                for z, cs in points.items():
                    args = []
                    for c in cs:
                        args += (c.alarm.lon, c.alarm.lat, 0, min(home_m[c.position], limit))
                    pipe.fcall(library.NEAREST, 1, keys.zone(z).alarms, self.conf[z], *args)
                replies = await pipe.execute() if points else []
            best = {i: (d, zone.name) for i, d in home_m.items()}
            for (z, cs), distances in zip(points.items(), replies, strict=True):
                for c, d in zip(cs, distances, strict=True):
                    if d and float(d) < best[c.position][0]:
                        best[c.position] = (float(d), z)
            for index, (_, z) in best.items():
                if z != zone.name:
                    decided[index] = z
        if not decided:
            return {}
        decided = await self._record(client, zone, found, decided)
        self.routed += len(decided)
        alarms = {c.position: c.alarm for c in found}
        return {i: Route(target, alarms[i]) for i, target in decided.items()}

    async def remember(self, client: aioredis.Redis, zone: keys.Zone, routes: list[Route]) -> None:
        """After routed alarms were taken: note their incidents in the home zone's
        ``merge_refs``, so later reports at the same place go to them too."""
        async with client.pipeline(transaction=False) as pipe:
            for r in routes:
                pipe.get(keys.zone(r.zone).alarm(r.alarm.id))
            taken: list[Any] = await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            for r, record in zip(routes, taken, strict=True):
                incident = records.alarm_incident(record)
                if incident is not None:
                    ref = zone.merge_refs(self.table.group(r.alarm.type))
                    pipe.geoadd(ref, (r.alarm.lon, r.alarm.lat, incident))
            await pipe.execute()

    async def _record(
        self, client: aioredis.Redis, zone: keys.Zone, found: list[Candidate],
        decided: dict[int, str],
    ) -> dict[int, str]:  # fmt: skip
        """Persist the decisions; where a replica decided first, its decision holds."""
        alarms = {c.position: c.alarm for c in found}
        order = list(decided)
        async with client.pipeline(transaction=False) as pipe:
            for i in order:
                pipe.set(zone.alarm_route(alarms[i].id), decided[i], nx=True, get=True,
                         ex=ROUTE_TTL_S)  # fmt: skip
            previous: list[Any] = await pipe.execute()
        out = {}
        for i, before in zip(order, previous, strict=True):
            target = decided[i] if before is None else _text(before)
            if target != zone.name:
                out[i] = target
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
