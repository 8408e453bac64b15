"""The router against an exhaustive Dijkstra on the real Shenzhen graph.

1,000 random alarms, 200 random units (random points of the roads, pushed up to 40 m off
them). The oracle inserts every point into the graph as a node of its own (splitting its edge),
runs scipy's Dijkstra from every unit over the whole graph in float seconds, and adds the
off-road legs: the unit it finds fastest must be the router's choice (ties within 1 s).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from polewatch.geo import haversine_m
from polewatch.roads import (
    FeatureError,
    RoadNetwork,
    Snap,
    build_network,
    parse_feature,
    read_roads,
)
from polewatch.roads.network import AT_NODE_M

ALARMS, UNITS = 1000, 200


@pytest.fixture(scope="module")
def shenzhen(data_dir: Path) -> RoadNetwork:
    roads = data_dir / "roads"
    report = read_roads(
        [roads / "shenzhen_central_roads.geojson", roads / "shenzhen_baoan_roads.geojson"]
    )
    return build_network(report.ways)


def random_points(
    net: RoadNetwork, rng: np.random.Generator, count: int, off_m: float = 40.0
) -> np.ndarray:
    """Points along the roads (edges weighted by length), up to ``off_m`` off them."""
    length = net.arrays["length_m"]
    edges = rng.choice(net.edges, size=count, p=length / length.sum())
    t = rng.random(count)
    lon = net.lon[net.u[edges]] * (1 - t) + net.lon[net.v[edges]] * t
    lat = net.lat[net.u[edges]] * (1 - t) + net.lat[net.v[edges]] * t
    angle = rng.random(count) * 2 * np.pi
    off = rng.random(count) * off_m
    return np.column_stack(
        [lon + off * np.cos(angle) / 102_900, lat + off * np.sin(angle) / 111_200]
    )


def oracle_seconds(net: RoadNetwork, units: list[Snap], alarms: list[Snap]) -> np.ndarray:
    """``[unit, alarm]`` drive seconds by an exhaustive Dijkstra over the split graph."""
    a = net.arrays
    n = net.nodes
    secs = a["length_m"] / a["speed_mps"]
    on_edge: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for i, snap in enumerate([*units, *alarms]):
        on_edge[snap.edge].append((snap.t, n + i))
    tails: list[int] = []
    heads: list[int] = []
    weights: list[float] = []

    def arc(x: int, y: int, w: float, both: bool) -> None:
        for tail, head in [(x, y), (y, x)] if both else [(x, y)]:
            tails.append(tail)
            heads.append(head)
            weights.append(max(w, 1e-9))

    for e in range(net.edges):
        u, v, oneway = int(a["u"][e]), int(a["v"][e]), bool(a["oneway"][e])
        chain = [(0.0, u), *sorted(on_edge.get(e, [])), (1.0, v)]
        for (t0, x), (t1, y) in zip(chain, chain[1:], strict=False):
            arc(x, y, (t1 - t0) * secs[e], not oneway)
        for t, point in chain[1:-1]:  # within a metre of a node: at the node
            if t * a["length_m"][e] <= AT_NODE_M:
                arc(point, u, t * secs[e], True)
            if (1 - t) * a["length_m"][e] <= AT_NODE_M:
                arc(point, v, (1 - t) * secs[e], True)
    size = n + len(units) + len(alarms)
    graph = _cheapest(tails, heads, weights, size)
    drive = dijkstra(graph, directed=True, indices=np.arange(n, n + len(units)))
    walk = (
        np.array([s.offroad_m for s in units])[:, None]
        + np.array([s.offroad_m for s in alarms])[None, :]
    )
    return np.asarray(drive[:, n + len(units) :] + walk / net.offroad_mps)


def _cheapest(tails: list[int], heads: list[int], weights: list[float], size: int) -> csr_matrix:
    """The adjacency matrix with the cheapest of parallel arcs (scipy would add them up)."""
    t, h, w = np.array(tails), np.array(heads), np.array(weights)
    order = np.lexsort((w, h, t))
    key = t[order] * size + h[order]
    keep = order[np.concatenate([[True], key[1:] != key[:-1]])]
    return csr_matrix((w[keep], (t[keep], h[keep])), shape=(size, size))


@pytest.mark.parametrize("off_m", [40.0, 1500.0])
def test_snap_finds_the_nearest_edge(shenzhen: RoadNetwork, off_m: float) -> None:
    rng = np.random.default_rng(3)
    points = random_points(shenzhen, rng, 200, off_m)
    kx, ky = shenzhen._kx, shenzhen._ky  # the router's local metres
    segments = shapely.linestrings(np.stack([shenzhen._a, shenzhen._b], axis=1))
    snapped = 0
    for lon, lat in points:
        snap = shenzhen.snap(float(lon), float(lat))
        here = shapely.Point(lon * kx, lat * ky)
        nearest = shapely.distance(segments, here).min()
        if nearest > 990.0:  # about 1 km from every road (local metres vs haversine)
            assert snap is None or nearest < 1010.0
            continue
        assert snap is not None
        snapped += 1
        assert abs(shapely.distance(segments[snap.edge], here) - nearest) < 1e-6
        assert snap.offroad_m == pytest.approx(nearest, rel=0.01, abs=0.01)
    assert snapped > 100


def test_the_fastest_unit_is_the_one_an_exhaustive_dijkstra_finds(shenzhen: RoadNetwork) -> None:
    rng = np.random.default_rng(10)
    unit_points = [(float(x), float(y)) for x, y in random_points(shenzhen, rng, UNITS)]
    alarm_points = [(float(x), float(y)) for x, y in random_points(shenzhen, rng, ALARMS)]
    units = [shenzhen.snap(*p, role="source") for p in unit_points]
    alarms = [shenzhen.snap(*p, role="target") for p in alarm_points]
    assert all(s is not None for s in units) and all(s is not None for s in alarms)
    truth = oracle_seconds(shenzhen, units, alarms)  # type: ignore[arg-type]
    reachable = 0
    for j, alarm in enumerate(alarm_points):
        legs = shenzhen.drive_times_to(*alarm, unit_points)
        times = np.array([np.inf if leg is None else leg.time_s for leg in legs])
        best = truth[:, j].min()
        if not np.isfinite(best):
            assert not np.isfinite(times).any(), f"alarm {j}: the router reached the unreachable"
            continue
        reachable += 1
        chosen = int(times.argmin())
        assert truth[chosen, j] <= best + 1.0, f"alarm {j}: unit {chosen} is not the fastest"
        assert abs(times[chosen] - truth[chosen, j]) <= 1.0
        # every unit the oracle can reach, the router reaches, at the same time
        finite = np.isfinite(truth[:, j])
        assert np.array_equal(np.isfinite(times), finite), f"alarm {j}: reachability differs"
        assert np.abs(times[finite] - truth[finite, j]).max() <= 1.0
    assert reachable > 0.8 * ALARMS


def test_routes_draw_the_drive_they_time(shenzhen: RoadNetwork) -> None:
    rng = np.random.default_rng(5)
    points = random_points(shenzhen, rng, 400)
    drawn = 0
    for (x0, y0), (x1, y1) in zip(points[::2], points[1::2], strict=True):
        route = shenzhen.route(float(x0), float(y0), float(x1), float(y1))
        leg = shenzhen.drive_times_to(float(x1), float(y1), [(float(x0), float(y0))])[0]
        assert (route is None) == (leg is None)
        if route is None or leg is None:
            continue
        drawn += 1
        assert route.time_s == pytest.approx(leg.time_s, abs=0.01)
        assert route.path[0] == (x0, y0) and route.path[-1] == (x1, y1)
        # the line is the road driven: its length is the distance, no jumps
        line = sum(haversine_m(*a, *b) for a, b in zip(route.path, route.path[1:], strict=False))
        assert line == pytest.approx(route.distance_m, rel=0.002, abs=1.0)
    assert drawn > 150


def test_bench_route_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from polewatch.cli import main

    assert main(["bench", "route", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["incidents"] == 20 and out["candidates"] == 50 and out["legs_reached"] > 500
    assert out["max_diff_s"] < 0.5  # the router agrees with the exhaustive reference
    assert out["graph"]["nodes"] > 10_000 and out["router"]["p50_ms"] > 0


lattice = st.tuples(st.integers(0, 5), st.integers(0, 5))
small_ways = st.lists(
    st.tuples(
        st.lists(lattice, min_size=2, max_size=5, unique=True),
        st.sampled_from(["primary", "residential", "motorway", "trunk_link"]),
        st.sampled_from([None, "yes", "-1", "no"]),
    ),
    min_size=1,
    max_size=7,
)
spots = st.tuples(st.floats(113.9995, 114.003), st.floats(22.4995, 22.503))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ways=small_ways,
    alarms=st.lists(spots, min_size=1, max_size=3),
    units=st.lists(spots, min_size=1, max_size=5),
)
def test_any_small_network_routes_like_an_exhaustive_dijkstra(
    ways: list[tuple[list[tuple[int, int]], str, str | None]],
    alarms: list[tuple[float, float]],
    units: list[tuple[float, float]],
) -> None:
    """Rings, loops, parallel roads, one-way pieces meeting head to head: the contracted
    search and its partial costs agree with the plain split graph, and routes draw the drive
    they time (this found two wrong route lines: parallel roads, a one-way ring)."""
    parsed = []
    for cells, highway, oneway in ways:
        coords = [[114.0 + i * 0.0005, 22.5 + j * 0.0005] for i, j in cells]
        props = {"highway": highway, **({"oneway": oneway} if oneway else {})}
        feature = {"properties": props, "geometry": {"type": "LineString", "coordinates": coords}}
        try:
            parsed += parse_feature(feature)
        except FeatureError:
            continue  # self-intersecting: refused, tested elsewhere
    assume(parsed)
    net = build_network(parsed)
    assume(net.edges > 0)
    unit_snaps = [net.snap(*p, role="source") for p in units]
    alarm_snaps = [net.snap(*p, role="target") for p in alarms]
    assert all(s is not None for s in [*unit_snaps, *alarm_snaps])
    truth = oracle_seconds(net, unit_snaps, alarm_snaps)  # type: ignore[arg-type]
    for j, alarm in enumerate(alarms):
        legs = net.drive_times_to(*alarm, units)
        times = np.array([np.inf if leg is None else leg.time_s for leg in legs])
        assert np.array_equal(np.isfinite(times), np.isfinite(truth[:, j]))
        finite = np.isfinite(times)
        assert np.abs(times[finite] - truth[finite, j]).max(initial=0.0) <= 0.5
        route = net.route(*units[0], *alarm)  # its line is the drive it times
        assert (route is None) == (legs[0] is None)
        if route is not None and legs[0] is not None:
            assert route.time_s == pytest.approx(legs[0].time_s, abs=0.01)
            line = sum(
                haversine_m(*a, *b) for a, b in zip(route.path, route.path[1:], strict=False)
            )
            assert line == pytest.approx(route.distance_m, rel=0.002, abs=1.0)
