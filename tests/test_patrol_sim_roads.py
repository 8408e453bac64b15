"""Simulated patrols drive along Shenzhen's real roads: every position a unit reports lies on a
road, the drive to a scene follows the route rather than the straight line, and a scene the
roads do not reach is driven to in a straight line, logged once."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import shapely

from gateway.testing import served_gateway, unit_token
from polewatch import geo, keys, wire
from polewatch.poles.streets import road_files
from polewatch.roads import RoadNetwork, Route, build_network, read_roads
from simulators.patrols import PatrolBehaviour, PatrolFleet, SimUnit, make_units

BEHAVIOUR = PatrolBehaviour(
    ack_delay_s=(0.0, 0.0), decline_probability=0.0, on_scene_s=(600.0, 600.0), time_scale=100.0
)
"""Answers at once, 20 ticks a second (each 5 s of city time)."""


@pytest.fixture(scope="module")
def shenzhen(data_dir: Path) -> RoadNetwork:
    return build_network(read_roads(road_files(data_dir)).ways, city="shenzhen")


Pair = tuple[tuple[float, float], tuple[float, float]]


def a_drive(net: RoadNetwork, seed: int, fits: Callable[[Route, float], bool]) -> Pair:
    """Two road nodes 1-3 km apart by air whose route ``fits(route, air_m)``."""
    rng = random.Random(seed)
    while True:
        a, b = rng.sample(range(net.nodes), 2)
        start = (float(net.lon[a]), float(net.lat[a]))
        scene = (float(net.lon[b]), float(net.lat[b]))
        air = geo.haversine_m(*start, *scene)
        route = net.route(*start, *scene) if 1000 < air < 3000 else None
        if route is not None and fits(route, air):
            return start, scene


def a_detour(net: RoadNetwork) -> Pair:
    """A drive whose fastest route is at least 1.3 times the air line."""
    return a_drive(net, 4, lambda route, air: route.distance_m > 1.3 * air)


def dispatch(client: redis.Redis, unit: str, incident: str, scene: tuple[float, float]) -> None:
    now = time.time()
    message = wire.Dispatch(incident=incident, unit=unit, priority=2, type="intrusion",
                            lon=scene[0], lat=scene[1], ts=now, ack_by=now + 60)  # fmt: skip
    fields: Any = wire.entry(message)
    client.xadd(keys.unit_inbox(unit), fields)


async def drive(
    redis_url: str,
    aclient: aioredis.Redis,
    unit: SimUnit,
    incident: str | None,
    net: RoadNetwork,
    reports: int = 0,
) -> tuple[list[tuple[float, float]], PatrolFleet]:
    """Run the unit until it reports on scene at ``incident``, the positions it reported en
    route; or (no incident) until it reported ``reports`` positions, those positions."""
    fleet = PatrolFleet("", [unit], unit_token, BEHAVIOUR, roads=net)
    stop = asyncio.Event()
    positions: list[tuple[float, float]] = []
    en_route = incident is None
    async with served_gateway(redis_url) as (host, port):
        fleet.gateway_url = f"http://{host}:{port}"
        running = asyncio.create_task(fleet.run(stop))
        try:
            after, deadline = "0", time.monotonic() + 60
            while time.monotonic() < deadline:
                reply: Any = await aclient.xread({keys.PATROL_EVENTS: after}, block=1000)
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        after = entry_id
                        message = wire.decode_entry(fields)
                        if isinstance(message, wire.PatrolStatus):
                            if message.action == "on_scene":
                                assert message.incident == incident
                                return positions, fleet
                            en_route |= message.action == "en_route"
                        elif isinstance(message, wire.PatrolPosition) and en_route:
                            positions.append((message.lon, message.lat))
                            if incident is None and len(positions) == reports:
                                return positions, fleet
            raise AssertionError(f"unit {unit.id} did not get there within 60 s")
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)


async def dispatched(
    redis_url: str,
    sync_redis: redis.Redis,
    aredis: aioredis.Redis,
    net: RoadNetwork,
    start: tuple[float, float],
    scene: tuple[float, float],
) -> tuple[SimUnit, list[tuple[float, float]], PatrolFleet]:
    """A unit starting at ``start`` sent to ``scene`` (incident "5"), driven until on scene."""
    unit = make_units(1, [(*start, None)], seed=2)[0]
    dispatch(sync_redis, unit.id, "5", scene)
    positions, fleet = await drive(redis_url, aredis, unit, "5", net)
    return unit, positions, fleet


async def test_a_unit_drives_to_the_scene_along_the_roads(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis, shenzhen: RoadNetwork
) -> None:
    start, scene = a_detour(shenzhen)
    unit, positions, fleet = await dispatched(redis_url, sync_redis, aredis, shenzhen, start, scene)
    route = shenzhen.route(*start, *scene)
    assert route is not None and len(positions) > 5
    for lon, lat in positions:
        snap = shenzhen.snap(lon, lat)
        assert snap is not None and snap.offroad_m < 1.0, (lon, lat)  # on a road
    # the route, not the air line: some position is far off the straight segment
    air = shapely.LineString([start, scene])
    assert max(air.distance(shapely.Point(p)) for p in positions) > 0.001  # > ~100 m
    # at the roads' speeds: about the route's drive time in ticks of 5 s
    assert route.time_s / 5 - 3 <= len(positions) <= route.time_s / 5 + 3
    assert fleet.straight_drives == 0 and unit.stats["resolved"] == 0


def at_time(path: list[tuple[float, float]], times: list[float], t: float) -> tuple[float, float]:
    """Where a car on ``path`` is after ``t`` seconds, passing ``path[i]`` at ``times[i]``."""
    i = min(bisect.bisect_right(times, t), len(path) - 1)
    (t0, t1), (a, b) = times[i - 1 : i + 1], path[i - 1 : i + 1]
    f = min(1.0, (t - t0) / (t1 - t0)) if t1 > t0 else 1.0
    return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f


def at_mean_speed(route: Route) -> list[float]:
    """When a car driving ``route`` at its average speed passes each point of its line."""
    legs = [geo.haversine_m(*a, *b) for a, b in zip(route.path, route.path[1:], strict=False)]
    mean = route.distance_m / route.time_s
    return [0.0, *itertools.accumulate(m / mean for m in legs)]


def a_mixed_drive(net: RoadNetwork) -> Pair:
    """A drive that is fast then slow (or the reverse): at some moment the car is 150 m from
    where its average speed would put it."""

    def mixed(route: Route, air: float) -> bool:
        mean = at_mean_speed(route)
        return route.time_s < 400 and any(
            geo.haversine_m(*at_time(route.path, route.times, t), *at_time(route.path, mean, t))
            > 150
            for t in range(0, int(route.time_s), 5)
        )

    return a_drive(net, 7, mixed)


async def test_a_unit_drives_each_road_at_its_own_speed(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis, shenzhen: RoadNetwork
) -> None:
    start, scene = a_mixed_drive(shenzhen)
    *_, positions, _ = await dispatched(redis_url, sync_redis, aredis, shenzhen, start, scene)
    route = shenzhen.route(*positions[0], *scene)  # from where it set off (it cruised first)
    assert route is not None
    mean = at_mean_speed(route)
    by_clock = [geo.haversine_m(*p, *at_time(route.path, route.times, 5.0 * k))
                for k, p in enumerate(positions)]  # fmt: skip
    by_mean = [geo.haversine_m(*p, *at_time(route.path, mean, 5.0 * k))
               for k, p in enumerate(positions)]  # fmt: skip
    assert max(by_clock) < 10.0, by_clock  # each tick where the route's clock says
    assert max(by_mean) > 100.0  # not where the average speed would have put it


async def test_between_jobs_a_unit_patrols_along_the_roads(
    redis_url: str, aredis: aioredis.Redis, shenzhen: RoadNetwork
) -> None:
    start, _ = a_detour(shenzhen)
    unit = make_units(1, [(*start, None)], seed=5)[0]
    positions, fleet = await drive(redis_url, aredis, unit, None, shenzhen, reports=40)
    for lon, lat in positions:
        snap = shenzhen.snap(lon, lat)
        assert snap is not None and snap.offroad_m < 1.0, (lon, lat)
    assert geo.haversine_m(*start, *positions[-1]) > 100  # it moved: 40 ticks of 5 s at 3 m/s


async def test_without_a_route_the_unit_drives_straight_and_it_is_logged_once(
    redis_url: str,
    sync_redis: redis.Redis,
    aredis: aioredis.Redis,
    shenzhen: RoadNetwork,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start, scene = (114.3000, 22.7000), (114.3100, 22.7050)  # Longgang: no roads mapped
    assert shenzhen.snap(*start) is None and shenzhen.snap(*scene) is None
    unit = make_units(1, [(*start, None)], seed=3)[0]
    dispatch(sync_redis, unit.id, "6", scene)
    with caplog.at_level(logging.WARNING, logger="simulators.patrols"):
        positions, fleet = await drive(redis_url, aredis, unit, "6", shenzhen)
    assert fleet.straight_drives == 1
    assert [r.message.count("no road route") for r in caplog.records] == [1]
    # (the unit cruised a little before it accepted: the line starts where it set off from)
    line = shapely.LineString([positions[0], scene])
    assert len(positions) > 3 and all(line.distance(shapely.Point(p)) < 1e-6 for p in positions)
