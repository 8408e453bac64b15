"""The router on hand-made roads: one-way expressways, partial edges, routes; the store."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from polewatch import keys
from polewatch.geo import haversine_m
from polewatch.roads import (
    RoadNetwork,
    RoadStore,
    Way,
    build_network,
    load_roads,
    load_roads_sync,
    parse_feature,
    to_geojson,
)

LAT_N, LAT_X, LAT_S = 22.5010, 22.5000, 22.4990  # north street, expressway, south street


def way(coords: list[tuple[float, float]], highway: str, name: str, **props: Any) -> list[Way]:
    feature = {
        "type": "Feature",
        "properties": {"highway": highway, "name": name, **props},
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in coords]},
    }
    return parse_feature(feature, source="hand", number=1)


def town_ways() -> list[Way]:
    """A one-way expressway (east) between a north and a south street; the streets meet only
    3 km to the east, by a street passing under the expressway (no junction with it)."""
    return [
        *way([(113.990, LAT_X), (114.010, LAT_X), (114.030, LAT_X)], "motorway", "滨海大道"),
        *way([(113.995, LAT_N), (114.005, LAT_N), (114.025, LAT_N)], "residential", "北街"),
        *way([(113.995, LAT_S), (114.005, LAT_S), (114.025, LAT_S)], "residential", "南街"),
        *way([(114.025, LAT_N), (114.025, LAT_S)], "residential", "东街"),
    ]


def town() -> RoadNetwork:
    return build_network(town_ways())


def test_the_nearest_unit_across_an_expressway_loses_to_a_farther_one_on_the_same_side() -> None:
    net = town()
    incident = (114.005, LAT_S + 0.0001)
    across = (114.005, LAT_N - 0.0001)  # ~200 m by air, north of the expressway
    same_side = (114.013, LAT_S + 0.0001)  # ~820 m by air, on the south street
    air = [haversine_m(*incident, *p) for p in (across, same_side)]
    assert air[0] < air[1] / 3
    legs = net.drive_times_to(*incident, [across, same_side])
    assert legs[0] is not None and legs[1] is not None
    assert legs[1].time_s < legs[0].time_s
    # across: 2 km east on the north street, the cross street, 2 km back
    assert legs[0].distance_m > 4000 > 800 < legs[1].distance_m < 900
    route = net.route(*across, *incident)
    assert route is not None and route.roads == ["北街", "东街", "南街"]
    assert route.path[0] == across and route.path[-1] == incident
    assert abs(route.time_s - legs[0].time_s) < 0.01


def test_a_route_says_when_it_passes_each_point_each_road_at_its_own_speed() -> None:
    fast = way([(114.000, LAT_X), (114.010, LAT_X), (114.020, LAT_X)], "motorway", "滨海大道")
    slow = way([(114.020, LAT_X), (114.030, LAT_X)], "residential", "南街")
    net = build_network([*fast, *slow])
    route = net.route(114.000, LAT_X, 114.030, LAT_X)
    assert route is not None and len(route.times) == len(route.path) == 4
    exit_s = haversine_m(114.000, LAT_X, 114.020, LAT_X) / (70 / 3.6)  # the motorway's speed
    street_s = haversine_m(114.020, LAT_X, 114.030, LAT_X) / (18 / 3.6)  # residential
    assert route.times[0] == 0.0 and route.times == sorted(route.times)
    assert abs(route.times[2] - exit_s) < 0.5  # not where the average speed would put it
    assert abs(route.times[-1] - (exit_s + street_s)) < 0.5
    assert route.times[-1] == pytest.approx(route.time_s)


def test_one_way_roads_are_driven_one_way_and_limits_cut_the_search() -> None:
    net = town()
    west, east = (113.991, LAT_X), (114.029, LAT_X)
    forward = net.drive_times_to(*east, [west])[0]
    assert forward is not None
    assert forward.time_s == pytest.approx(forward.distance_m / (70 / 3.6), rel=0.01)
    assert net.drive_times_to(*west, [east]) == [None]  # against the expressway, no way back
    assert net.drive_times_to(*east, [west], limit_s=forward.time_s / 2) == [None]
    assert net.fastest_mps == pytest.approx(70 / 3.6)


def test_units_on_dead_end_one_ways_snap_to_roads_that_lead_somewhere() -> None:
    stub = way([(114.0, LAT_N), (114.0, LAT_N + 0.001)], "residential", "死路", oneway="yes")
    net = build_network([*town_ways(), *stub])
    unit = (114.0003, LAT_N + 0.0009)  # 31 m from the one-way stub, 100 m from 北街
    on_stub = net.snap(*unit)
    assert on_stub is not None and on_stub.offroad_m < 35
    assert net.names[int(net.arrays["way"][on_stub.edge])] == "死路"
    as_unit = net.snap(*unit, role="source")  # the stub leads nowhere: out of it, no way
    assert as_unit is not None and as_unit.lat == pytest.approx(LAT_N)
    as_alarm = net.snap(*unit, role="target")  # but it can be driven into
    assert as_alarm is not None and as_alarm.edge == on_stub.edge
    leg = net.drive_times_to(114.005, LAT_S, [unit])[0]
    assert leg is not None and leg.distance_m > 4000
    assert net.drive_times_to(*unit, [(114.005, LAT_N)])[0] is not None


def test_points_off_the_map_do_not_snap() -> None:
    net = town()
    assert net.snap(114.0, 22.6) is None  # 11 km away
    snap = net.snap(114.005, LAT_S - 0.0002)
    assert snap is not None and 20 < snap.offroad_m < 25 and snap.lat == pytest.approx(LAT_S)
    assert net.drive_times_to(114.0, 22.6, [(114.005, LAT_S)]) == [None]
    assert net.drive_times_to(114.005, LAT_S, [(114.0, 22.6), (114.006, LAT_S)])[0] is None
    assert net.route(114.0, 22.6, 114.005, LAT_S) is None


async def test_store_and_load_through_redis_with_versions(
    aredis: aioredis.Redis, sync_redis: redis.Redis
) -> None:
    net = town()
    store = RoadStore(aredis, "testcity")
    assert await load_roads(aredis, "testcity") is None
    ways = way([(114.0, 22.5), (114.001, 22.5)], "primary", "深南大道", **{"name:en": "Shennan"})
    assert await store.store(net, to_geojson(ways)) == 1
    first = await load_roads(aredis, "testcity")
    assert first is not None and first.version == 1 and first.nodes == net.nodes
    assert await load_roads(aredis, "testcity") is first  # cached while the version holds
    legs = first.drive_times_to(114.005, LAT_S, [(114.013, LAT_S)])
    assert legs == net.drive_times_to(114.005, LAT_S, [(114.013, LAT_S)])
    features = await store.features()
    assert features is not None and "深南大道".encode() in features and b"Shennan" in features
    assert await store.store(build_network(ways), to_geojson(ways)) == 2
    second = await load_roads(aredis, "testcity")
    assert second is not None and second.version == 2 and second.nodes == 2
    synced = load_roads_sync(sync_redis, "testcity")
    assert synced is not None and synced.version == 2 and synced.edges == 1
    assert not await aredis.exists(keys.roads_staging(keys.roads_graph("testcity")))


async def test_one_graph_per_city_on_a_redis_cluster(cluster_url: str) -> None:
    from polewatch.connection import connect, connect_sync

    client = connect(cluster_url, name="roads-test", cluster=True)
    try:
        net = town()
        store = RoadStore(client, "shenzhen")
        assert await store.store(net, b'{"type": "FeatureCollection", "features": []}') == 1
        assert await store.store(net, b'{"type": "FeatureCollection", "features": []}') == 2
        loaded = await load_roads(client, "shenzhen")
        assert loaded is not None and loaded.version == 2 and loaded.edges == net.edges
        assert await store.features() == b'{"type": "FeatureCollection", "features": []}'
    finally:
        await client.aclose()
    sync = connect_sync(cluster_url, name="roads-test", cluster=True)
    try:
        synced = load_roads_sync(sync, "shenzhen")
        assert synced is not None and synced.version == 2
    finally:
        sync.close()


def one_way_through_cells(cells: list[tuple[int, int]]) -> RoadNetwork:
    coords = [(114.0 + i * 0.0005, 22.5 + j * 0.0005) for i, j in cells]
    return build_network(way(coords, "primary", "单行", oneway="yes"))


@pytest.mark.parametrize(
    "cells", [[(0, 0), (3, 1), (1, 0)], [(0, 0), (0, 2), (3, 1), (1, 0), (0, 1)]]
)
def test_a_unit_just_past_its_alarm_on_a_one_way_backs_up_to_the_bend_they_share(
    cells: list[tuple[int, int]],
) -> None:
    """The stress profile's case: the alarm meets the one-way road at the bend (3, 1), the
    unit 0.59 m past it. A point within a metre of a node is at the node, a bend as well as a
    junction, so the unit backs up to the bend. The router found no drive (the line ends) or
    drove round the ring (82.5 s instead of 40.3)."""
    alarm, unit = (114.001953125, 22.5), (114.00167643893074, 22.50018760224317)
    net = one_way_through_cells(cells)
    at_unit, at_alarm = net.snap(*unit, role="source"), net.snap(*alarm, role="target")
    assert at_unit is not None and at_alarm is not None
    assert (at_alarm.lon, at_alarm.lat) == pytest.approx((114.0015, 22.5005))  # the bend
    back = haversine_m(at_unit.lon, at_unit.lat, at_alarm.lon, at_alarm.lat)
    assert 0.5 < back < 1.0
    walk = at_unit.offroad_m + at_alarm.offroad_m
    expected = walk / net.offroad_mps + back / (35 / 3.6)  # primary: 35 km/h
    leg = net.drive_times_to(*alarm, [unit])[0]
    assert leg is not None and leg.time_s == pytest.approx(expected, abs=0.01)
    assert leg.distance_m == pytest.approx(walk + back, abs=0.1)
    route = net.route(*unit, *alarm)
    assert route is not None and route.time_s == pytest.approx(leg.time_s, abs=0.001)
    assert (114.0015, 22.5005) in route.path
    for table in (False, True):  # the dispatcher's batch, searching and from the table
        assert not table or net.build_table()
        batch = net.drive_times_batch(np.array([alarm]), np.array([unit]), np.array([0]))
        assert batch.time_s[0] == pytest.approx(leg.time_s, abs=0.001)


@pytest.mark.parametrize(
    ("unit_m", "alarm_m", "road_m"),
    [
        (0.4, -0.4, 0.8),  # either side of the bend: through it
        (0.6, 0.3, 0.9),  # just past the bend: back to it, then on
        (-0.3, -0.6, 0.9),  # just before the bend: on to it, then back
        (-0.5, -2.0, None),  # 1.5 m back, not at the bend: the road leads nowhere
        (-0.6, 0.3, 0.9),  # ahead: driven as ever
    ],
)
def test_points_within_a_metre_of_a_one_way_bend_are_at_the_bend(
    unit_m: float, alarm_m: float, road_m: float | None
) -> None:
    """On a one-way road east through a bend at 114.001 (signed metres along the road from
    the bend), as the exhaustive oracle's split graph has it."""
    net = build_network(way([(114.0, LAT_X), (114.001, LAT_X), (114.002, LAT_X + 0.0001)],
                            "primary", "单行", oneway="yes"))  # fmt: skip
    per_m = 0.001 / haversine_m(114.0, LAT_X, 114.001, LAT_X)

    def at(metres: float) -> tuple[float, float]:
        if metres <= 0:
            return (114.001 + metres * per_m, LAT_X)
        bearing = np.array([0.001, 0.0001]) / haversine_m(114.001, LAT_X, 114.002, LAT_X + 0.0001)
        return (114.001 + metres * bearing[0], LAT_X + metres * bearing[1])

    leg = net.drive_times_to(*at(alarm_m), [at(unit_m)])[0]
    if road_m is None:
        assert leg is None
        return
    assert leg is not None and leg.distance_m == pytest.approx(road_m, abs=0.02)
    route = net.route(*at(unit_m), *at(alarm_m))
    assert route is not None and route.distance_m == pytest.approx(leg.distance_m)
    line = sum(haversine_m(*a, *b) for a, b in zip(route.path, route.path[1:], strict=False))
    assert line == pytest.approx(road_m, abs=0.02)
