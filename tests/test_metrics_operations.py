"""Operational metrics: a scrape of the gateway or of any dispatcher shows the deployment's
state (incidents by priority, units by status, streams and their consumer groups, dead letters
by reason, agent health), the same figures from both."""

from __future__ import annotations

import asyncio
import inspect
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import scenario as sc
from dispatcher.metrics import Metrics
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.testing import bearer, gateway_client, unit_token
from polewatch import keys, wire
from polewatch.embedded import free_port
from polewatch.operations import StateCollector, reason_class

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """``(name, sorted labels) -> value`` of every sample in a Prometheus exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def fields(message: wire.Message) -> Any:
    return wire.entry(message)


def a_shift(client: redis.Redis) -> None:
    """One unit working, one off duty; a P2 dispatched, a P3 and a P4 waiting; bad entries;
    a command stuck 90 s in a dead consumer; three agents heard from."""
    sc.write(client, [sc.on_duty("u1", 114.0, 22.55), sc.on_duty("u2", 114.0, 22.55),
                      sc.off_duty("u2")])  # fmt: skip
    sc.write(client, [sc.alarm(114.0, 22.5), sc.alarm(114.2, 22.6, type="loitering"),
                      sc.alarm(114.4, 22.7, type="camera_offline")])  # fmt: skip
    client.xadd(keys.ALARMS, {b"m": b"junk"})
    sc.write(client, [sc.status("u1", "77", "acknowledged")])
    old = int((time.time() - 90) * 1000)
    client.xgroup_create(keys.COMMANDS, keys.DISPATCH_GROUP, id="0", mkstream=True)
    client.xadd(keys.COMMANDS, fields(sc.command("cancel", "1")), id=f"{old}-0")
    client.xreadgroup(keys.DISPATCH_GROUP, "dead-replica", {keys.COMMANDS: ">"}, count=1)
    # The archivers have not read the audit stream since an entry of two minutes ago.
    event = wire.IncidentEvent(incident="0", event="new", ts=time.time() - 120)
    client.xadd(keys.AUDIT, fields(event), id=f"{int(event.ts * 1000)}-0")
    client.xgroup_create(keys.AUDIT, keys.ARCHIVE_GROUP, id="0")
    now = time.time()
    for hb in (
        wire.Heartbeat(source="camera:c1", kind="camera", status="online", ts=now),
        wire.Heartbeat(source="camera:c2", kind="camera", status="offline", ts=now - 5),
        wire.Heartbeat(source="door:d1", kind="door_agent", status="online", ts=now - 600),
    ):
        client.xadd(keys.HEARTBEATS, fields(hb))


def audit_length(found: Samples) -> float:
    return value(found, "polewatch_stream_length", stream=keys.AUDIT)


def check(found: Samples) -> None:
    for p, n in {"1": 0, "2": 1, "3": 1, "4": 1}.items():
        assert value(found, "polewatch_incidents_open", priority=p) == n, p
    for p, n in {"1": 0, "2": 0, "3": 1, "4": 1}.items():
        assert value(found, "polewatch_incidents_escalated", priority=p) == n, p
    for status, n in {"dispatched": 1, "off_duty": 1, "available": 0, "unresponsive": 0}.items():
        assert value(found, "polewatch_units", status=status) == n, status
    assert value(found, "polewatch_stream_length", stream=keys.ALARMS) == 4
    group = {"stream": keys.COMMANDS, "group": keys.DISPATCH_GROUP}
    assert value(found, "polewatch_stream_pending", **group) == 1
    assert 89 <= value(found, "polewatch_stream_oldest_pending_seconds", **group) < 300
    assert 119 <= value(found, "polewatch_archive_lag_seconds", stream=keys.AUDIT) < 400
    archivers = {"stream": keys.AUDIT, "group": keys.ARCHIVE_GROUP}
    assert value(found, "polewatch_stream_oldest_unread_seconds", **archivers) >= 119
    assert value(found, "polewatch_stream_lag", **archivers) == audit_length(found)
    done = {"stream": keys.ALARMS, "group": keys.DISPATCH_GROUP}
    assert value(found, "polewatch_stream_pending", **done) == 0
    assert value(found, "polewatch_stream_oldest_pending_seconds", **done) == 0
    dead = {(dict(labels)["source"], dict(labels)["reason"]): v for (name, labels), v
            in found.items() if name == "polewatch_dead_letters_total"}  # fmt: skip
    assert dead[("patrol-events", "unknown incident N")] == 1
    assert sum(v for (source, _), v in dead.items() if source == "alarms") == 1
    assert value(found, "polewatch_agents", kind="camera", status="online") == 1
    assert value(found, "polewatch_agents", kind="camera", status="offline") == 1
    assert value(found, "polewatch_agents", kind="door_agent", status="stale") == 1
    assert value(found, "polewatch_agent_heartbeat_age_seconds", kind="door_agent") >= 600


async def test_gateway_and_dispatcher_show_the_same_shift(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    a_shift(sync_redis)
    conf = DispatcherSettings(redis_url=redis_url, consumer="m")
    dispatcher = Dispatcher(conf, burst=True, client=aredis)
    await dispatcher.run()
    async with gateway_client(redis_url) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        from_gateway = samples(await response.text())
    check(from_gateway)
    await dispatcher.read_state()
    port = free_port()
    close = dispatcher.metrics.serve(port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    finally:
        close()
    check(samples(body.decode()))


async def test_dead_letters_are_counted_once_each(redis_url: str, sync_redis: redis.Redis) -> None:
    """A second scrape counts only the dead letters added since the first."""
    sync_redis.xadd(keys.ALARMS, {b"m": b"junk"})
    await sc.drain(redis_url)
    async with gateway_client(redis_url) as client:
        first = samples(await (await client.get("/metrics")).text())
        sync_redis.xadd(keys.ALARMS, {b"m": b"more junk"})
        await sc.drain(redis_url)
        second = samples(await (await client.get("/metrics")).text())

    def total(found: Samples) -> float:
        return sum(v for (name, _), v in found.items() if name == "polewatch_dead_letters_total")

    assert (total(first), total(second)) == (1, 2)


def test_reasons_lose_their_ids_only() -> None:
    assert reason_class("dispatch of 12 to u3 is not awaiting acknowledgement") == (
        "dispatch of N to N is not awaiting acknowledgement"
    )
    assert reason_class("incident futian-7 is closed") == "incident N is closed"
    assert reason_class("cannot merge an incident into itself") == (
        "cannot merge an incident into itself"
    )


def test_the_dispatchers_metrics_listen_on_loopback_unless_told() -> None:
    assert DispatcherSettings().metrics_addr == "127.0.0.1"
    assert inspect.signature(Metrics.serve).parameters["addr"].default == "127.0.0.1"


async def test_a_zoned_cluster_deployment_is_read_zone_by_zone(
    cluster_url: str, zones_file: Path
) -> None:
    """On a Redis Cluster with dispatch zones, one scrape sums every zone's state."""
    conf: dict[str, Any] = {"redis_cluster": True, "zones": str(zones_file)}
    async with gateway_client(cluster_url, **conf) as client:
        for unit, (lon, lat) in (("U1", (113.93, 22.53)), ("U2", (114.055, 22.541))):
            body = {"duty": "on_duty", "lon": lon, "lat": lat}
            answer = await client.post(
                "/api/patrol/duty", headers=bearer(unit_token(unit)), json=body
            )
            assert answer.status == 202
        settings = DispatcherSettings(redis_url=cluster_url, consumer="m", **conf)
        await Dispatcher(settings, burst=True).run()
        found = samples(await (await client.get("/metrics")).text())
    assert value(found, "polewatch_units", status="available") == 2
    zoned = [labels for name, labels in found if name == "polewatch_stream_length"]
    assert len(zoned) == 5 * 10 + 1  # five streams in each of the ten districts, heartbeats
    assert value(found, "polewatch_incidents_open", priority="1") == 0


async def test_each_incidents_priority_is_read_once(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    """A scrape reads the priority of incidents it has not seen yet only (units every time);
    one closed since is no longer counted."""
    sc.write(sync_redis, [sc.on_duty("u1", 114.0, 22.55), sc.alarm(114.0, 22.5),
                          sc.alarm(114.2, 22.6, type="loitering")])  # fmt: skip
    await sc.drain(redis_url)
    collector = StateCollector()
    await collector.refresh(aredis, [keys.DEFAULT])
    assert collector.state is not None and collector.state.open == {"2": 1, "3": 1}

    def hgets() -> int:
        stats: Any = sync_redis.info("commandstats")
        return int(stats["cmdstat_hget"]["calls"])

    before = hgets()
    await collector.refresh(aredis, [keys.DEFAULT])
    assert hgets() - before == 1  # u1's status, nothing else
    await sc.step(redis_url, sync_redis, sc.status("u1", "1", "resolved"))
    await collector.refresh(aredis, [keys.DEFAULT])
    assert collector.state.open == {"3": 1} and collector.priorities.known == {"2": "3"}


async def test_scrapes_that_arrive_together_share_one_reading(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    """A flood of scrapes of the open /metrics costs Redis one reading at a time."""
    await sc.step(redis_url, sync_redis, sc.on_duty("u1", 114.0, 22.55))

    def readings() -> int:
        stats: Any = sync_redis.info("commandstats")
        return int(stats["cmdstat_xinfo|groups"]["calls"])

    alone = StateCollector()
    await alone.refresh(aredis, [keys.DEFAULT])
    before = readings()
    await alone.refresh(aredis, [keys.DEFAULT])
    one = readings() - before
    assert one > 0
    flooded = StateCollector()
    before = readings()
    await asyncio.gather(*(flooded.refresh(aredis, [keys.DEFAULT]) for _ in range(20)))
    assert readings() - before == one
    assert flooded.state is not None and flooded.state.units == {"available": 1}
