"""The clock along a route's line: when a drive passes each vertex of its path.

A :class:`~polewatch.roads.network.Route` is driven at each road's own speed, so its
average speed says little about where a car is after a minute (an expressway stretch
followed by a crawl through side streets). :func:`timed_path` gives every vertex of the line
its seconds from the start: the off-road legs at the off-road speed, each road segment at its
way's speed, the road part scaled so that the last vertex's time is the route's own
``time_s`` (the search's sums are rounded per segment; the scale differs from 1 by well
under a percent).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polewatch.geo import haversine_many

_SAME = 1e-7
"""Consecutive vertices closer than this (degrees, summed) are one."""


def timed_path(
    points: Sequence[tuple[float, float]],
    leg_mps: Sequence[float],
    road_s: float,
) -> tuple[list[tuple[float, float]], list[float]]:
    """``points`` (``[lon, lat]``, the origin, its snapped place, the nodes, the target's
    snapped place, the target) without repeated vertices, and each one's seconds from the
    origin. ``leg_mps[i]`` is the speed from ``points[i]`` to ``points[i + 1]``: the first
    and last legs are off-road, the others road segments whose times add
    up to ``road_s``."""
    xy = np.asarray(points, dtype=np.float64)
    metres = haversine_many(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1])
    seconds = metres / np.asarray(leg_mps, dtype=np.float64)
    road = float(seconds[1:-1].sum())
    if road > 0:
        seconds[1:-1] *= road_s / road
    clock = np.concatenate([[0.0], np.cumsum(seconds)])
    path: list[tuple[float, float]] = []
    times: list[float] = []
    for (lon, lat), at in zip(points, clock.tolist(), strict=True):
        if not path or abs(path[-1][0] - lon) + abs(path[-1][1] - lat) > _SAME:
            path.append((lon, lat))
            times.append(at)
    return path, times
