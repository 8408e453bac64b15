"""The batch path of the router (junction table, cached snaps) against its per-place search.

On the real Shenzhen graph: 1,000 random alarms with 200 random units each (the oracle test's
points), every drive of :meth:`RoadNetwork.drive_times_batch` equals the one
:meth:`RoadNetwork.drive_times_to` finds with its Dijkstra (the same packed integers: equal to
the millisecond, so also within the 1 s the issue allows), ``None`` exactly where it is
``None``; and the same without the table (the search per place it falls back to).
"""

from __future__ import annotations

import numpy as np
from test_roads_oracle import random_points, shenzhen  # noqa: F401

from polewatch.roads import RoadNetwork
from polewatch.roads.table import MAX_JUNCTIONS

ALARMS, UNITS = 1000, 200


def agree(net: RoadNetwork, targets: np.ndarray, sources: np.ndarray) -> int:
    """Assert the batch drives equal the per-place ones; return how many were reached."""
    of = np.repeat(np.arange(len(targets)), len(sources))
    drives = net.drive_times_batch(targets, np.tile(sources, (len(targets), 1)), of)
    # each unit given once, with the unit of every drive: the same drives
    once = net.drive_times_batch(
        targets, sources, of, np.tile(np.arange(len(sources)), len(targets))
    )
    assert np.array_equal(once.time_s, drives.time_s)
    assert np.array_equal(once.distance_m, drives.distance_m)
    points = [(float(lon), float(lat)) for lon, lat in sources]
    reached = 0
    for p, (lon, lat) in enumerate(targets.tolist()):
        legs = net.drive_times_to(lon, lat, points)
        mine = slice(p * len(sources), (p + 1) * len(sources))
        assert drives.placed[p] == (net.snap(lon, lat, role="target") is not None)
        for leg, t, d in zip(legs, drives.time_s[mine], drives.distance_m[mine], strict=True):
            if leg is None:
                assert t == np.inf and d == np.inf, (p, t)
            else:
                assert (t, d) == (leg.time_s, leg.distance_m), (p, leg, t, d)
                reached += 1
    return reached


def test_table_matches_search(shenzhen: RoadNetwork) -> None:  # noqa: F811
    assert shenzhen.junctions <= MAX_JUNCTIONS
    assert shenzhen.build_table() and shenzhen.has_table
    rng = np.random.default_rng(10)
    targets = random_points(shenzhen, rng, ALARMS)
    targets[:5] = [[113.0, 22.0], [np.nan, 22.5], [114.0, 23.5], [0.0, 0.0], [np.inf, 0.0]]
    sources = random_points(shenzhen, rng, UNITS)
    sources[:2] = [[113.0, 22.0], [np.nan, 22.5]]  # off the map: no drive
    reached = agree(shenzhen, targets, sources)
    assert reached > 0.9 * (ALARMS - 5) * (UNITS - 2)
    # the second batch reads its snaps from the cache: the same answers
    assert agree(shenzhen, targets[:50], sources) > 0


def test_fallback_without_table_matches_search(shenzhen: RoadNetwork) -> None:  # noqa: F811
    rng = np.random.default_rng(11)
    net = RoadNetwork(shenzhen.arrays, profile=shenzhen.profile, names=shenzhen.names,
                      highways=shenzhen.highways)  # fmt: skip
    assert not net.has_table
    assert agree(net, random_points(net, rng, 40), random_points(net, rng, UNITS)) > 0


def test_same_place_and_same_chain(shenzhen: RoadNetwork) -> None:  # noqa: F811
    """Units on the alarm's own road, before and after it, and on the alarm itself."""
    net = shenzhen
    net.build_table()
    rng = np.random.default_rng(12)
    along = np.linspace(0.0, 1.0, 5)[:, None]
    for e in rng.choice(net.edges, size=30).tolist():
        a = np.array([net.lon[net.u[e]], net.lat[net.u[e]]])
        b = np.array([net.lon[net.v[e]], net.lat[net.v[e]]])
        points = a * (1 - along) + b * along
        assert agree(net, points[2:3], points) == 5 or net.oneway[e]
