"""Dispatch by drive time: each alarm's road shortlist, made before the Redis Function runs.

The Function claims units atomically but cannot route, so the replica ranks for it. For each
place (an alarm's, or a waiting incident's in the timer) it takes the ``shortlist`` free units
nearest by air (one pipelined GEOSEARCH for the whole batch), asks the road network for their
drive times to the place, and widens the search to every free unit that could still be faster:
no drive beats the straight line at ``fastest_mps``, so a unit farther by air than
``fastest_mps * t_best`` cannot win (a second pipelined GEOSEARCH, for the places that need
it). The list, fastest first, goes to the Function with the alarm, which claims the first unit
still free and eligible (on duty, fresh position, capability, grid preference in seconds);
a unit claimed since the list was made is simply skipped.

The list carries ``b``, the drive time up to which it holds every free unit: a choice slower
than that (its faster units were taken or ineligible) is still made by road, and the audit
says it was not proven fastest. Where the graph cannot answer (no graph, a place off the
roads, no unit reachable by road) the list says why and the Function falls back to the
straight-line search, auditing the reason.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from dispatcher.library import ALARM
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire
from polewatch.roads import RoadNetwork, load_roads

log = logging.getLogger("polewatch.dispatcher")

ROAD: str = "road"
"""The count of lists ranked by road (:attr:`Ranker.counts`; the others count by reason)."""
RANK: bytes = b"r"
"""The code of a shortlist entry in ``pw_batch`` (it applies to the alarm after it)."""
NO_GRAPH: str = "no road graph"
OFF_ROAD: str = "the place is off the road graph"
UNREACHABLE: str = "no free unit reachable by road"

_ENCODER = msgspec.msgpack.Encoder()
_ALARM = msgspec.msgpack.Decoder(wire.Alarm)


class Found(NamedTuple):
    """Free units near a place by air: ids, straight-line metres, positions (nearest first)."""

    units: list[str]
    air_m: list[float]
    places: list[tuple[float, float]]


class Ranker:
    """Makes the road shortlists of a replica (see the module doc)."""

    def __init__(self, settings: DispatcherSettings, network: RoadNetwork | None = None) -> None:
        self.network = network
        """The road network; ``None``: every list says :data:`NO_GRAPH`."""
        self.city = settings.city
        self.enabled = settings.drive_time
        self.shortlist = settings.shortlist
        self.shortlist_max = max(settings.shortlist_max, settings.shortlist)
        self.max_radius_m = settings.max_radius_m
        self.expire_batch = settings.expire_batch
        self._box: tuple[RoadNetwork, float, float, float, float] | None = None
        self.counts: Counter[str] = Counter()
        """Lists made since start: :data:`ROAD`, or the reason the graph could not answer."""
        self.escalated_batch = settings.escalated_batch

    async def refresh(self, client: aioredis.Redis) -> None:
        """Load the city's road graph when it changed (``polewatch roads import``): one GET
        while it has not. A graph that cannot be read leaves the last one in use."""
        if not self.enabled:
            return
        try:
            network = await load_roads(client, self.city)
        except ValueError as exc:
            log.warning("road graph of %r unreadable (%s); keeping the one in use", self.city, exc)
            return
        if network is not self.network and network is not None:
            log.info("road graph of %r version %s loaded", self.city, network.version)
        self.network = network

    async def arguments(
        self, client: aioredis.Redis, zone: keys.Zone, args: list[bytes]
    ) -> list[bytes]:
        """``pw_batch`` triples with each alarm's shortlist put in front of it."""
        places = []
        for i in range(0, len(args), 3):
            if args[i] == ALARM:
                alarm = _ALARM.decode(args[i + 2])
                places.append((alarm.lon, alarm.lat))
        if not places:
            return args
        return interleave(args, await self.rank(client, zone, places))

    async def waiting(self, client: aioredis.Redis, zone: keys.Zone) -> list[bytes]:
        """``pw_tick``'s pairs <incident id> <shortlist> for the incidents the tick may give a
        unit: dispatches due to expire (read with a second's margin on Redis' clock) and
        escalated incidents."""
        if not self.enabled:
            return []
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(zone.ack_deadlines, "-inf", time.time() + 1.0,
                               start=0, num=self.expire_batch)  # fmt: skip
            pipe.zrange(zone.escalated, 0, self.escalated_batch - 1)
            due, escalated = await pipe.execute()
        ids = list(dict.fromkeys([m.rpartition(b"|")[0] for m in due] + list(escalated)))
        if not ids:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for incident in ids:
                pipe.hmget(zone.incident(incident.decode()), "lon", "lat")
            found = [(i, p) for i, p in zip(ids, await pipe.execute(), strict=True) if p[0]]
        places = [(float(lon), float(lat)) for _, (lon, lat) in found]
        ranks = await self.rank(client, zone, places) or []
        return [x for (incident, _), r in zip(found, ranks, strict=True) for x in (incident, r)]

    async def rank(
        self, client: aioredis.Redis, zone: keys.Zone, places: Sequence[tuple[float, float]]
    ) -> list[bytes] | None:
        """The packed shortlist of each place (``None``: drive time is off, no lists)."""
        if not self.enabled:
            return None
        net = self.network
        if net is None:
            self.counts[NO_GRAPH] += len(places)
            return [_pack({"why": NO_GRAPH})] * len(places)
        lists: list[dict[str, Any]] = [{"why": OFF_ROAD}] * len(places)
        on = [i for i, (lon, lat) in enumerate(places) if self._on_map(net, lon, lat)]
        first = await _search(client, zone, [places[i] for i in on], self.max_radius_m,
                              self.shortlist)  # fmt: skip
        wider: dict[int, float] = {}
        for i, found in zip(on, first, strict=True):
            ranked = lists[i] = self._drive(net, *places[i], found)
            if len(found.units) < self.shortlist:
                ranked["b"] = self.max_radius_m / net.fastest_mps
            elif ranked.get("t"):
                reach = net.fastest_mps * ranked["t"][0]
                ranked["b"] = found.air_m[-1] / net.fastest_mps
                if found.air_m[-1] < reach:
                    wider[i] = min(reach, self.max_radius_m)
        if wider:
            at = list(wider)
            more = await _search(
                client, zone, [places[i] for i in at], [wider[i] for i in at], self.shortlist_max
            )
            for i, found in zip(at, more, strict=True):
                # (a unit more than twice as slow as the best is of no use to the Function)
                ranked = lists[i] = self._drive(net, *places[i], found, 2 * lists[i]["t"][0] + 60)
                full = len(found.units) >= self.shortlist_max
                ranked["b"] = (found.air_m[-1] if full else wider[i]) / net.fastest_mps
        self.counts.update(ranked.get("why", ROAD) for ranked in lists)
        return [_pack(ranked, self.shortlist) for ranked in lists]

    def _on_map(self, net: RoadNetwork, lon: float, lat: float) -> bool:
        """Whether a place may meet the roads: within 1 km of the graph's box (most of a city
        may lie outside the graph's area; a snap costs as much as a search)."""
        if self._box is None or self._box[0] is not net:
            margin = 0.011  # degrees: over the 1 km a point may lie off the roads
            self._box = (net, float(net.lon.min()) - margin, float(net.lat.min()) - margin,
                         float(net.lon.max()) + margin, float(net.lat.max()) + margin)  # fmt: skip
        _, lon0, lat0, lon1, lat1 = self._box
        return lon0 <= lon <= lon1 and lat0 <= lat <= lat1

    def _drive(
        self, net: RoadNetwork, lon: float, lat: float, found: Found, limit: float | None = None
    ) -> dict[str, Any]:
        """The units of ``found`` that can drive to the place within ``limit`` s, fastest
        first."""
        if not found.units:
            return {"u": [], "t": [], "d": []}
        # A bound that spares most of the graph: a unit slower than it is slower than one
        # that made it; when none made it, ask again without (a far or badly linked place).
        limit = limit or found.air_m[-1] / min(net.fastest_mps, 5.0) + 300.0
        legs = net.drive_times_to(lon, lat, found.places, limit_s=limit)
        if not any(legs):
            if net.snap(lon, lat, role="target") is None:
                return {"why": OFF_ROAD}
            legs = net.drive_times_to(lon, lat, found.places)
        if not any(legs):
            return {"why": UNREACHABLE}
        order = sorted(
            (leg.time_s, leg.distance_m, unit)
            for unit, leg in zip(found.units, legs, strict=True)
            if leg is not None
        )
        return {
            "u": [unit for _, _, unit in order],
            "t": [round(t, 1) for t, _, _ in order],
            "d": [round(d, 1) for _, d, _ in order],
        }


async def _search(
    client: aioredis.Redis,
    zone: keys.Zone,
    places: Sequence[tuple[float, float]],
    radius_m: float | Sequence[float],
    count: int,
) -> list[Found]:
    """The free units nearest by air to each place within its radius, one round trip."""
    radii = [radius_m] * len(places) if isinstance(radius_m, int | float) else list(radius_m)
    async with client.pipeline(transaction=False) as pipe:
        for (lon, lat), radius in zip(places, radii, strict=True):
            pipe.execute_command(
                "GEOSEARCH", zone.units_free_geo, "FROMLONLAT", lon, lat, "BYRADIUS",
                max(radius, 0.01), "m", "ASC", "COUNT", count, "WITHDIST", "WITHCOORD",
            )  # fmt: skip
        replies = await pipe.execute()
    out = []
    for reply in replies:
        units, air, where = [], [], []
        for member, dist, (ulon, ulat) in reply:
            units.append(member.decode() if isinstance(member, bytes) else str(member))
            air.append(float(dist))
            where.append((float(ulon), float(ulat)))
        out.append(Found(units, air, where))
    return out


def _pack(ranked: dict[str, Any], keep: int = 0) -> bytes:
    """The list as the Function reads it, its ``keep`` fastest units only (the Function rarely
    looks further; the rest would cost Redis time to unpack): then it holds every free unit
    only up to the last one kept."""
    if keep and len(ranked.get("u", ())) > keep:
        ranked = {k: v[:keep] for k, v in ranked.items() if k in ("u", "t", "d")} | {
            "b": min(ranked.get("b", math.inf), ranked["t"][keep - 1])
        }
    if "b" in ranked and not math.isfinite(ranked["b"]):
        ranked = {k: v for k, v in ranked.items() if k != "b"}
    return _ENCODER.encode(ranked)


def interleave(args: list[bytes], ranks: Sequence[bytes] | None) -> list[bytes]:
    """``pw_batch`` triples with each alarm's shortlist triple put in front of it; ``ranks``
    holds one list per alarm triple, in order (``None``: the triples as they are)."""
    if ranks is None:
        return args
    out: list[bytes] = []
    lists = iter(ranks)
    for i in range(0, len(args), 3):
        if args[i] == ALARM:
            out += (RANK, b"", next(lists))
        out += args[i : i + 3]
    return out
