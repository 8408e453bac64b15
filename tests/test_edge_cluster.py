"""The edge agents on a real Redis Cluster with dispatch zones: every alarm lands on its
zone's stream (zones on different shards) with its snapshot, a spool filled while the cluster
was away is replayed into the zones when it is back, the door agent places its door through
the registry on the cluster, and the button follows its alarm across a district border."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.cluster import RedisCluster

from dispatcher import scenario as sc
from edge.button import ButtonAgent, ButtonSettings
from edge.door.agent import DoorAgent
from edge.door.config import Door, DoorSettings
from edge.door.events import DoorEvent
from edge.publisher import AlarmPublisher
from edge.spool import FileSpool
from edge.testing import alarm, alarm_ids, cluster_client, heartbeat, until
from polewatch import connection, keys, settings
from polewatch.embedded import EmbeddedCluster
from polewatch.poles import registry as registry_module
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry
from polewatch.zones import ZoneMap

FUTIAN = (114.05, 22.55)
LUOHU = (114.131, 22.548)
"""Deep inside two districts whose streams the session cluster keeps on different masters."""
BORDER_F, BORDER_L = (114.0993, 22.56423), (114.0995, 22.56430)
"""Either side of the Futian-Luohu border (Futian lies west)."""


@pytest.fixture(scope="module")
def zones(zones_file: Path) -> ZoneMap:
    return ZoneMap.load(zones_file)


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[RedisCluster]:
    with cluster_client(cluster_url) as client:
        yield client


@pytest.fixture
async def acluster(cluster_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connection.connect(cluster_url, name="test", cluster=True)
    yield client
    await client.aclose()


def zoned(url: str, zones_file: Path) -> dict[str, object]:
    """The shared settings of a zoned deployment on a cluster."""
    return {"redis_url": url, "redis_cluster": True, "zones": str(zones_file)}


async def test_alarms_land_on_their_zones_streams_with_their_snapshots(
    cluster_url: str, cluster: RedisCluster, zones: ZoneMap, zones_file: Path
) -> None:
    assert (zones.locate(*FUTIAN), zones.locate(*LUOHU)) == ("futian", "luohu")
    futian, luohu = keys.zone("futian"), keys.zone("luohu")
    on = {cluster.get_node_from_key(k).name for k in (futian.alarms, luohu.alarms)}
    assert len(on) == 2, "the two zones should live on two shards"
    conf = settings.Settings(**zoned(cluster_url, zones_file))  # type: ignore[arg-type]
    async with AlarmPublisher.from_settings(conf, name="edge") as pub:
        outcomes = await asyncio.gather(
            pub.publish(alarm(1, lon=FUTIAN[0], lat=FUTIAN[1]), snapshot=b"jpeg-1"),
            pub.publish(alarm(2, lon=LUOHU[0], lat=LUOHU[1]), snapshot=b"jpeg-2"),
            pub.publish(alarm(3, lon=FUTIAN[0], lat=FUTIAN[1])),
            pub.heartbeat(heartbeat(1)),
        )
        assert await pub.frame("cam-1", b"frame")
    assert list(outcomes) == ["sent"] * 4
    assert alarm_ids(cluster, futian.alarms) == ["t-1", "t-3"]
    assert alarm_ids(cluster, luohu.alarms) == ["t-2"]
    assert cluster.exists(keys.ALARMS) == 0  # nothing in the zone-less stream
    assert cluster.get(keys.snapshot("t-1")) == b"jpeg-1"
    assert cluster.get(keys.snapshot("t-2")) == b"jpeg-2"
    assert cluster.xlen(keys.HEARTBEATS) == 1 and cluster.get(keys.camera_frame("cam-1"))
    # The zoned dispatcher takes them from there: one incident per zone, the same door merged.
    totals = await sc.drain(cluster_url, redis_cluster=True, zones=str(zones_file))
    assert totals["incidents"] == 2 and totals["merged"] == 1
    assert sc.incident(cluster, "futian-1").reports == 2
    assert sc.incident(cluster, "luohu-1").first_alarm == "t-2"


async def test_spooled_alarms_reach_their_zones_when_the_cluster_is_back(
    tmp_path: Path, zones_file: Path
) -> None:
    with EmbeddedCluster(tmp_path / "cluster", masters=1, appendonly=True) as private:
        conf = settings.Settings(**zoned(private.url, zones_file))  # type: ignore[arg-type]
        pub = AlarmPublisher.from_settings(conf, name="edge", spool=FileSpool(tmp_path / "spool"))
        pub.retry_cap_s = 0.2
        async with pub:
            assert await pub.publish(alarm(0, lon=FUTIAN[0], lat=FUTIAN[1])) == "sent"
            private.nodes[0].stop()
            away = [
                await pub.publish(alarm(1, lon=FUTIAN[0], lat=FUTIAN[1]), snapshot=b"jpeg-1"),
                await pub.publish(alarm(2, lon=LUOHU[0], lat=LUOHU[1])),
                await pub.heartbeat(heartbeat(1)),
                await pub.publish(alarm(3, lon=FUTIAN[0], lat=FUTIAN[1])),
            ]
            assert away == ["spooled"] * 4 and not pub.connected
            private.nodes[0].start()
            await pub.drained(20)
            assert pub.connected and pub.stats.replayed == 4 and pub.stats.lost == 0
        with cluster_client(private.url) as client:
            assert alarm_ids(client, keys.zone("futian").alarms) == ["t-0", "t-1", "t-3"]
            assert alarm_ids(client, keys.zone("luohu").alarms) == ["t-2"]
            assert client.get(keys.snapshot("t-1")) == b"jpeg-1"
            assert client.xlen(keys.HEARTBEATS) == 1


async def test_pole_registry_transactions_stay_on_the_citys_shard(
    acluster: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pole(code: str) -> Pole:
        return Pole(code=code, lon=114.05, lat=22.55, city="sz", district="Futian")

    registry = PoleRegistry(acluster, "sz")
    changes: asyncio.Queue[int] = asyncio.Queue()
    ready = asyncio.Event()
    follower = asyncio.create_task(registry.follow(lambda: changes.put(1), poll_s=60, ready=ready))
    try:
        await ready.wait()
        await changes.get()  # the call right after subscribing
        assert await registry.store([pole("A"), pole("B")]) == 1
        await asyncio.wait_for(changes.get(), 10)  # heard on the cluster's channel
        monkeypatch.setattr(registry_module, "CHUNK", 1)  # chunked writes, then RENAME live
        assert await registry.store([pole("B"), pole("C"), pole("D")], replace=True) == 2
        version, poles = await registry.load()
        assert version == 2 and sorted(p.code for p in poles) == ["B", "C", "D"]
        assert await acluster.exists(keys.poles_staging("sz"), keys.poles_geo_staging("sz")) == 0
        assert await registry.remove(["B", "nope"]) == 1 and await registry.version() == 3
        assert await PoleRegistry.cities(acluster) == ["sz"]
        assert await registry.store([], replace=True) == 4 and await registry.count() == 0
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_door_agent_places_its_door_by_pole_and_alarms_in_its_zone(
    cluster_url: str, cluster: RedisCluster, acluster: aioredis.Redis, zones_file: Path
) -> None:
    pole = Pole(code="4401234", lon=LUOHU[0], lat=LUOHU[1], city="shenzhen", grid="LH-1")
    await PoleRegistry(acluster, "shenzhen").store([pole])
    conf = DoorSettings(
        **zoned(cluster_url, zones_file),  # type: ignore[arg-type]
        http_port=-1, tcp_port=-1, doors=[Door(id="D1", controller="C1", pole="4401234")],
    )  # fmt: skip
    async with DoorAgent(conf, background=False) as agent:
        (raised,) = await agent.accept(
            [DoorEvent(controller="C1", door="D1", event="tamper", ts=5)]
        )
        await agent.publisher.drained(5)
    assert (raised.lon, raised.lat, raised.grid) == (LUOHU[0], LUOHU[1], "LH-1")
    assert alarm_ids(cluster, keys.zone("luohu").alarms) == [raised.id]


async def test_button_follows_its_alarm_to_the_zone_across_the_border(
    cluster_url: str, cluster: RedisCluster, zones: ZoneMap, zones_file: Path
) -> None:
    # The pole is 80 m inside Futian; the only free unit is 40 m inside Luohu.
    pole = sc.shifted(*BORDER_F, east_m=-80)
    unit = sc.shifted(*BORDER_L, east_m=40)
    assert (zones.locate(*pole), zones.locate(*unit)) == ("futian", "luohu")
    conf = dict(redis_cluster=True, zones=str(zones_file))
    await sc.step(cluster_url, cluster, sc.on_duty("L1", *unit), **conf)
    button = ButtonSettings(
        **zoned(cluster_url, zones_file),  # type: ignore[arg-type]
        pole="4403217", lon=pole[0], lat=pole[1], poll_s=0.2,
    )  # fmt: skip
    async with ButtonAgent(button) as agent:
        pressed = await agent.press()
        assert pressed.stage == "sent"
        assert alarm_ids(cluster, keys.zone("futian").alarms) == [pressed.alarm]
        totals = await sc.drain(cluster_url, **conf)
        assert totals["routed"] == 1
        assert cluster.get(keys.zone("futian").alarm_route(pressed.alarm or "")) == b"luohu"
        await until(lambda: agent.feedback.stage == "dispatched")
        assert (agent.feedback.incident, agent.feedback.units) == ("luohu-1", ["L1"])
        answers = [sc.status("L1", "luohu-1", a) for a in ("acknowledged", "en_route", "on_scene")]
        await sc.step(cluster_url, cluster, *answers, **conf)
        await until(lambda: agent.feedback.stage == "on_scene")
