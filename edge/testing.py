"""Builders and waits for the edge tests (alarms, heartbeats, reading the streams); test-only
helpers kept in the package so every test module (and a crashing child process) can import
them however pytest lays out sys.path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis
from redis.cluster import RedisCluster

from polewatch import keys, wire
from polewatch.connection import close_sync


def alarm(n: int, **kw: Any) -> wire.Alarm:
    fields: dict[str, Any] = {
        "id": f"t-{n}",
        "type": "door_forced",
        "source": "door:test",
        "ts": 1_700_000_000.0 + n,
        "lon": 114.05,
        "lat": 22.54,
    }
    fields.update(kw)
    return wire.Alarm(**fields)


def heartbeat(n: int) -> wire.Heartbeat:
    return wire.Heartbeat(source="door:test", kind="door", status="online", ts=1.0 + n)


def alarm_ids(client: redis.Redis | RedisCluster, stream: str = keys.ALARMS) -> list[str]:
    """Ids of every alarm in the stream, in stream order."""
    return [a.id for a in alarms(client, stream)]


def alarms(client: redis.Redis | RedisCluster, stream: str = keys.ALARMS) -> list[wire.Alarm]:
    """Every alarm in the stream, decoded, in stream order."""
    entries: Any = client.xrange(stream)
    return [wire.decode_entry(f, wire.Alarm) for _, f in entries]


async def until(check: Callable[[], Any], within_s: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, or fail."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def cluster_client(url: str) -> Iterator[RedisCluster]:
    """A synchronous Redis Cluster client that really closes: ``RedisCluster.close()`` leaves
    its nodes' pooled sockets to the garbage collector (a ResourceWarning, an error here)."""
    client = RedisCluster.from_url(url)
    try:
        yield client
    finally:
        close_sync(client)  # type: ignore[arg-type]
