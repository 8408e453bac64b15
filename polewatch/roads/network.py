"""The routable road network: snapping, one-to-many drive times, routes.

Costs. Each arc's weight packs its drive time and its length into one float64:
``ms * 2**24 + dm`` (time rounded to the millisecond, length to the decimetre, per arc).
Sums of such integers are exact below 2**53, so one Dijkstra gives the fastest path's time
(the high part) and that same path's road length (the low part, up to 1,677 km), ties in
time broken by the shorter road. Rounding adds at most 0.5 ms per arc.

Searches. ``drive_times_to`` runs one backward Dijkstra (scipy's, in C) from the target over
the reversed graph. The target lies part-way along an edge; a virtual node (the last row of
the reversed adjacency matrix) has arcs to the ends of that edge weighted with the partial
costs, rewritten in place for each query (under a lock: one search at a time per network).
A source's leg is its off-road leg, the part of its own edge to the end it drives out of,
and the search's distance from that end.

Thread safety: every method may be called from any thread; searches are serialised by a
lock. Each call is pure CPU for about a millisecond: call it directly from asyncio code.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from polewatch.roads.graph import Arrays, haversine_arr, local_xy
from polewatch.roads.profile import Profile

SHIFT = float(2**24)
"""Weight = milliseconds * SHIFT + decimetres (see the module doc)."""
MAX_OFFROAD_M = 1000.0
"""A point farther than this from every road does not snap (``None``)."""
AT_NODE_M = 1.0
"""A point this close to a node is at the node: it may leave (or reach) it by any of the
node's edges, even against the one-way edge it snapped to."""
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


class Route(msgspec.Struct, frozen=True):
    """A drive with its line, for drawing: ``path`` is ``[lon, lat]`` pairs from origin to
    destination; ``roads`` the names of the named ways along it, in order."""

    time_s: float
    distance_m: float
    path: list[tuple[float, float]]
    roads: list[str]


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
        self._ms = np.maximum(np.rint(length / speed * 1000.0), 0.0)
        self._dm = np.maximum(np.rint(length * 10.0), 1.0)
        self._length = length
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
        self._tree = shapely.STRtree(shapely.linestrings(np.stack([self._a, self._b], axis=1)))
        self._graph, self._arc_edge = self._reversed_matrix()
        self._lock = threading.Lock()

    @property
    def nodes(self) -> int:
        return len(self.lon)

    @property
    def edges(self) -> int:
        return len(self.u)

    # --- building ---------------------------------------------------------------------------
    def _reversed_matrix(self) -> tuple[csr_matrix, np.ndarray]:
        n = self.nodes
        both = ~self.oneway
        edge = np.concatenate([np.arange(self.edges), np.flatnonzero(both)])
        tail = np.concatenate([self.u, self.v[both]])  # forward arc tail -> head
        head = np.concatenate([self.v, self.u[both]])
        weight = self._ms[edge] * SHIFT + self._dm[edge]
        # reversed graph: row = head, column = tail; parallel arcs keep the cheapest
        order = np.lexsort((weight, tail, head))
        key = head[order] * (n + 1) + tail[order]
        keep = order[np.concatenate([[True], key[1:] != key[:-1]])] if len(order) else order
        rows, cols = head[keep], tail[keep]
        counts = np.bincount(rows, minlength=n + 1)
        counts[n] = 2  # the virtual target's two arcs, rewritten per search
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices = np.concatenate([cols, [n, n]]).astype(np.int32)
        data = np.concatenate([weight[keep], [1.0, 1.0]])
        graph = csr_matrix((data, indices, indptr.astype(np.int32)), shape=(n + 1, n + 1))
        return graph, edge[keep]

    # --- snapping ---------------------------------------------------------------------------
    def snap(self, lon: float, lat: float) -> Snap | None:
        """The nearest point on the nearest edge, or ``None`` beyond :data:`MAX_OFFROAD_M`."""
        edge, t, plon, plat, off = self._snap_many(np.array([[lon, lat]], dtype=np.float64))
        if edge[0] < 0:
            return None
        return Snap(int(edge[0]), float(t[0]), float(plon[0]), float(plat[0]), float(off[0]))

    def _snap_many(self, points: np.ndarray) -> tuple[np.ndarray, ...]:
        """Edge (-1: none), fraction, snapped lon/lat and off-road metres of each point."""
        count = len(points)
        edge = np.full(count, -1, dtype=np.int64)
        finite = np.isfinite(points).all(axis=1)
        xy = np.column_stack([points[:, 0] * self._kx, points[:, 1] * self._ky])
        if finite.any() and self.edges:
            which = np.flatnonzero(finite)
            hit = self._tree.query_nearest(
                shapely.points(xy[which]), max_distance=MAX_OFFROAD_M * 1.01, all_matches=False
            )
            edge[which[hit[0]]] = hit[1]
        ok = edge >= 0
        e = np.where(ok, edge, 0)
        a, d = self._a[e], self._b[e] - self._a[e]
        dd = np.maximum((d * d).sum(axis=1), 1e-12)
        t = np.clip(((xy - a) * d).sum(axis=1) / dd, 0.0, 1.0)
        t = np.where(ok, t, 0.0)
        px, py = a[:, 0] + t * d[:, 0], a[:, 1] + t * d[:, 1]
        plon, plat = px / self._kx, py / self._ky
        off = haversine_arr(points[:, 0], points[:, 1], plon, plat)
        edge[ok & ~(off <= MAX_OFFROAD_M)] = -1
        return edge, t, plon, plat, off

    # --- searching --------------------------------------------------------------------------
    def _cost(self, e: Any, frac: Any) -> Any:
        return np.rint(self._ms[e] * frac) * SHIFT + np.rint(self._dm[e] * frac)

    def _search(
        self, e: int, t: float, limit: float, predecessors: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Reversed Dijkstra from a target at fraction ``t`` of edge ``e``."""
        n = self.nodes
        entries = [(int(self.u[e]), max(float(self._cost(e, t)), 1.0))]
        if not self.oneway[e] or (1.0 - t) * self._length[e] <= AT_NODE_M:
            entries.append((int(self.v[e]), max(float(self._cost(e, 1.0 - t)), 1.0)))
        entries.sort()
        entries += [(n, 1.0)] * (2 - len(entries))  # an unused slot loops on the target
        with self._lock:
            self._graph.indices[-2:] = [c for c, _ in entries]
            self._graph.data[-2:] = [w for _, w in entries]
            result = dijkstra(
                self._graph, directed=True, indices=n, limit=limit,
                return_predecessors=predecessors,
            )  # fmt: skip
        if predecessors:
            return result[0], result[1]
        return result, None

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
        edge, t, _, _, off = self._snap_many(points)
        if edge[0] < 0:
            return [None] * len(sources)
        limit = np.inf if limit_s is None else (limit_s * 1000.0 + 1.0) * SHIFT
        dist, _ = self._search(int(edge[0]), float(t[0]), limit, predecessors=False)
        best = self._legs(dist, int(edge[0]), float(t[0]), edge[1:], t[1:])[0]
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

    def _legs(
        self, dist: np.ndarray, e: int, t: float, edges: np.ndarray, fracs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best packed cost of each source and the node it leaves its edge by (-1: along
        the target's own edge)."""
        f = np.where(edges >= 0, edges, 0)
        out_v = self._cost(f, 1.0 - fracs) + dist[self.v[f]]
        against = self.oneway[f] & (fracs * self._length[f] > AT_NODE_M)
        out_u = np.where(against, np.inf, self._cost(f, fracs) + dist[self.u[f]])
        best = np.minimum(out_v, out_u)
        exit_node = np.where(out_v <= out_u, self.v[f], self.u[f])
        same = edges == e
        ahead = same & (fracs <= t)
        behind = same & (fracs >= t) & ~self.oneway[e]
        direct = np.full(len(edges), np.inf)
        direct[ahead] = self._cost(e, t - fracs[ahead])
        direct[behind] = self._cost(e, fracs[behind] - t)
        exit_node = np.where(direct <= best, -1, exit_node)
        best = np.where(edges >= 0, np.minimum(best, direct), np.inf)
        return best, exit_node

    def route(self, from_lon: float, from_lat: float, to_lon: float, to_lat: float
              ) -> Route | None:  # fmt: skip
        """The fastest drive and its line, or ``None`` when one end does not snap or the
        destination cannot be reached."""
        points = np.array([(to_lon, to_lat), (from_lon, from_lat)], dtype=np.float64)
        edge, t, plon, plat, off = self._snap_many(points)
        if edge[0] < 0 or edge[1] < 0:
            return None
        dist, pred = self._search(int(edge[0]), float(t[0]), np.inf, predecessors=True)
        assert pred is not None
        best, exit_node = self._legs(dist, int(edge[0]), float(t[0]), edge[1:], t[1:])
        if best[0] == np.inf:
            return None
        path = [(from_lon, from_lat), (float(plon[1]), float(plat[1]))]
        nodes: list[int] = []
        node = int(exit_node[0])
        while 0 <= node < self.nodes:
            nodes.append(node)
            node = int(pred[node])
        path += [(float(self.lon[n]), float(self.lat[n])) for n in nodes]
        path += [(float(plon[0]), float(plat[0])), (to_lon, to_lat)]
        walk = float(off[0] + off[1])
        return Route(
            time_s=(best[0] // SHIFT) / 1000.0 + walk / self.offroad_mps,
            distance_m=(best[0] % SHIFT) / 10.0 + walk,
            path=_dedupe(path),
            roads=self._road_names([int(edge[1]), *self._path_edges(nodes), int(edge[0])]),
        )

    def _path_edges(self, nodes: list[int]) -> list[int]:
        g = self._graph
        out = []
        for a, b in zip(nodes, nodes[1:], strict=False):
            row = slice(g.indptr[b], g.indptr[b + 1])  # reversed graph: row b holds a -> b
            hit = np.flatnonzero(g.indices[row] == a)
            if len(hit):
                out.append(int(self._arc_edge[g.indptr[b] + hit[0]]))
        return out

    def _road_names(self, edges: list[int]) -> list[str]:
        names: list[str] = []
        for e in edges:
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


def _dedupe(path: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for p in path:
        if not out or abs(out[-1][0] - p[0]) + abs(out[-1][1] - p[1]) > 1e-7:
            out.append(p)
    return out
