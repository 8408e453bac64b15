"""Dispatch by drive time: each alarm's road shortlist, made before the Redis Function runs.

The Function claims units atomically but cannot route, so the replica ranks for it. For each
place (an alarm's, or a waiting incident's in the timer) it takes the free units nearest by air
(up to ``shortlist_max``, within ``max_radius_m``) and asks the road network for their drive
times to the place. No drive beats the straight line at ``fastest_mps``, so a unit farther by
air than the last one found cannot arrive sooner than that distance at that speed: the list is
proven complete up to that time. The ``shortlist`` fastest, fastest first, go to the Function
with the alarm, which claims the first unit still free and eligible (on duty, fresh position,
capability, grid preference in seconds); a unit claimed since the list was made is skipped.

The searches by air run in the replica's copy of the zone's free set
(:mod:`dispatcher.freeunits`), read again once it is ``free_units_refresh_ms`` old. Each reply
of the Function names the units it took off the free set; they are masked in the copy (and
dropped from lists made before the reply came: :mod:`dispatcher.shortlist`). A unit taken by
another replica is one the Function skips; a unit freed since the read is missing from the
lists until the next one.

The list carries ``b``, the drive time up to which it holds every unit free at the read: a
choice slower than that (its faster units were taken or ineligible) is still made by road, and
the audit says it was not proven fastest. Where the graph cannot answer (no graph, a place off
the roads, no unit reachable by road) the list says why and the Function falls back to the
straight-line search, auditing the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import weakref
from collections import Counter
from collections.abc import Sequence

import msgspec
import numpy as np
import redis.asyncio as aioredis

from dispatcher import freeunits
from dispatcher.freeunits import FreeUnits, Nearby
from dispatcher.library import ALARM
from dispatcher.settings import DispatcherSettings
from dispatcher.shortlist import RANK as RANK
from dispatcher.shortlist import Ranked, Shortlists
from dispatcher.shortlist import interleave as interleave
from polewatch import keys
from polewatch.roads import RoadNetwork, load_roads

log = logging.getLogger("polewatch.dispatcher")

ROAD: str = "road"
"""The count of lists ranked by road (:attr:`Ranker.counts`; the others count by reason)."""
NO_GRAPH: str = "no road graph"
OFF_ROAD: str = "the place is off the road graph"
UNREACHABLE: str = "no free unit reachable by road"

_USUAL_MPS = 5.0
"""A slow city average (lights, turns): shortlists are sized for drives no slower."""
_ENCODER = msgspec.msgpack.Encoder()


class _Place(msgspec.Struct):
    """Where an alarm is (the rest of it, already validated, is the Function's)."""

    lon: float
    lat: float


_PLACE = msgspec.msgpack.Decoder(_Place)


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
        self.escalated_batch = settings.escalated_batch
        self.refresh_s = settings.free_units_refresh_ms / 1000.0
        self._free: dict[str, FreeUnits] = {}
        """Each zone's copy of its free set (:mod:`dispatcher.freeunits`)."""
        self._copies: dict[str, weakref.WeakSet[FreeUnits]] = {}
        """Every copy of a zone still in use (the one held, those lists not yet sent refer to):
        each is told the units the Function took."""
        self._reading: dict[str, asyncio.Future[FreeUnits]] = {}
        self._hearing: dict[str, list[list[bytes | str]]] = {}
        """Per zone, for each read under way, the units the Function took meanwhile."""
        self._cells: tuple[RoadNetwork, np.ndarray] | None = None
        self.counts: Counter[str] = Counter()
        """Lists made since start: :data:`ROAD`, or the reason the graph could not answer."""

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
            await asyncio.to_thread(self._on_map, network, np.zeros((0, 2)))
            # What the replica holds for good now (graph, table, modules, caches) is moved out
            # of the cyclic collector's sight: else each full collection scans it again, a
            # pause of 15-50 ms (170 ms measured on a loaded machine) in the middle of a batch.
            gc.collect()
            gc.freeze()
        self.network = network

    def claimed(self, zone: str, units: Sequence[bytes | str]) -> None:
        """The Function answered a call in ``zone`` that took ``units`` off the free set
        (:func:`library.left_free`): the zone's copies of the free set stop listing them."""
        if not units:
            return
        for copy in self._copies.get(zone, ()):
            copy.take(units)
        for heard in self._hearing.get(zone, ()):
            heard.extend(units)

    async def arguments(
        self, client: aioredis.Redis, zone: keys.Zone, args: list[bytes]
    ) -> list[bytes]:
        """``pw_batch`` triples with each alarm's shortlist put in front of it."""
        return (await self.ranked(client, zone, args)).arguments()

    async def ranked(
        self,
        client: aioredis.Redis,
        zone: keys.Zone,
        args: list[bytes],
        places: list[tuple[float, float]] | None = None,
        *,
        in_flight: bool = False,
    ) -> Ranked:
        """``pw_batch`` triples with each alarm's shortlist, to be put together when the call
        is made (:meth:`Ranked.arguments`: units taken meanwhile are left out). ``places``:
        each alarm's, in order, when known (else read from the alarms). ``in_flight``: a call
        in this zone is under way (see :meth:`shortlists`)."""
        if places is None:
            places = []
            for i in range(0, len(args), 3):
                if args[i] == ALARM:
                    at = _PLACE.decode(args[i + 2])
                    places.append((at.lon, at.lat))
        lists = await self.shortlists(client, zone, places, in_flight) if places else None
        return Ranked(args, lists)

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
        lists = await self.shortlists(client, zone, places)
        return None if lists is None else lists.packed()

    async def shortlists(
        self,
        client: aioredis.Redis,
        zone: keys.Zone,
        places: Sequence[tuple[float, float]],
        in_flight: bool = False,
    ) -> Shortlists | None:
        """The shortlist of each place, packed when sent (``None``: drive time is off).
        ``in_flight``: a call in this zone is under way, so an old copy is not read again
        before ranking (the read would wait behind that call; the loop asks for one before
        each call, which keeps the copy fresh while calls follow each other)."""
        if not self.enabled:
            return None
        net = self.network
        if net is None:
            self.counts[NO_GRAPH] += len(places)
            return Shortlists([_NO_GRAPH_PACKED] * len(places))
        points = np.asarray(places, dtype=np.float64).reshape(-1, 2)
        on = np.flatnonzero(self._on_map(net, points))
        if len(on):  # a place that does not meet the roads needs no search
            on = on[net.placed(points[on])]
        self.counts[OFF_ROAD] += len(places) - len(on)
        if not len(on):
            return Shortlists([_OFF_ROAD_PACKED] * len(places))
        free = await self._free_units(client, zone, in_flight)
        lists = Shortlists([_OFF_ROAD_PACKED] * len(places), free, self.shortlist)
        # Searching the copy costs about the same for 12 units as for 64: every place takes
        # the most it may rank at once (no second, wider search); the units taken since the
        # lists were made leave them when they are sent.
        found = free.nearest(points[on], self.shortlist_max, self.max_radius_m)
        self._rank_all(net, points, on, free, found, lists)
        return lists

    async def _free_units(
        self, client: aioredis.Redis, zone: keys.Zone, in_flight: bool = False
    ) -> FreeUnits:
        """The zone's copy of its free set: read now the first time; then, once it is
        ``refresh_s`` old, read again in the background while it keeps serving (a read of
        thousands of units takes milliseconds: no batch should wait for it). A copy that
        is ``refresh_s`` old when no call is ``in_flight`` and no read under way (an idle
        spell: nothing asked for one) is read again now: else the first batch after a
        quiet minute would be ranked on units free a minute ago."""
        name = zone.name
        reading = self._reading.get(name)
        if reading is not None and reading.done():
            del self._reading[name]
            copy = None if reading.cancelled() or reading.exception() else reading.result()
            held = self._free.get(name)
            if copy is not None and (held is None or copy.read_at > held.read_at):
                self._free[name] = copy
        held = self._free.get(name)
        if held is None or (
            not in_flight
            and name not in self._reading
            and time.monotonic() - held.read_at >= self.refresh_s
        ):
            held = self._free[name] = await self._read(client, zone)
        self.read_if_due(client, zone)
        return held

    def read_if_due(self, client: aioredis.Redis, zone: keys.Zone) -> None:
        """Start reading the zone's copy again, in the background, if it is ``refresh_s``
        old (the replica asks right before a call: Redis answers the read before the call)."""
        held = self._free.get(zone.name)
        if held is None or zone.name in self._reading:
            return
        if time.monotonic() - held.read_at >= self.refresh_s:
            self._reading[zone.name] = asyncio.ensure_future(self._read(client, zone))

    async def _read(self, client: aioredis.Redis, zone: keys.Zone) -> FreeUnits:
        """A new copy of the zone's free set; the units the Function reported taken while it
        was read are masked in it (they may be in it, if the read ran first: safe)."""
        heard: list[bytes | str] = []
        hearing = self._hearing.setdefault(zone.name, [])
        hearing.append(heard)
        try:
            copy = await freeunits.read(client, zone)
        finally:
            hearing[:] = [h for h in hearing if h is not heard]
        copy.take(heard)
        self._copies.setdefault(zone.name, weakref.WeakSet()).add(copy)
        return copy

    async def close(self) -> None:
        """Stop the reads under way (the replica stops)."""
        for task in self._reading.values():
            task.cancel()
        for task in self._reading.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reading.clear()

    def _rank_all(
        self,
        net: RoadNetwork,
        points: np.ndarray,
        at: np.ndarray,
        free: FreeUnits,
        found: Nearby,
        lists: Shortlists,
    ) -> None:
        """Rank the units found near each place ``at[i]`` by drive time into ``lists`` (all
        drives at once: :meth:`RoadNetwork.drive_times_batch`) and set each list's bound ``b``:
        the drive time up to which it holds every free unit: the last unit's distance by air
        at ``fastest_mps`` when ``found.wanted`` units were found, else the radius searched.
        The best drive is often slower than that (a full list of the nearest 64 units within
        a few km); the Function then audits a choice slower than ``b`` as not proven."""
        valid = found.member < len(free)
        rows = np.nonzero(valid)[0]
        # A unit near many places of the batch is snapped once.
        units, source_of = np.unique(found.member[valid], return_inverse=True)
        sources = np.stack([free.lon[units], free.lat[units]], axis=1)
        drives = net.drive_times_batch(points[at], sources, rows, source_of)
        times: np.ndarray = np.full(valid.shape, np.inf)
        metres: np.ndarray = np.full(valid.shape, np.inf)
        times[valid], metres[valid] = drives.time_s, drives.distance_m
        # Only drives within a bound that a unit farther by air can hardly beat count, unless
        # none is (a far or badly linked place): the list then holds every unit that can drive.
        size = valid.sum(axis=1)
        last = found.air_m[np.arange(len(at)), np.maximum(size - 1, 0)]
        limit = last / min(net.fastest_mps, _USUAL_MPS) + 300.0
        legs = times <= limit[:, None]
        legs = np.where(legs.any(axis=1)[:, None], legs, np.isfinite(times))
        times, metres = np.where(legs, times, np.inf), np.where(legs, metres, np.inf)
        order = np.lexsort((metres, times))  # each row by drive time, then road metres
        times = np.take_along_axis(times, order, axis=1)
        metres = np.take_along_axis(metres, order, axis=1)
        unit: np.ndarray = np.take_along_axis(found.member, order, axis=1)
        counted = legs.sum(axis=1)
        full = size >= found.wanted
        bound = np.where(full, last, found.radius) / net.fastest_mps
        t_round, d_round = np.round(times, 1).tolist(), np.round(metres, 1).tolist()
        for i, place in enumerate(at.tolist()):
            if not size[i]:
                lists.set(place, _EMPTY_PACKED)  # nobody free within the radius
                self.counts[ROAD] += 1
            elif not drives.placed[i]:
                self.counts[OFF_ROAD] += 1
            elif not counted[i]:
                lists.set(place, _UNREACHABLE_PACKED)
                self.counts[UNREACHABLE] += 1
            else:
                n = int(counted[i])
                lists.add(place, unit[i, :n], t_round[i][:n], d_round[i][:n], float(bound[i]))
                self.counts[ROAD] += 1

    def _on_map(self, net: RoadNetwork, points: np.ndarray) -> np.ndarray:
        """Per place, whether it may meet the roads: in a cell of :func:`_near_roads` (most of
        a city may lie far from the graph's roads, and a snap costs as much as a search)."""
        if self._cells is None or self._cells[0] is not net:
            self._cells = (net, _near_roads(net))
        cells, mine = self._cells[1], _cells(points)  # cells: sorted
        if not len(cells):
            return np.zeros(len(mine), dtype=bool)
        return np.asarray(cells[np.searchsorted(cells, mine).clip(0, len(cells) - 1)] == mine)


_CELL_DEG = 0.005
"""Cells of about 500 m (Shenzhen's latitude) for :func:`_near_roads`."""


def _cells(points: np.ndarray) -> np.ndarray:
    ix = np.floor(points[:, 0] / _CELL_DEG).astype(np.int64)
    return ix * 1_000_000 + np.floor(points[:, 1] / _CELL_DEG).astype(np.int64)


def _near_roads(net: RoadNetwork) -> np.ndarray:
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
    return np.unique(cells)


_OFF_ROAD_PACKED = _ENCODER.encode({"why": OFF_ROAD})
"""Most places of a city may lie off the graph's roads: their list is packed once."""
_NO_GRAPH_PACKED = _ENCODER.encode({"why": NO_GRAPH})
_UNREACHABLE_PACKED = _ENCODER.encode({"why": UNREACHABLE})
_EMPTY_PACKED = _ENCODER.encode({"u": [], "t": [], "d": []})
