"""Agents as their own Redis users on a Redis Cluster with dispatch zones: ``polewatch acl
apply`` defines each user on every node, and an edge agent can append to any zone's alarm
stream and nothing more (no zone's incidents, streams or unit inboxes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError

from edge.publisher import AlarmPublisher
from edge.testing import alarm, alarm_ids, cluster_client, heartbeat
from polewatch import keys, settings
from polewatch.cli import main

USERS = ("door-1", "button-1", "gw-1")
FUTIAN, LUOHU = keys.zone("futian"), keys.zone("luohu")


@pytest.fixture
def root(cluster_url: str) -> Iterator[RedisCluster]:
    """The cluster's admin; the users made here are removed from every node afterwards (the
    cluster is the session's)."""
    with cluster_client(cluster_url) as client:
        yield client
        client.execute_command("ACL", "DELUSER", *USERS, target_nodes=RedisCluster.ALL_NODES)


@pytest.fixture
def users(
    cluster_url: str, root: RedisCluster, zones_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, str]:  # fmt: skip
    """``polewatch acl apply`` on the cluster: user -> URL."""
    monkeypatch.setenv("POLEWATCH_REDIS_CLUSTER", "true")
    monkeypatch.setenv("POLEWATCH_ZONES", str(zones_file))
    specs = ["door-1=edge", "button-1=button", "gw-1=gateway"]
    assert main(["acl", "apply", "--redis-url", cluster_url, *specs]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    return {user: url for user, _, url in lines}


def refused(*commands: Callable[[], Any]) -> None:
    for command in commands:
        with pytest.raises(NoPermissionError):
            command()


def test_apply_defines_each_user_on_every_node(root: RedisCluster, users: dict[str, str]) -> None:
    assert sorted(users) == sorted(USERS)
    nodes = root.get_nodes()
    assert len(nodes) == 3
    for node in nodes:
        for user in USERS:
            assert root.execute_command("ACL", "GETUSER", user, target_nodes=node) is not None


async def test_edge_user_appends_to_zone_streams_and_reads_nothing(
    cluster_url: str, root: RedisCluster, users: dict[str, str], zones_file: Path
) -> None:
    root.hset(FUTIAN.incident("futian-1"), mapping={"id": "futian-1", "state": "new"})
    conf = settings.Settings(redis_url=users["door-1"], redis_cluster=True, zones=str(zones_file))
    async with AlarmPublisher.from_settings(conf, name="door-1") as pub:
        assert await pub.publish(alarm(1, lon=114.05, lat=22.55), snapshot=b"jpeg") == "sent"
        assert await pub.publish(alarm(2, lon=114.131, lat=22.548)) == "sent"
        assert await pub.heartbeat(heartbeat(1)) == "sent"
        assert await pub.frame("cam-1", b"frame")
    assert alarm_ids(root, FUTIAN.alarms) == ["t-1"] and alarm_ids(root, LUOHU.alarms) == ["t-2"]
    assert root.get(keys.snapshot("t-1")) == b"jpeg"
    with cluster_client(users["door-1"]) as edge:
        refused(
            lambda: edge.hgetall(FUTIAN.incident("futian-1")),
            lambda: edge.hget(FUTIAN.incident("futian-1"), "state"),
            lambda: edge.get(FUTIAN.alarm("t-1")),
            lambda: edge.xrange(FUTIAN.alarms),
            lambda: edge.xadd(FUTIAN.unit_inbox("u1"), {"m": b"x"}),
            lambda: edge.xadd(LUOHU.commands, {"m": b"x"}),
            lambda: edge.xadd(LUOHU.patrol_events, {"m": b"x"}),
            lambda: edge.hsetnx(keys.UNIT_ZONES, "u1", "futian"),
            lambda: edge.set(FUTIAN.alarms, b"wiped"),
            lambda: edge.get(keys.snapshot("t-1")),
        )
    assert root.xlen(FUTIAN.alarms) == 1 and not root.exists(FUTIAN.unit_inbox("u1"))


def test_button_and_gateway_users_in_the_zones(root: RedisCluster, users: dict[str, str]) -> None:
    root.set(FUTIAN.alarm_route("a1"), "luohu")
    root.set(LUOHU.alarm("a1"), "luohu-3")
    root.hset(LUOHU.incident("luohu-3"), mapping={"state": "dispatched", "units": "u1"})
    with cluster_client(users["button-1"]) as button, cluster_client(users["gw-1"]) as gateway:
        assert button.get(FUTIAN.alarm_route("a1")) == b"luohu"
        assert button.get(LUOHU.alarm("a1")) == b"luohu-3"
        assert button.hmget(LUOHU.incident("luohu-3"), ["state", "units"]) == [
            b"dispatched", b"u1"
        ]  # fmt: skip
        refused(
            lambda: button.hset(LUOHU.incident("luohu-3"), "state", "closed"),
            lambda: button.hgetall(LUOHU.unit("u1")),
            lambda: button.xadd(LUOHU.unit_inbox("u1"), {"m": b"x"}),
        )
        gateway.xadd(LUOHU.patrol_events, {"m": b"x"})
        gateway.xadd(LUOHU.commands, {"m": b"x"})
        assert gateway.hsetnx(keys.UNIT_ZONES, "u1", "luohu")
        assert gateway.hgetall(LUOHU.incident("luohu-3"))[b"state"] == b"dispatched"
        refused(
            lambda: gateway.hset(LUOHU.incident("luohu-3"), "state", "closed"),
            lambda: gateway.xadd(LUOHU.unit_inbox("u1"), {"m": b"x"}),
            lambda: gateway.hset(keys.UNIT_ZONES, "u1", "futian"),  # first writer wins
        )
    assert root.hget(keys.UNIT_ZONES, "u1") == b"luohu"
