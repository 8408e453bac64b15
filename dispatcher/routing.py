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

from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire
from polewatch.records import OPEN_STATES
from polewatch.zones import ZoneMap

ROUTE_TTL_S = 7 * 86_400
_DECODER = msgspec.msgpack.Decoder(wire.Alarm)


class Candidate(NamedTuple):
    index: int
    """Position in the batch."""
    alarm: wire.Alarm
    border_m: float


class Route(NamedTuple):
    zone: str
    """The zone that takes the alarm."""
    alarm: wire.Alarm


class Router:
    """Routes a zone's border alarms (see the module doc)."""

    def __init__(self, zones: ZoneMap, settings: DispatcherSettings, table: PriorityTable) -> None:
        self.zones = zones
        self.max_radius_m = settings.max_radius_m
        self.table = table
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
        self, client: aioredis.Redis, zone: keys.Zone, payloads: list[bytes | None]
    ) -> dict[int, Route]:
        """Batch position -> the other zone that takes it, for the alarms that go elsewhere."""
        if not self.zones.zoned:
            return {}
        found = self.candidates(zone, payloads)
        if not found:
            return {}
        decided: dict[int, str] = {}
        undecided: list[Candidate] = []
        foreign: list[tuple[Candidate, list[tuple[str, str]], bool]] = []
        # Round trip 1: earlier routes, a home unit nearer than the border, incidents nearby
        # (a zone's own, and those of other zones placed in it) a report could merge into.
        async with client.pipeline(transaction=False) as pipe:
            plans = []
            for c in found:
                a = c.alarm
                radius = self.table[a.type].radius_m
                group = self.table.group(a.type)
                near = (
                    [z for _, z in self.zones.distances(a.lon, a.lat, radius)]
                    if c.border_m <= radius
                    else [zone.name]
                )
                sets = [k for z in near for k in (keys.zone(z).merge_area(group),
                                                  keys.zone(z).merge_refs(group))]  # fmt: skip
                pipe.get(zone.alarm_route(a.id))
                pipe.geosearch(zone.units_free_geo, longitude=a.lon, latitude=a.lat,
                               radius=max(c.border_m, 0.01), unit="m", sort="ASC",
                               count=1)  # fmt: skip
                for key in sets:
                    pipe.geosearch(key, longitude=a.lon, latitude=a.lat, radius=radius,
                                   unit="m", sort="ASC", count=4)  # fmt: skip
                plans.append(sets)
            replies = await pipe.execute()
        at = 0
        for c, sets in zip(found, plans, strict=True):
            earlier, home_unit = replies[at], replies[at + 1]
            nearby = [(key, _text(i)) for key, ids in zip(sets, replies[at + 2 :], strict=False)
                      for i in ids]  # fmt: skip
            at += 2 + len(sets)
            if earlier is not None:
                if (target := _text(earlier)) != zone.name:
                    decided[c.index] = target
            elif any(keys.zone_of_incident(i) is zone for _, i in nearby):
                pass  # an incident of the home zone is there: the home zone decides
            elif nearby:
                foreign.append((c, nearby, bool(home_unit)))
            elif not home_unit:
                undecided.append(c)
        # Round trip 1b (rare): are those incidents of other zones still open and recent?
        if foreign:
            async with client.pipeline(transaction=False) as pipe:
                for _, nearby, _ in foreign:
                    for _, i in nearby:
                        pipe.hmget(keys.zone_of_incident(i).incident(i), "state", "last_ts")
                replies = await pipe.execute()
            at = 0
            stale: list[tuple[str, str]] = []
            for c, nearby, home_unit in foreign:
                window = self.table[c.alarm.type].window_s
                target = None
                for (key, i), (state, last) in zip(nearby, replies[at:], strict=False):
                    if _text(state or b"") not in OPEN_STATES:
                        if ":merge-refs:" in key:
                            stale.append((key, i))
                    elif target is None and abs(c.alarm.ts - float(last or 0)) <= window:
                        target = keys.zone_of_incident(i).name
                at += len(nearby)
                if target is not None:
                    decided[c.index] = target
                elif not home_unit:
                    undecided.append(c)
            if stale:
                async with client.pipeline(transaction=False) as pipe:
                    for key, i in stale:
                        pipe.zrem(key, i)
                    await pipe.execute()
        # Round trip 2: the nearest free unit among the zones within reach.
        if undecided:
            async with client.pipeline(transaction=False) as pipe:
                plans2 = []
                for c in undecided:
                    a = c.alarm
                    reach = [z for _, z in self.zones.distances(a.lon, a.lat, self.max_radius_m)]
                    for z in reach:
                        pipe.geosearch(keys.zone(z).units_free_geo, longitude=a.lon,
                                       latitude=a.lat, radius=self.max_radius_m, unit="m",
                                       sort="ASC", count=1, withdist=True)  # fmt: skip
                    plans2.append(reach)
                replies = await pipe.execute()
            at = 0
            for c, reach in zip(undecided, plans2, strict=True):
                best: tuple[float, str] | None = None
                for z, found_units in zip(reach, replies[at : at + len(reach)], strict=True):
                    if found_units and (best is None or found_units[0][1] < best[0]):
                        best = (float(found_units[0][1]), z)
                at += len(reach)
                if best is not None and best[1] != zone.name:
                    decided[c.index] = best[1]
        if not decided:
            return {}
        decided = await self._record(client, zone, found, decided)
        self.routed += len(decided)
        alarms = {c.index: c.alarm for c in found}
        return {i: Route(target, alarms[i]) for i, target in decided.items()}

    async def remember(self, client: aioredis.Redis, zone: keys.Zone, routes: list[Route]) -> None:
        """After routed alarms were taken: note their incidents in the home zone's
        ``merge_refs``, so later reports at the same place go to them too."""
        async with client.pipeline(transaction=False) as pipe:
            for r in routes:
                pipe.get(keys.zone(r.zone).alarm(r.alarm.id))
            taken: list[Any] = await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            for r, incident in zip(routes, taken, strict=True):
                if incident is not None:
                    ref = zone.merge_refs(self.table.group(r.alarm.type))
                    pipe.geoadd(ref, (r.alarm.lon, r.alarm.lat, _text(incident)))
            await pipe.execute()

    async def _record(
        self, client: aioredis.Redis, zone: keys.Zone, found: list[Candidate],
        decided: dict[int, str],
    ) -> dict[int, str]:  # fmt: skip
        """Persist the decisions; where a replica decided first, its decision holds."""
        alarms = {c.index: c.alarm for c in found}
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
