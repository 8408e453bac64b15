"""Building the routable graph from ways: junctions, near-miss snapping, lengths, speeds.

* Every vertex is a node; ways meet where they share a vertex exactly (coordinates equal to
  1e-7 degrees, about a centimetre).
* A way's *dangling* end (one no other way touches) within ``Profile.snap_m`` of another way
  is joined to it: to that way's nearest vertex, else to the nearest point of its nearest
  segment (a vertex is inserted there). Only ends snap: two interior vertices a few metres
  apart are more often a flyover above a street than a junction, and joining them would let
  routes jump off expressways.
* Each pair of consecutive vertices is an edge: its haversine length, the way's speed
  (:meth:`Profile.speed_kmh`) and direction (``oneway`` tag, else the class default; ``-1``
  ways are reversed so that every one-way edge runs from ``u`` to ``v``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from scipy.spatial import cKDTree

from polewatch.geo import EARTH_RADIUS_M, haversine_many
from polewatch.roads.profile import Profile
from polewatch.roads.ways import Way

_KEY_SCALE = 1e7
_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0


class Arrays(dict[str, np.ndarray]):
    """The graph as named numpy arrays (see :class:`~polewatch.roads.network.RoadNetwork`)."""


def local_xy(lon: np.ndarray, lat: np.ndarray, lat0: float) -> np.ndarray:
    """Equirectangular metres around ``lat0`` (shape ``(n, 2)``), for indexes and snapping."""
    kx = _M_PER_DEG * math.cos(math.radians(lat0))
    return np.column_stack([np.asarray(lon) * kx, np.asarray(lat) * _M_PER_DEG])


def build(ways: Sequence[Way], profile: Profile) -> tuple[Arrays, dict[str, int]]:
    """The graph arrays of ``ways`` and build statistics (snaps made, nodes, edges)."""
    node_of: dict[tuple[int, int], int] = {}
    lons: list[float] = []
    lats: list[float] = []
    way_nodes: list[list[int]] = []
    for way in ways:
        ids = []
        for x, y in way.coords:
            key = (round(x * _KEY_SCALE), round(y * _KEY_SCALE))
            node = node_of.setdefault(key, len(lons))
            if node == len(lons):
                lons.append(x)
                lats.append(y)
            ids.append(node)
        way_nodes.append(ids)
    lon = np.array(lons, dtype=np.float64)
    lat = np.array(lats, dtype=np.float64)
    lat0 = float(lat.mean()) if len(lat) else 0.0
    stats = {"vertex_snaps": 0, "segment_snaps": 0}
    parent = list(range(len(lons)))
    if profile.snap_m > 0 and way_nodes:
        lon, lat = _snap_ends(way_nodes, lon, lat, lat0, profile.snap_m, parent, stats)

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    us: list[int] = []
    vs: list[int] = []
    speeds: list[float] = []
    oneway: list[bool] = []
    way_of: list[int] = []
    for w, (way, ids) in enumerate(zip(ways, way_nodes, strict=True)):
        direction = (
            way.oneway
            if way.oneway is not None
            else (1 if way.highway in profile.oneway_classes else 0)
        )
        nodes = [find(n) for n in ids]
        if direction == -1:
            nodes.reverse()
        speed = profile.speed_kmh(way.highway, way.maxspeed_kmh) / 3.6
        for a, b in zip(nodes, nodes[1:], strict=False):
            if a != b:
                us.append(a)
                vs.append(b)
                speeds.append(speed)
                oneway.append(direction != 0)
                way_of.append(w)
    # renumber the surviving nodes densely
    used = np.unique(np.array(us + vs, dtype=np.int64))
    remap = np.full(len(lon), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    u = remap[np.array(us, dtype=np.int64)].astype(np.int32)
    v = remap[np.array(vs, dtype=np.int64)].astype(np.int32)
    lon, lat = lon[used], lat[used]
    arrays = Arrays(
        lon=lon,
        lat=lat,
        u=u,
        v=v,
        length_m=haversine_many(lon[u], lat[u], lon[v], lat[v]),
        speed_mps=np.array(speeds, dtype=np.float64),
        oneway=np.array(oneway, dtype=np.bool_),
        way=np.array(way_of, dtype=np.int32),
    )
    stats.update(nodes=len(lon), edges=len(u), ways=len(ways))
    return arrays, stats


def _snap_ends(
    way_nodes: list[list[int]],
    lon: np.ndarray,
    lat: np.ndarray,
    lat0: float,
    snap_m: float,
    parent: list[int],
    stats: dict[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Join dangling way ends to nearby ways (see the module doc); may append nodes."""
    uses = np.bincount(np.concatenate([np.array(ids) for ids in way_nodes]), minlength=len(lon))
    ways_at: dict[int, set[int]] = {}
    for w, ids in enumerate(way_nodes):
        for n in ids:
            ways_at.setdefault(n, set()).add(w)
    xy = local_xy(lon, lat, lat0)
    tree = cKDTree(xy)
    seg_way: list[int] = []
    seg_pos: list[int] = []
    a_idx: list[int] = []
    b_idx: list[int] = []
    for w, ids in enumerate(way_nodes):
        for i in range(len(ids) - 1):
            seg_way.append(w)
            seg_pos.append(i)
            a_idx.append(ids[i])
            b_idx.append(ids[i + 1])
    a_xy, b_xy = xy[np.array(a_idx)], xy[np.array(b_idx)]
    segments = shapely.linestrings(np.stack([a_xy, b_xy], axis=1))
    seg_tree = shapely.STRtree(segments)
    inserts: dict[int, list[tuple[int, float, int]]] = {}
    new_xy: list[tuple[float, float]] = []
    ends = {(w, ids[k]) for w, ids in enumerate(way_nodes) for k in (0, -1) if uses[ids[k]] == 1}
    for w, end in sorted(ends):
        near = [n for n in tree.query_ball_point(xy[end], snap_m) if w not in ways_at[n]]
        if near:
            best = min(near, key=lambda n: float(np.hypot(*(xy[n] - xy[end]))))
            _union(parent, end, best)
            stats["vertex_snaps"] += 1
            continue
        hits = seg_tree.query(shapely.points(xy[end]), predicate="dwithin", distance=snap_m)
        hits = [int(s) for s in np.atleast_1d(hits) if seg_way[int(s)] != w]
        if not hits:
            continue
        s = min(hits, key=lambda s: float(shapely.distance(segments[s], shapely.points(xy[end]))))
        a, b = a_xy[s], b_xy[s]
        d = b - a
        t = float(np.clip(np.dot(xy[end] - a, d) / max(float(np.dot(d, d)), 1e-12), 0.0, 1.0))
        node = len(lon) + len(new_xy)
        new_xy.append((float(a[0] + t * d[0]), float(a[1] + t * d[1])))
        parent.append(node)
        inserts.setdefault(s, []).append((seg_pos[s], t, node))
        _union(parent, end, node)
        stats["segment_snaps"] += 1
    if not new_xy:
        return lon, lat
    # splice the new vertices in, each way from its last segment back so positions hold
    for s in sorted(inserts, key=lambda s: (seg_way[s], -seg_pos[s])):
        ids = way_nodes[seg_way[s]]
        pos = seg_pos[s]
        ids[pos + 1 : pos + 1] = [n for _, _, n in sorted(inserts[s], key=lambda it: it[1])]
    extra = np.array(new_xy)
    kx = _M_PER_DEG * math.cos(math.radians(lat0))
    return (
        np.concatenate([lon, extra[:, 0] / kx]),
        np.concatenate([lat, extra[:, 1] / _M_PER_DEG]),
    )


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _root(parent, a), _root(parent, b)
    if ra != rb:
        parent[ra] = rb


def _root(parent: list[int], n: int) -> int:
    while parent[n] != n:
        n = parent[n]
    return n
