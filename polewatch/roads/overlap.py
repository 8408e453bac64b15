"""Road files that cover the same ground: cutting a later file's copies of an earlier file's
streets.

Two extracts made from different sources (the central and Bao'an files of the shared data)
share no vertex where they overlap: each street there exists twice, 5-60 m apart, and exact
deduplication finds nothing. :func:`cut_overlaps` keeps the earlier file's ways whole and
cuts out every stretch of a later file's way that runs along one of them: within
:data:`OVERLAP_M` of an earlier segment whose bearing differs by at most
:data:`BEARING_DEG` (so a side street that crosses or meets an earlier road is kept, and only
a copy running alongside is cut). The rest of the way is kept, and each cut end is extended to
the earlier road (to the nearest point, on the matching earlier segment, of the first vertex
that was cut), where the graph's near-miss snapping joins it: the kept stretches stay
connected to the network.

Files are taken in order of their share of ways with an OSM id (most first; ties in the order
given): the better-sourced file is the one kept whole. The road importer (``polewatch roads
import``) and the real-road city (:mod:`polewatch.poles.streets`) both read their files
through :func:`polewatch.roads.read_roads`, which calls this: the graph and the poles see
the same streets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np
import shapely

from polewatch.roads.graph import local_xy
from polewatch.roads.ways import Way

OVERLAP_M: Final = 18.0
"""A later way's point this close to an earlier way running the same way is a copy of it."""
BEARING_DEG: Final = 30.0
"""How far two segments' bearings may differ (either direction) to run along each other."""
STEP_M: Final = 10.0
"""Later ways are tested every this many metres along (their own vertices kept exact)."""
MIN_RUN_M: Final = 30.0
"""A stretch shorter than this between two of the other kind takes their kind: a copy is not
cut for a few metres apart, and a side street is not cut where it meets at a shallow angle."""


class Overlap(msgspec.Struct, kw_only=True):
    """What :func:`cut_overlaps` did: files in the order taken, ways of later files cut in
    part or dropped whole, metres of road dropped and kept (later files), joins made."""

    files: list[str]
    ways_cut: int = 0
    ways_dropped: int = 0
    dropped_m: float = 0.0
    kept_m: float = 0.0
    joins: int = 0


def cut_overlaps(ways: Sequence[Way]) -> tuple[list[Way], Overlap]:
    """``ways`` without a later file's copies of an earlier file's ways (module doc)."""
    by_file: dict[str, list[Way]] = {}
    for way in ways:
        by_file.setdefault(way.source, []).append(way)
    files = sorted(
        by_file, key=lambda f: -sum(w.osm_id is not None for w in by_file[f]) / len(by_file[f])
    )
    report = Overlap(files=files)
    if len(files) < 2:
        return list(ways), report
    lat0 = float(np.mean([lat for w in ways for _, lat in w.coords]))
    kept = list(by_file[files[0]])
    for source in files[1:]:
        earlier = _Segments([w.coords for w in kept], lat0)
        for way in by_file[source]:
            kept += _cut(way, earlier, lat0, report)
    return kept, report


class _Segments:
    """The segments of some lines in local metres, with an index and unit directions."""

    def __init__(self, lines: Sequence[Sequence[tuple[float, float]]], lat0: float) -> None:
        a = np.concatenate([np.asarray(line[:-1]) for line in lines])
        b = np.concatenate([np.asarray(line[1:]) for line in lines])
        self.a, self.b = local_xy(a[:, 0], a[:, 1], lat0), local_xy(b[:, 0], b[:, 1], lat0)
        d = self.b - self.a
        self.unit = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        self.tree = shapely.STRtree(shapely.linestrings(np.stack([self.a, self.b], axis=1)))

    def along(self, xy: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Per point (with its direction), the nearest segment it runs along, or -1."""
        point, seg = self.tree.query(shapely.points(xy), predicate="dwithin", distance=OVERLAP_M)
        similar = np.abs(np.sum(unit[point] * self.unit[seg], axis=1))
        fits = similar >= math.cos(math.radians(BEARING_DEG))
        point, seg = point[fits], seg[fits]
        out = np.full(len(xy), -1, dtype=np.int64)
        if len(point):
            dist = self._distance(xy[point], seg)
            order = np.lexsort((-dist, point))  # per point, the nearest last
            out[point[order]] = seg[order]
        return out

    def _distance(self, xy: np.ndarray, seg: np.ndarray) -> np.ndarray:
        foot = self.foot(xy, seg)
        return np.asarray(np.hypot(*(xy - foot).T))

    def foot(self, xy: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """The nearest point of segment ``seg[i]`` to ``xy[i]``."""
        a, d = self.a[seg], self.b[seg] - self.a[seg]
        t = np.clip(np.sum((xy - a) * d, axis=1) / np.maximum(np.sum(d * d, axis=1), 1e-12), 0, 1)
        return np.asarray(a + d * t[:, None])


def _cut(way: Way, earlier: _Segments, lat0: float, report: Overlap) -> list[Way]:
    """The stretches of ``way`` that do not run along ``earlier``, joined to it."""
    lonlat, original = _samples(way.coords, lat0)
    xy = local_xy(lonlat[:, 0], lonlat[:, 1], lat0)
    scale = local_xy(np.ones(1), np.ones(1), lat0)[0]  # metres per degree, east and north
    step = np.diff(xy, axis=0)
    seg_len = np.hypot(step[:, 0], step[:, 1])
    unit = step / np.maximum(seg_len, 1e-9)[:, None]
    unit = np.vstack([unit, unit[-1:]])  # a point's direction: its outgoing segment's
    match = earlier.along(xy, unit)
    at = np.concatenate([[0.0], np.cumsum(seg_len)])
    copy = _smoothed(match >= 0, at)
    total = float(at[-1])
    if not copy.any():
        report.kept_m += total
        return [way]
    kept: list[Way] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], copy.astype(np.int8), [0]])) != 0)
    runs = np.concatenate([[0], edges, [len(copy)]])
    for start, end in zip(runs[:-1].tolist(), runs[1:].tolist(), strict=True):
        if start == end or copy[start]:
            continue
        idx = [i for i in range(start, end) if original[i] or i in (start, end - 1)]
        coords = [(float(lonlat[i, 0]), float(lonlat[i, 1])) for i in idx]
        for cut, back in ((start - 1, -1), (end, 1)):
            if 0 <= cut < len(copy):  # extend the cut end to the earlier road
                while match[cut] < 0:  # (a point smoothed into the copy: its neighbour's)
                    cut += back
                foot = earlier.foot(xy[cut : cut + 1], match[cut : cut + 1])[0] / scale
                joint = (float(foot[0]), float(foot[1]))
                coords = [joint, *coords] if back < 0 else [*coords, joint]
                report.joins += 1
        if len(coords) >= 2:
            kept.append(msgspec.structs.replace(way, coords=coords))
    dropped = float(np.sum(seg_len[copy[:-1] & copy[1:]]))
    report.dropped_m += dropped
    report.kept_m += total - dropped
    if kept:
        report.ways_cut += 1
    else:
        report.ways_dropped += 1
    return kept


def _samples(coords: Sequence[tuple[float, float]], lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every :data:`STEP_M` or less along ``coords`` (lon/lat), and which of them are
    the way's own vertices (inserted points lie exactly on its segments)."""
    pts = np.asarray(coords, dtype=np.float64)
    xy = local_xy(pts[:, 0], pts[:, 1], lat0)
    n = np.maximum(np.ceil(np.hypot(*np.diff(xy, axis=0).T) / STEP_M), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(n)), n)
    frac = (np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    out = pts[seg] + (pts[seg + 1] - pts[seg]) * frac[:, None]
    original = np.concatenate([frac == 0, [True]])
    return np.vstack([out, pts[-1:]]), original


def _smoothed(copy: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``copy`` with runs shorter than :data:`MIN_RUN_M` between two runs of the other kind
    flipped (``at``: each point's metres along the way)."""
    out = copy.copy()
    edges = np.flatnonzero(np.diff(copy.astype(np.int8)) != 0) + 1
    runs = np.concatenate([[0], edges, [len(copy)]])
    for k in range(1, len(runs) - 2):  # inner runs only: both neighbours exist
        start, end = int(runs[k]), int(runs[k + 1])
        if at[end] - at[start - 1] < MIN_RUN_M:
            out[start:end] = not copy[start]
    return out
