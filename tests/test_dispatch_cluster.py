"""The dispatcher on a real 3-master Redis Cluster, zoned by Shenzhen's districts.

* Each zone's work runs on its own shard (the zones' hash tags spread over the masters).
* An alarm near a district border gets the nearest free unit across the border, and a second
  report there merges into that incident, whichever side it comes from.
* Replicas racing on border alarms from both sides never assign a unit twice; every alarm ends
  in exactly one incident of one zone.
* A replica SIGKILLed under load on the cluster loses nothing and doubles nothing.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from test_dispatch_replicas import check_invariants, populate
from test_faults import (  # noqa: F401
    FAST_CLAIM,
    freeze_holding_entries,
    processes,
    service,
)
from waiting import until_sync

from dispatcher import scenario as sc
from polewatch import keys, wire
from polewatch.connection import close_sync, connect_sync
from polewatch.embedded import EmbeddedCluster
from polewatch.zones import ZoneMap

# Two points on the line between the Futian and Luohu centroids, found once with
# ZoneMap.locate: the border crosses that line between them.
FUTIAN_SIDE = (114.0993, 22.56423)
LUOHU_SIDE = (114.0995, 22.56430)


@pytest.fixture(scope="module")
def zones(zones_file: Path) -> ZoneMap:
    return ZoneMap.load(zones_file)


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[redis.Redis]:
    client = RedisCluster.from_url(cluster_url)
    yield client  # type: ignore[misc]
    close_sync(client)  # type: ignore[arg-type]


def settings(zones_file: Path, **kw: object) -> dict[str, object]:
    """The dispatcher settings of a zoned deployment on the cluster."""
    return {"redis_cluster": True, "zones": str(zones_file), **kw}


def across(zones: ZoneMap, metres: float, along: float = 0.0) -> tuple[float, float]:
    """The point ``metres`` into Luohu (negative: into Futian) across the border, on the line
    through the two probe points, then ``along`` metres along the border (to the left)."""
    (x0, y0), (x1, y1) = FUTIAN_SIDE, LUOHU_SIDE
    kx = math.cos(math.radians(y0))
    east, north = (x1 - x0) * kx, (y1 - y0)
    norm = math.hypot(east, north)
    east, north = east / norm, north / norm
    mid = ((x0 + x1) / 2, (y0 + y1) / 2)
    return sc.shifted(*mid, east_m=metres * east - along * north,
                      north_m=metres * north + along * east)  # fmt: skip


def test_the_probe_points_straddle_the_border(zones: ZoneMap, cluster: RedisCluster) -> None:
    assert zones.locate(*across(zones, -100)) == "futian"
    assert zones.locate(*across(zones, 100)) == "luohu"
    # The zones spread over the 3 masters (the point of zoning).
    nodes = {cluster.get_node_from_key(keys.zone(z).alarms).name for z in zones.names}
    assert len(nodes) == 3


async def test_a_border_alarm_gets_the_nearest_unit_across_the_border(
    cluster_url: str, cluster: redis.Redis, zones: ZoneMap, zones_file: Path
) -> None:
    conf = settings(zones_file)
    near_luohu = sc.on_duty("L1", *across(zones, 60))
    far_futian = sc.on_duty("F1", *across(zones, -1500))
    first = sc.alarm(*across(zones, -100))
    # (zones are consumed independently: the units must be on duty before the alarm comes)
    await sc.step(cluster_url, cluster, near_luohu, far_futian, **conf)
    await sc.step(cluster_url, cluster, first, **conf)
    assert sc.home(cluster, "L1").name == "luohu" and sc.home(cluster, "F1").name == "futian"
    assert cluster.get(keys.zone("futian").alarm_route(first.id)) == b"luohu"
    inc = sc.incident(cluster, "luohu-1")
    assert inc.units == ["L1"] and inc.state == "dispatched"
    [dispatch] = sc.inbox(cluster, "L1")
    assert isinstance(dispatch, wire.Dispatch) and dispatch.incident == "luohu-1"
    assert dispatch.distance_m is not None and 150 < dispatch.distance_m < 170
    assert sc.unit(cluster, "F1").status == "available"
    # A second report at the same spot (from Futian's stream again) joins the same incident.
    again = sc.alarm(*across(zones, -90))
    totals = await sc.step(cluster_url, cluster, again, **conf)
    assert totals["merged"] == 1 and totals["incidents"] == 0
    assert sc.incident(cluster, "luohu-1").reports == 2
    # Deep in Futian the Futian unit is the nearest: no routing, a Futian incident.
    deep = sc.alarm(*across(zones, -1400))
    totals = await sc.step(cluster_url, cluster, deep, **conf)
    assert totals["routed"] == 0
    assert sc.incident(cluster, "futian-1").units == ["F1"]


async def test_replicas_racing_on_both_sides_of_a_border_never_double_assign(
    cluster_url: str, cluster: redis.Redis, zones: ZoneMap, zones_file: Path
) -> None:
    rng = random.Random(5)
    # 30 units within 400 m of the border, 90 alarms on a 10 x 9 grid 120 m apart across it
    # (so few merge): more alarms than units, from both zones' streams at once.
    units = [
        sc.on_duty(f"u{i}", *across(zones, rng.uniform(-400, 400), rng.uniform(-500, 500)))
        for i in range(30)
    ]
    await sc.step(cluster_url, cluster, *units, **settings(zones_file))
    alarms = [
        sc.alarm(*across(zones, (i % 10) * 120 - 540, (i // 10) * 120 - 480)) for i in range(90)
    ]
    rng.shuffle(alarms)
    sc.write(cluster, alarms, zones)
    conf = settings(zones_file, batch_size=7)
    totals = await asyncio.gather(
        *(sc.drain(cluster_url, **conf, consumer=f"r{i}") for i in range(3))
    )
    states = check_invariants(cluster, alarms, zones)
    assert states["dispatched"] == 30, states  # every unit busy, none twice
    assert states["escalated"] >= 1
    assert sum(t["routed"] for t in totals) >= 1, "no alarm crossed the border"
    assert states["zone:futian"] and states["zone:luohu"]


def test_a_replica_sigkilled_under_load_on_the_cluster_loses_nothing(
    cluster_url: str,
    cluster: redis.Redis,
    zones: ZoneMap,
    zones_file: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    env = {"POLEWATCH_REDIS_CLUSTER": "true", "POLEWATCH_ZONES": str(zones_file), **FAST_CLAIM}
    populate(cluster, seed=31, units=600, alarms=0, zones=zones)
    # The doomed replica's XREADGROUP BLOCK outlasts the test, so a read it waits in when it is
    # frozen stays open and Redis itself hands it the next entries of that zone.
    doomed = service(cluster_url, "d1", "dispatcher", "--consumer", "doomed",
                     **env, POLEWATCH_BLOCK_MS="60000")  # fmt: skip
    survivor = service(cluster_url, "d2", "dispatcher", "--consumer", "survivor", **env)
    processes += [doomed, survivor]

    def free() -> int:
        return sum(int(cluster.zcard(z.units_free_geo)) for z in zones.all_keys())

    until_sync(lambda: free() == 600, "600 units on duty", 30)
    rng = random.Random(32)
    alarms: list[wire.Alarm] = []

    def feed(count: int) -> None:
        for _ in range(count // 50):
            batch = [sc.alarm(lon, lat) for lon, lat in sc.random_points(50, rng, BBOX)]
            sc.write(cluster, batch, zones)
            alarms.extend(batch)
            time.sleep(0.01)  # a steady stream of batches, not a synchronisation

    def held() -> int:
        return sum(
            len(cluster.xpending_range(z.alarms, keys.DISPATCH_GROUP, "-", "+", 1000, "doomed"))
            for z in zones.all_keys()
        )

    def clients() -> list[dict[str, Any]]:
        return [
            c
            for node in cluster.get_primaries()  # type: ignore[attr-defined]
            for c in cluster.client_list(target_nodes=node)  # type: ignore[call-arg]
        ]

    feed(400)
    freeze_holding_entries(doomed, clients, lambda: feed(100), held)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    feed(800)

    def all_taken() -> bool:
        with cluster.pipeline(transaction=False) as pipe:
            for a in alarms:
                for z in zones.all_keys():
                    pipe.exists(z.alarm(a.id))
            found = pipe.execute()
        return sum(found) == len(alarms)

    until_sync(all_taken, "every alarm in an incident", 60)
    until_sync(lambda: held() == 0, "the dead replica's entries claimed", 30)
    assert survivor.poll() is None
    states = check_invariants(cluster, alarms, zones)
    assert states["dispatched"] >= 400


BBOX = (113.85, 22.50, 114.15, 22.70)


def test_a_master_crashed_and_restarted_under_load_loses_nothing(
    tmp_path: Path,
    zones: ZoneMap,
    zones_file: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    """A master SIGKILLed mid-load and started again (AOF ``everysec``): every alarm Redis
    accepted is dispatched, none twice, and the dispatcher rides it out on its own."""
    env = {"POLEWATCH_REDIS_CLUSTER": "true", "POLEWATCH_ZONES": str(zones_file), **FAST_CLAIM}
    with EmbeddedCluster(tmp_path / "cluster", masters=3, appendonly=True) as cl:
        client = connect_sync(cl.url, name="test-writer", cluster=True)
        try:
            populate(client, seed=41, units=400, alarms=0, zones=zones)
            dispatcher = service(cl.url, "d1", "dispatcher", "--consumer", "one", **env)
            processes.append(dispatcher)
            every = zones.all_keys()
            until_sync(lambda: sum(int(client.zcard(z.units_free_geo)) for z in every) == 400,
                       "400 units on duty", 30)  # fmt: skip
            rng = random.Random(42)
            alarms: list[wire.Alarm] = []

            def feed(count: int) -> None:
                batch = [sc.alarm(lon, lat) for lon, lat in sc.random_points(count, rng, BBOX)]
                sc.write(client, batch, zones)
                alarms.extend(batch)

            feed(300)
            cl.restart(1)  # the master of Longgang, Longhua, Yantian and Pingshan
            feed(300)

            def all_taken() -> bool:
                with client.pipeline(transaction=False) as pipe:
                    for a in alarms:
                        for z in every:
                            pipe.exists(z.alarm(a.id))
                    return sum(pipe.execute()) == len(alarms)

            until_sync(all_taken, "every alarm in an incident after the restart", 60)
            assert dispatcher.poll() is None, "the dispatcher died with the master"
            states = check_invariants(client, alarms, zones)
            assert states["dispatched"] >= 250
        finally:
            close_sync(client)
