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

import asyncio
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
        self.radii = settings.radii()
        self._step = 0
        """The step of :attr:`radii` the first search of a batch starts at."""
        self.expire_batch = settings.expire_batch
        self._cells: tuple[RoadNetwork, set[int]] | None = None
        self.counts: Counter[str] = Counter()
        """Lists made since start: :data:`ROAD`, or the reason the graph could not answer."""
        self.escalated_batch = settings.escalated_batch

    async def refresh(self, client: aioredis.Redis) -> None:
        """Load the city's road graph when it changed (``polewatch roads import``): one GET
        while it has not. A graph that cannot be read leaves the last one in use; a new one
        is used once its junction table is built (:meth:`RoadNetwork.build_table`)."""
        if not self.enabled:
            return
        try:
            network = await load_roads(client, self.city)
        except ValueError as exc:
            log.warning("road graph of %r unreadable (%s); keeping the one in use", self.city, exc)
            return
        if network is not self.network and network is not None:
            # The junction table (0.4 s for Shenzhen) is built off the event loop; the graph
            # in use, if any, keeps serving until it is ready.
            table = await asyncio.to_thread(network.build_table)
            log.info(
                "road graph of %r version %s loaded (%s)",
                self.city,
                network.version,
                "junction table" if table else "search per place: too large for a table",
            )
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
        if on:  # a place that does not meet the roads needs no search
            meets = net.placed(np.array([places[i] for i in on], dtype=np.float64)).tolist()
            on = [i for i, ok in zip(on, meets, strict=True) if ok]
        first = await self._nearest(client, zone, [places[i] for i in on])
        # Ranked first, widened then only as far as the best drive proves needed: a search's
        # cost in Redis grows with its radius, a ranking (junction table) costs microseconds.
        wider: dict[int, float] = {}
        now = [Job(i, found, self.shortlist, self.max_radius_m)
               for i, found in zip(on, first, strict=True)]  # fmt: skip
        self._rank_all(net, places, now, lists, wider)
        for _ in range(2):  # the radius the best drive proved needed (rarely twice)
            if not wider:
                break
            at, radii = list(wider), list(wider.values())
            more = await _search(client, zone, [places[i] for i in at], radii, self.shortlist_max)
            wider = {}
            jobs = [Job(i, found, self.shortlist_max, radius)
                    for i, radius, found in zip(at, radii, more, strict=True)]  # fmt: skip
            self._rank_all(net, places, jobs, lists, wider)
        self.counts.update(ranked.get("why", ROAD) for ranked in lists)
        return [_pack(ranked, self.shortlist) for ranked in lists]

    async def _nearest(
        self, client: aioredis.Redis, zone: keys.Zone, places: Sequence[tuple[float, float]]
    ) -> list[Found]:
        """The ``shortlist`` free units nearest by air to each place (within the maximum
        radius), by expanding steps (:meth:`DispatcherSettings.radii`): a search's cost in
        Redis grows with the units in its radius (30 km: about 430 us with 4,400 units on
        duty, 1 km: 9 us). The first step is the one most places of the last batch needed."""
        found: list[Found] = [Found([], [], [])] * len(places)
        todo = list(range(len(places)))
        ended: list[int] = []
        for step in range(self._step, len(self.radii)):
            radius, last = self.radii[step], step == len(self.radii) - 1
            more = await _search(client, zone, [places[i] for i in todo], radius, self.shortlist)
            left = []
            for i, got in zip(todo, more, strict=True):
                if last or len(got.units) >= self.shortlist:
                    found[i] = got
                    ended.append(step)
                else:
                    left.append(i)
            todo = left
            if not todo:
                break
        if ended:
            self._step = sorted(ended)[len(ended) // 2]
        return found

    def _rank_all(
        self,
        net: RoadNetwork,
        places: Sequence[tuple[float, float]],
        jobs: list[Job],
        lists: list[dict[str, Any]],
        wider: dict[int, float],
    ) -> None:
        """Rank each job's units by drive time into ``lists[job.place]`` (all drives of all
        jobs at once: :meth:`RoadNetwork.drive_times_batch`) and set the list's bound ``b``:
        the drive time up to which it holds every free unit (``job.found`` is a search of
        ``job.wanted`` units within ``job.radius``). When the best drive is slower than that
        and a wider search can help, ``wider[place]`` gets the radius the best drive needs."""
        if not jobs:
            return
        targets = np.array([places[job.place] for job in jobs], dtype=np.float64)
        sources = [p for job in jobs for p in job.found.places]
        sizes = [len(job.found.units) for job in jobs]
        of = np.repeat(np.arange(len(jobs)), sizes)
        drives = net.drive_times_batch(targets, np.array(sources, dtype=np.float64), of)
        times, metres = drives.time_s.tolist(), drives.distance_m.tolist()
        placed = drives.placed.tolist()
        start = 0
        for k, (job, size) in enumerate(zip(jobs, sizes, strict=True)):
            found, end = job.found, start + size
            ranked = _order(found, times[start:end], metres[start:end], placed[k], net)
            start = end
            full = size >= job.wanted
            ranked["b"] = (found.air_m[-1] if full else job.radius) / net.fastest_mps
            best = ranked["t"][0] if ranked.get("t") else None
            can_widen = job.wanted < self.shortlist_max if full else job.radius < self.max_radius_m
            if best is not None and ranked["b"] < best and can_widen:
                wider[job.place] = min(net.fastest_mps * best, self.max_radius_m)
            lists[job.place] = ranked

    def _on_map(self, net: RoadNetwork, lon: float, lat: float) -> bool:
        """Whether a place may meet the roads: in a cell of :func:`_near_roads` (most of a city
        may lie far from the graph's roads, and a snap costs as much as a search)."""
        if self._cells is None or self._cells[0] is not net:
            self._cells = (net, _near_roads(net))
        return _cell(lon, lat) in self._cells[1]


class Job(NamedTuple):
    """Units found near a place, to rank: a search of ``wanted`` units within ``radius``."""

    place: int
    found: Found
    wanted: int
    radius: float


def _order(
    found: Found, times: list[float], metres: list[float], placed: bool, net: RoadNetwork
) -> dict[str, Any]:
    """The units of ``found`` by drive time, fastest first, or why there is no list. Only
    drives within a bound that a unit farther by air can hardly beat count, unless none is
    (a far or badly linked place): the list then holds every unit that can drive there."""
    if not found.units:
        return {"u": [], "t": [], "d": []}
    if not placed:
        return {"why": OFF_ROAD}
    limit = found.air_m[-1] / min(net.fastest_mps, _USUAL_MPS) + 300.0
    legs = [(t, d, u) for t, d, u in zip(times, metres, found.units, strict=True) if t <= limit]
    if not legs:
        legs = [(t, d, u) for t, d, u in zip(times, metres, found.units, strict=True)
                if t < math.inf]  # fmt: skip
    if not legs:
        return {"why": UNREACHABLE}
    legs.sort()
    return {
        "u": [unit for _, _, unit in legs],
        "t": [round(t, 1) for t, _, _ in legs],
        "d": [round(d, 1) for _, d, _ in legs],
    }


_NEAREST = """
local out, count = {}, ARGV[1]
for i = 2, #ARGV, 3 do
  out[#out + 1] = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[i], ARGV[i + 1],
    'BYRADIUS', ARGV[i + 2], 'm', 'ASC', 'COUNT', count, 'WITHDIST', 'WITHCOORD')
end
return cmsgpack.pack(out)
"""
"""The searches of a batch in one script, their replies as one MessagePack blob: redis-py
packs and parses each pipelined command in Python (about 150 us a search of this shape)."""
_FOUND = msgspec.msgpack.Decoder(list[list[tuple[str, float, tuple[float, float]]]],
                                 strict=False)  # fmt: skip


async def _search(
    client: aioredis.Redis,
    zone: keys.Zone,
    places: Sequence[tuple[float, float]],
    radius_m: float | Sequence[float],
    count: int,
) -> list[Found]:
    """The free units nearest by air to each place within its radius, one round trip."""
    if not places:
        return []
    radii = [radius_m] * len(places) if isinstance(radius_m, int | float) else list(radius_m)
    args: list[float] = [count]
    for (lon, lat), radius in zip(places, radii, strict=True):
        args += (lon, lat, max(radius, 0.01))
    blob = await client.register_script(_NEAREST)(keys=[zone.units_free_geo], args=args)
    out = []
    for reply in _FOUND.decode(blob):
        units = [member for member, _, _ in reply]
        out.append(Found(units, [d for _, d, _ in reply], [p for _, _, p in reply]))
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
