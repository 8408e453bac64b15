"""The nearest segment to many points at once, in local metres.

Segments are cut, for the index only, into pieces of at most :data:`PIECE_M`; a k-d tree holds
the pieces' midpoints. For a point whose nearest piece midpoint lies ``d`` away, the nearest
segment is at most ``d`` away, so it has a piece whose midpoint lies within ``d + PIECE_M/2``:
those pieces' segments are the only candidates, measured exactly. Both tree queries and the
exact measure are vectorised over all points: the tree hands each point its :data:`K` nearest
pieces, enough but for points far from every road, which ask a shapely STRtree instead.
Measured on the Shenzhen graph, 51 points: about as fast as the STRtree alone when the caches
are warm (0.18 ms), about half its time when they are cold, as between a dispatcher's alarms.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

PIECE_M = 25.0
K = 16
"""Pieces fetched per point; a point with more candidates gets them all (a second query)."""


class SegmentIndex:
    """Nearest-segment queries over segments ``a[i] -> b[i]`` (arrays of shape ``(n, 2)``)."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self._a, self._d = a, b - a
        self._dd = np.maximum((self._d * self._d).sum(axis=1), 1e-12)
        pieces = np.maximum(np.ceil(np.sqrt(self._dd) / PIECE_M), 1).astype(np.int64)
        self._piece_seg = np.repeat(np.arange(len(a)), pieces)
        first = np.concatenate([[0], np.cumsum(pieces)[:-1]]) if len(a) else pieces
        offset = np.arange(len(self._piece_seg)) - np.repeat(first, pieces)
        frac = (offset + 0.5) / np.repeat(pieces, pieces)
        mids = a[self._piece_seg] + frac[:, None] * self._d[self._piece_seg]
        self._tree = cKDTree(mids if len(mids) else np.zeros((0, 2)))
        self._rtree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))

    def nearest(self, xy: np.ndarray, max_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point: the nearest segment (-1: none within ``max_m``), the fraction of the way
        along it of the nearest point, and the distance."""
        count = len(xy)
        seg = np.full(count, -1, dtype=np.int64)
        t = np.zeros(count)
        dist = np.full(count, np.inf)
        if count == 0 or self._tree.n == 0:
            return seg, t, dist
        near, piece = self._tree.query(xy, k=K, distance_upper_bound=max_m + PIECE_M)
        near, piece = near.reshape(count, -1), piece.reshape(count, -1)
        wanted = near <= near[:, :1] + PIECE_M / 2  # rows with nothing in reach drop out
        cand = self._piece_seg[np.minimum(piece, self._tree.n - 1)]
        frac, far = self._measure(xy[:, None, :], cand)
        far = np.where(wanted, far, np.inf)
        crowded = np.flatnonzero(wanted[:, -1])  # more than K candidates: ask the R-tree
        if len(crowded):
            rows, segs = self._rtree.query_nearest(shapely.points(xy[crowded]), all_matches=False)
            f, d = self._measure(xy[crowded[rows]], segs)
            cand[crowded[rows], 0], frac[crowded[rows], 0] = segs, f
            far[crowded[rows], 0] = d
            far[crowded, 1:] = np.inf
        col = np.argmin(far, axis=1)
        rows = np.arange(count)
        best = far[rows, col]
        close = best <= max_m
        seg[close] = cand[rows, col][close]
        t[close] = frac[rows, col][close]
        dist[close] = best[close]
        return seg, t, dist

    def _measure(self, xy: np.ndarray, segs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fraction along and distance to each segment of ``segs`` from the points ``xy``
        (broadcast against each other)."""
        rel = xy - self._a[segs]
        frac = np.clip((rel * self._d[segs]).sum(axis=-1) / self._dd[segs], 0.0, 1.0)
        gap = rel - frac[..., None] * self._d[segs]
        return frac, np.hypot(gap[..., 0], gap[..., 1])
