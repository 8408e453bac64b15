"""The routable road network: snapping, one-to-many drive times, routes.

Costs. Each segment's weight packs its drive time and its length into one float64:
``ms * 2**24 + dm`` (time rounded to the millisecond, length to the decimetre, per segment).
Sums of such integers are exact below 2**53, so one Dijkstra gives the fastest path's time
(the high part) and that same path's road length (the low part, up to 1,677 km), ties in
time broken by the shorter road. Rounding adds at most 0.5 ms per segment.

Searches. ``drive_times_to`` runs one backward Dijkstra (scipy's, in C) from the target over
the reversed graph of junctions (:mod:`polewatch.roads.chains`: runs of plain bends are one
arc). The target lies part-way along a chain; a virtual node (the last row of the reversed
adjacency matrix) has arcs to the chain's ends weighted with the partial costs, rewritten in
place for each query (under a lock: one search at a time per network). A source's leg is its
off-road leg, the part of its own chain to the end it drives out of, and the search's
distance from that end (see :mod:`polewatch.roads.search`).

Thread safety: every method may be called from any thread; searches are serialised by a
lock. Each call is pure CPU for about a millisecond: call it directly from asyncio code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import msgspec
import numpy as np

from polewatch.geo import haversine_many
from polewatch.roads.graph import Arrays, local_xy
from polewatch.roads.profile import Profile
from polewatch.roads.search import AT_NODE_M, SHIFT, ChainSearch, Positions
from polewatch.roads.snapping import SegmentIndex
from polewatch.roads.table import TableSlot
from polewatch.roads.timing import timed_path

__all__ = ["AT_NODE_M", "MAX_OFFROAD_M", "SHIFT", "Drives", "Leg", "RoadNetwork", "Route", "Snap"]

MAX_OFFROAD_M = 1000.0
"""A point farther than this from every road does not snap (``None``)."""
Role = Literal["any", "source", "target"]
_ROLES = {"any": 0, "source": 1, "target": 2}
MAIN_SLACK_M = 100.0
"""A unit snaps to a road from which it can drive into the city's main network (its largest
strongly connected part), an alarm to one that can be driven to from there, rather than to
a nearer road that cannot (a stub cut off by the edge of the extract, a one-way piece that
leads nowhere), when that costs at most this much more off-road: the point would otherwise
be unreachable by road. Every unit so placed reaches every alarm so placed."""
SNAP_CACHE = 200_000
"""Points whose snap :meth:`RoadNetwork.drive_times_batch` remembers (about 40 MB)."""
_FORMAT = 1


class Snap(msgspec.Struct, frozen=True):
    """Where a point meets the road network: the nearest point of the nearest edge."""

    edge: int
    t: float
    """Fraction of the way from the edge's ``u`` to its ``v``."""
    lon: float
    lat: float
    offroad_m: float
    """Straight-line metres from the point to ``(lon, lat)``."""


class Leg(msgspec.Struct, frozen=True):
    """A drive: seconds and metres, off-road legs at the slow speed included."""

    time_s: float
    distance_m: float


class Drives(NamedTuple):
    """Many drives at once (:meth:`RoadNetwork.drive_times_batch`): per (place, unit) pair,
    seconds and metres (``inf`` where there is none); per place, whether it met the roads."""

    time_s: np.ndarray
    distance_m: np.ndarray
    placed: np.ndarray


class Route(msgspec.Struct, frozen=True):
    """A drive with its line, for drawing: ``path`` is ``[lon, lat]`` pairs from origin to
    destination; ``roads`` the names of the named ways along it, in order; ``times`` each
    path vertex's seconds from the origin, each road driven at its own speed (the last is
    ``time_s``; see :mod:`polewatch.roads.timing`)."""

    time_s: float
    distance_m: float
    path: list[tuple[float, float]]
    roads: list[str]
    times: list[float] = []


class RoadNetwork:
    """A city's road graph (see :mod:`polewatch.roads.graph` for what the arrays hold)."""

    def __init__(
        self,
        arrays: Arrays,
        *,
        profile: Profile,
        names: Sequence[str | None],
        highways: Sequence[str],
        city: str = "",
        version: int = 0,
    ) -> None:
        self.arrays = arrays
        self.profile = profile
        self.names = list(names)
        self.highways = list(highways)
        self.city = city
        self.version = version
        self.lon: np.ndarray = arrays["lon"]
        self.lat: np.ndarray = arrays["lat"]
        self.u: np.ndarray = arrays["u"].astype(np.int64)
        self.v: np.ndarray = arrays["v"].astype(np.int64)
        self.oneway: np.ndarray = arrays["oneway"]
        length, speed = arrays["length_m"], arrays["speed_mps"]
        ms = np.maximum(np.rint(length / speed * 1000.0), 0.0)
        dm = np.maximum(np.rint(length * 10.0), 1.0)
        self._search = ChainSearch(self.u, self.v, self.oneway, ms, dm, length, len(self.lon))
        self.offroad_mps = profile.offroad_kmh / 3.6
        self.fastest_mps = float(max(speed.max(initial=0.0), self.offroad_mps))
        """No drive is faster than the straight-line distance over this speed: every leg
        (road or off-road) is at least as long as the straight line and no faster. So a
        point farther by air than ``fastest_mps * t`` cannot be reached within ``t``."""
        self._lat0 = float(self.lat.mean()) if len(self.lat) else 0.0
        xy = local_xy(self.lon, self.lat, self._lat0)
        self._kx = float(local_xy(np.ones(1), np.zeros(1), self._lat0)[0, 0])
        self._ky = float(local_xy(np.zeros(1), np.ones(1), self._lat0)[0, 1])
        self._a, self._b = xy[self.u], xy[self.v]
        self._index = SegmentIndex(self._a, self._b)
        self._reach_mask = self._search.reach()
        self._reach = [np.flatnonzero(mask) for mask in self._reach_mask]
        self._reach_index = [SegmentIndex(self._a[r], self._b[r]) for r in self._reach]
        self._table = TableSlot(self._search)
        self._snaps: dict[tuple[float, float, int], tuple[int, float, float]] = {}

    @property
    def nodes(self) -> int:
        return len(self.lon)

    @property
    def edges(self) -> int:
        return len(self.u)

    @property
    def junctions(self) -> int:
        """Nodes the search visits (where roads meet or end)."""
        return self._search.chains.junctions

    # --- snapping ---------------------------------------------------------------------------
    def snap(self, lon: float, lat: float, role: Role = "any") -> Snap | None:
        """Where a point meets the roads, or ``None`` beyond :data:`MAX_OFFROAD_M`: the nearest
        point of the nearest edge; for a ``"source"`` (a unit) or a ``"target"`` (an alarm),
        the nearest edge that can drive into / be driven to from the main network, when that
        costs at most :data:`MAIN_SLACK_M` more (what ``drive_times_to`` and ``route`` use)."""
        roles = np.array([_ROLES[role]])
        points = np.array([[lon, lat]], dtype=np.float64)
        edge, t, plon, plat, off = self._snap_many(points, roles)
        if edge[0] < 0:
            return None
        return Snap(int(edge[0]), float(t[0]), float(plon[0]), float(plat[0]), float(off[0]))

    def _snap_many(self, points: np.ndarray, roles: np.ndarray) -> tuple[np.ndarray, ...]:
        """Edge (-1: none), fraction, snapped lon/lat and off-road metres of each point;
        ``roles``: 0 any, 1 source, 2 target (see :meth:`snap`)."""
        count = len(points)
        edge = np.full(count, -1, dtype=np.int64)
        finite = np.isfinite(points).all(axis=1)
        xy = np.column_stack([points[:, 0] * self._kx, points[:, 1] * self._ky])
        if finite.any() and self.edges:
            which = np.flatnonzero(finite)
            found, _, away = self._index.nearest(xy[which], MAX_OFFROAD_M * 1.01)
            edge[which] = found
            for role in (1, 2):  # points whose nearest road does not fit their role
                fits = self._reach_mask[role - 1][np.maximum(found, 0)]
                moved = (roles[which] == role) & (found >= 0) & ~fits
                reach, index = self._reach[role - 1], self._reach_index[role - 1]
                if not moved.any() or not len(reach):
                    continue
                alt, _, alt_away = index.nearest(xy[which[moved]], MAX_OFFROAD_M * 1.01)
                better = (alt >= 0) & (alt_away <= away[moved] + MAIN_SLACK_M)
                edge[which[moved]] = np.where(better, reach[np.maximum(alt, 0)], found[moved])
        ok = edge >= 0
        e = np.where(ok, edge, 0)
        a, d = self._a[e], self._b[e] - self._a[e]
        dd = np.maximum((d * d).sum(axis=1), 1e-12)
        t = np.clip(((xy - a) * d).sum(axis=1) / dd, 0.0, 1.0)
        t = np.where(ok, t, 0.0)
        px, py = a[:, 0] + t * d[:, 0], a[:, 1] + t * d[:, 1]
        plon, plat = px / self._kx, py / self._ky
        safe = np.where(finite[:, None], points, 0.0)  # inf/nan points do not snap, quietly
        off = haversine_many(safe[:, 0], safe[:, 1], plon, plat)
        edge[ok & ~(off <= MAX_OFFROAD_M)] = -1
        return edge, t, plon, plat, off

    def _snap_cached(self, points: np.ndarray, roles: np.ndarray) -> tuple[np.ndarray, ...]:
        """Edge, fraction and off-road metres of each point, as :meth:`_snap_many`, remembered
        by exact position and role: alarms come from poles and units stand still between
        batches, and a snap costs more than the rest of a drive (bounded: cleared when full)."""
        cache = self._snaps
        keys = list(zip(points[:, 0].tolist(), points[:, 1].tolist(), roles.tolist(),
                        strict=True))  # fmt: skip
        rows = [cache.get(k) for k in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            at = np.array(missing)
            edge, t, _, _, off = self._snap_many(points[at], roles[at])
            if len(cache) + len(missing) > SNAP_CACHE:
                cache.clear()
            for i, row in zip(missing, zip(edge.tolist(), t.tolist(), off.tolist(), strict=True),
                              strict=True):  # fmt: skip
                cache[keys[i]] = rows[i] = row
        table = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return table[:, 0].astype(np.int64), table[:, 1], table[:, 2]

    # --- searching ---------------------------------------------------------------------------
    def drive_times_to(
        self,
        target_lon: float,
        target_lat: float,
        sources: Sequence[tuple[float, float]],
        *,
        limit_s: float | None = None,
    ) -> list[Leg | None]:
        """The drive from each source ``(lon, lat)`` to the target; ``None`` where a point
        does not snap, the target cannot be reached, or the drive exceeds ``limit_s``."""
        if not sources:
            return []
        points = np.array([(target_lon, target_lat), *sources], dtype=np.float64).reshape(-1, 2)
        edge, t, _, _, off = self._snap_many(points, _target_then_sources(len(points)))
        if edge[0] < 0:
            return [None] * len(sources)
        pos = self._search.positions(np.maximum(edge, 0), t)
        target, others = _split(pos)
        limit = np.inf if limit_s is None else (limit_s * 1000.0 + 1.0) * SHIFT
        dist, _ = self._search.search(target, limit, predecessors=False)
        best = self._search.best(dist, target, others)[0]
        legs: list[Leg | None] = []
        for i, cost in enumerate(best.tolist()):
            if edge[i + 1] < 0 or cost == np.inf:
                legs.append(None)
                continue
            walk = float(off[0] + off[i + 1])
            time_s = (cost // SHIFT) / 1000.0 + walk / self.offroad_mps
            if limit_s is not None and time_s > limit_s:
                legs.append(None)
            else:
                legs.append(Leg(time_s, (cost % SHIFT) / 10.0 + walk))
        return legs

    def build_table(self) -> bool:
        """Build the junction-to-junction table :meth:`drive_times_batch` uses (about 0.4 s
        for Shenzhen: call it from a thread); ``False`` when the graph is too large for one
        (:data:`polewatch.roads.table.MAX_JUNCTIONS`). Idempotent and thread-safe."""
        return self._table.build() is not None

    @property
    def has_table(self) -> bool:
        """Whether :meth:`drive_times_batch` reads the table (else it searches per place)."""
        return self._table.table is not None

    def placed(self, points: np.ndarray) -> np.ndarray:
        """Per ``[lon, lat]`` row, whether an alarm there meets the roads (snaps as a
        ``"target"``; remembered like :meth:`drive_times_batch`'s snaps)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        edge = self._snap_cached(points, np.full(len(points), 2, dtype=np.int64))[0]
        return np.asarray(edge >= 0)

    def drive_times_batch(
        self,
        targets: np.ndarray,
        sources: np.ndarray,
        of: np.ndarray,
        source_of: np.ndarray | None = None,
    ) -> Drives:
        """Each source's drive to its target ``targets[of[i]]`` (arrays of ``[lon, lat]``
        rows; ``of`` an integer array, one entry per drive): the same drives as
        :meth:`drive_times_to`, with one snap for all the points and, once
        :meth:`build_table` ran, table look-ups instead of a search per place. With
        ``source_of``, drive ``i`` starts at ``sources[source_of[i]]`` (a unit listed for
        many places is snapped once)."""
        count = len(targets)
        points = np.concatenate([np.asarray(targets, dtype=np.float64).reshape(-1, 2),
                                 np.asarray(sources, dtype=np.float64).reshape(-1, 2)])  # fmt: skip
        roles = np.ones(len(points), dtype=np.int64)
        roles[:count] = 2
        edge, t, off = self._snap_cached(points, roles)
        placed = edge[:count] >= 0
        pos = self._search.positions(np.maximum(edge, 0), t)
        pick = slice(count, None) if source_of is None else count + np.asarray(source_of)
        there, here = Positions(*(a[:count] for a in pos)), Positions(*(a[pick] for a in pos))
        table = self._table.table
        if table is not None:
            cost = table.to_places(there, here, of)
        else:
            cost = np.full(len(of), np.inf)
            for p in np.unique(of[placed[of]]).tolist():
                mine = np.flatnonzero(of == p)
                target = Positions(*(a[p : p + 1] for a in there))
                dist, _ = self._search.search(target, np.inf, predecessors=False)
                cost[mine] = self._search.best(dist, target, Positions(*(a[mine] for a in here)))[0]
        ok = placed[of] & (edge[pick] >= 0) & np.isfinite(cost)
        cost = np.where(ok, cost, 0.0)
        walk = off[:count][of] + off[pick]
        time_s = np.where(ok, (cost // SHIFT) / 1000.0 + walk / self.offroad_mps, np.inf)
        return Drives(time_s, np.where(ok, (cost % SHIFT) / 10.0 + walk, np.inf), placed)

    def route(self, from_lon: float, from_lat: float, to_lon: float, to_lat: float
              ) -> Route | None:  # fmt: skip
        """The fastest drive and its line, or ``None`` when one end does not snap or the
        destination cannot be reached."""
        points = np.array([(to_lon, to_lat), (from_lon, from_lat)], dtype=np.float64)
        edge, t, plon, plat, off = self._snap_many(points, _target_then_sources(2))
        if edge[0] < 0 or edge[1] < 0:
            return None
        target, source = _split(self._search.positions(edge, t))
        dist, pred = self._search.search(target, np.inf, predecessors=True)
        assert pred is not None
        best, how = self._search.best(dist, target, source)
        if best[0] == np.inf:
            return None
        segments, nodes = self._search.path(target, source, int(how[0]), pred)
        line = [(from_lon, from_lat), (float(plon[1]), float(plat[1]))]
        line += [(float(self.lon[n]), float(self.lat[n])) for n in nodes]
        line += [(float(plon[0]), float(plat[0])), (to_lon, to_lat)]
        speeds = self.arrays["speed_mps"][np.asarray(segments, dtype=np.int64)].tolist()
        walk = float(off[0] + off[1])
        road_s = (best[0] // SHIFT) / 1000.0
        path, times = timed_path(line, [self.offroad_mps, *speeds, self.offroad_mps], road_s)
        return Route(
            time_s=road_s + walk / self.offroad_mps,
            distance_m=(best[0] % SHIFT) / 10.0 + walk,
            path=path,
            roads=self._road_names(segments),
            times=times,
        )

    def _road_names(self, segments: list[int]) -> list[str]:
        names: list[str] = []
        for e in segments:
            name = self.names[int(self.arrays["way"][e])]
            if name and (not names or names[-1] != name):
                names.append(name)
        return names

    # --- storage ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The network as one MessagePack blob (see :meth:`from_bytes`)."""
        arrays = {k: [str(a.dtype), list(a.shape), a.tobytes()] for k, a in self.arrays.items()}
        return msgspec.msgpack.encode(
            {"format": _FORMAT, "profile": self.profile, "names": self.names,
             "highways": self.highways, "arrays": arrays}
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, blob: bytes, *, city: str = "", version: int = 0) -> RoadNetwork:
        """Rebuild a network written by :meth:`to_bytes` (``ValueError`` if it is not one)."""
        try:
            doc = msgspec.msgpack.decode(blob)
            if doc["format"] != _FORMAT:
                raise ValueError(f"road graph format {doc['format']!r}, expected {_FORMAT}")
            arrays = Arrays(
                {k: np.frombuffer(raw, dtype=np.dtype(dt)).reshape(shape).copy()
                 for k, (dt, shape, raw) in doc["arrays"].items()}
            )  # fmt: skip
            profile = msgspec.convert(doc["profile"], Profile)
            return cls(arrays, profile=profile, names=doc["names"], highways=doc["highways"],
                       city=city, version=version)  # fmt: skip
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
            raise ValueError(f"not a road graph: {exc}") from None


def _target_then_sources(count: int) -> np.ndarray:
    roles = np.ones(count, dtype=np.int64)
    roles[0] = 2
    return roles


def _split(pos: Any) -> tuple[Any, Any]:
    """The first position (the target) and the others, as positions."""
    return type(pos)(*(a[:1] for a in pos)), type(pos)(*(a[1:] for a in pos))
