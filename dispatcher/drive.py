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
import numpy as np
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

_USUAL_MPS = 5.0
"""A slow city average (lights, turns): shortlists are sized for drives no slower."""
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
        self._cells: tuple[RoadNetwork, set[int]] | None = None
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
        # The nearest by air drives there in about air / 5 m/s + 1 min, so the best is most
        # likely no slower: every unit that could beat that is within `guess` (one search and
        # one ranking per place; the list's `b` says how far it proved to be complete).
        wider: dict[int, float] = {}
        for i, found in zip(on, first, strict=True):
            guess = net.fastest_mps * (found.air_m[0] / _USUAL_MPS + 60.0) if found.air_m else 0
            if len(found.units) < self.shortlist or found.air_m[-1] >= guess:
                lists[i] = self._ranked(net, i, places[i], found, self.shortlist, wider)
            else:
                wider[i] = min(guess, self.max_radius_m)
        for _ in range(2):  # the guess, then (rarely) the radius the best drive proved needed
            if not wider:
                break
            at, radii = list(wider), list(wider.values())
            more = await _search(client, zone, [places[i] for i in at], radii, self.shortlist_max)
            wider = {}
            for i, radius, found in zip(at, radii, more, strict=True):
                lists[i] = self._ranked(net, i, places[i], found, self.shortlist_max, wider, radius)
        self.counts.update(ranked.get("why", ROAD) for ranked in lists)
        return [_pack(ranked, self.shortlist) for ranked in lists]

    def _ranked(
        self,
        net: RoadNetwork,
        i: int,
        place: tuple[float, float],
        found: Found,
        count: int,
        wider: dict[int, float],
        radius: float | None = None,
    ) -> dict[str, Any]:
        """Rank ``found`` (a search of ``count`` units within ``radius``, default the maximum)
        and set its bound ``b``: the drive time up to which it holds every free unit. When the
        best drive is slower than that and a wider search can help, ``wider[i]`` gets the
        radius the best drive needs."""
        ranked = self._drive(net, *place, found)
        radius = self.max_radius_m if radius is None else radius
        full = len(found.units) >= count
        ranked["b"] = (found.air_m[-1] if full else radius) / net.fastest_mps
        best = ranked["t"][0] if ranked.get("t") else None
        can_widen = count < self.shortlist_max if full else radius < self.max_radius_m
        if best is not None and ranked["b"] < best and can_widen:
            wider[i] = min(net.fastest_mps * best, self.max_radius_m)
        return ranked

    def _on_map(self, net: RoadNetwork, lon: float, lat: float) -> bool:
        """Whether a place may meet the roads: in a cell of :func:`_near_roads` (most of a city
        may lie far from the graph's roads, and a snap costs as much as a search)."""
        if self._cells is None or self._cells[0] is not net:
            self._cells = (net, _near_roads(net))
        return _cell(lon, lat) in self._cells[1]

    def _drive(
        self, net: RoadNetwork, lon: float, lat: float, found: Found, limit: float | None = None
    ) -> dict[str, Any]:
        """The units of ``found`` that can drive to the place within ``limit`` s, fastest
        first."""
        if not found.units:
            return {"u": [], "t": [], "d": []}
        # A bound that spares most of the graph: a unit slower than it is slower than one
        # that made it; when none made it, ask again without (a far or badly linked place).
        limit = limit or found.air_m[-1] / min(net.fastest_mps, _USUAL_MPS) + 300.0
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


_CELL_DEG = 0.005
"""Cells of about 500 m (Shenzhen's latitude) for :func:`_near_roads`."""


def _cell(lon: float, lat: float) -> int:
    return int(math.floor(lon / _CELL_DEG)) * 1_000_000 + int(math.floor(lat / _CELL_DEG))


def _near_roads(net: RoadNetwork) -> set[int]:
    """The cells within about 1.5 km of a road of ``net`` (points every 250 m along its edges,
    three cells around each): a place in no such cell is more than 1 km from every road."""
    length = net.arrays["length_m"]
    steps = np.ceil(length / 250.0).astype(np.int64) + 1
    edge = np.repeat(np.arange(len(length)), steps)
    start = np.cumsum(steps) - steps
    frac = (np.arange(len(edge)) - np.repeat(start, steps)) / np.maximum(steps[edge] - 1, 1)
    lon = net.lon[net.u[edge]] * (1 - frac) + net.lon[net.v[edge]] * frac
    lat = net.lat[net.u[edge]] * (1 - frac) + net.lat[net.v[edge]] * frac
    ix, iy = np.floor(lon / _CELL_DEG).astype(np.int64), np.floor(lat / _CELL_DEG).astype(np.int64)
    near = np.arange(-3, 4)
    cells = (ix[:, None, None] + near[None, :, None]) * 1_000_000 + (iy[:, None, None] + near)
    return set(np.unique(cells).tolist())


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
