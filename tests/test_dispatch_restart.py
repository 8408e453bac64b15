"""A replica rides out a Redis restart, even one that lost everything (functions, groups)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from waiting import until_written

from dispatcher import scenario as sc
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys, records
from polewatch.embedded import EmbeddedRedis


async def wait_for(
    condition: Callable[[], object], what: str, url: str, task: asyncio.Task[None]
) -> None:
    """Wait until ``condition()`` holds, woken by each audit entry the dispatcher writes (on a
    fresh connection: the server may have been restarted empty)."""
    async with aioredis.Redis.from_url(url) as reader:
        await until_written(reader, keys.AUDIT, condition, what, 20, alongside=task)


async def test_replica_survives_a_redis_that_lost_everything(
    make_redis: type[EmbeddedRedis], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis(tmp_path / "r", appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    settings = DispatcherSettings(redis_url=server.url, consumer="steady", block_ms=100)
    dispatcher = Dispatcher(settings)
    task = asyncio.create_task(dispatcher.run())
    try:
        sc.write(client, [sc.on_duty("u1", 114.0, 22.55)])
        first = sc.alarm(114.0, 22.5)
        sc.write(client, [first])
        await wait_for(lambda: client.exists(keys.alarm(first.id)), "the first alarm taken",
                       server.url, task)  # fmt: skip
        server.stop()
        server.start()  # same port, empty: no functions, no groups, no data
        second = sc.alarm(114.1, 22.6)
        sc.write(client, [sc.on_duty("u2", 114.1, 22.61), second])
        await wait_for(lambda: client.exists(keys.alarm(second.id)), "the alarm after the restart",
                       server.url, task)  # fmt: skip
        assert sc.incident(
            client, str(records.alarm_incident(client.get(keys.alarm(second.id))))
        ).units == ["u2"]
        assert "lost the dispatcher's setup" in caplog.text
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 10)
        client.close()


async def test_a_failed_call_leaves_the_batches_read_ahead_to_the_restarted_loop(
    redis_url: str, sync_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop reads and prepares batch n+1 while batch n's call runs; when that call fails
    (here: the functions are gone), n and what was read after it stay pending, and the loop,
    started again, does them all: nothing is lost, nothing done twice."""
    alarms = [sc.alarm(114.0 + i / 100, 22.5) for i in range(7)]
    sc.write(sync_redis, [sc.on_duty(f"u{i}", 114.0 + i / 100, 22.5) for i in range(7)])
    sc.write(sync_redis, alarms)
    sends: list[int] = []

    class LosesItsFunctionsOnce(Dispatcher):
        async def _send(self, batch: Any, zone: keys.Zone, written: Any = None) -> dict[str, int]:
            sends.append(len(batch.good))
            if len(sends) == 2:  # the second batch: Redis lost the library meanwhile
                await self.client.function_flush()
            return await super()._send(batch, zone, written)

    settings = DispatcherSettings(redis_url=redis_url, consumer="c", batch_size=2)
    dispatcher = LosesItsFunctionsOnce(settings, burst=True)
    await dispatcher.run()
    assert "lost the dispatcher's setup" in caplog.text  # (the loop was started again)
    assert dispatcher.totals["alarms"] == 7 and dispatcher.totals["duplicates"] == 0
    assert {sc.incident(sync_redis, str(n + 1)).units[0] for n in range(7)} == {
        f"u{i}" for i in range(7)}  # fmt: skip
    for stream in (keys.ALARMS, keys.PATROL_EVENTS):
        assert sync_redis.xpending(stream, keys.DISPATCH_GROUP)["pending"] == 0
