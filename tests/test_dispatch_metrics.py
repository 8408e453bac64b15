"""A replica's Prometheus metrics count what it did and are served over HTTP."""

from __future__ import annotations

import asyncio
import urllib.request

import redis

from dispatcher import scenario as sc
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys
from polewatch.embedded import free_port


async def test_metrics_count_and_are_served(redis_url: str, sync_redis: redis.Redis) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", 114.0, 22.55)])
    sc.write(sync_redis, [sc.alarm(114.0, 22.5), sc.alarm(114.0, 22.5), sc.alarm(114.2, 22.6)])
    sync_redis.xadd(keys.ALARMS, {b"m": b"junk"})
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, consumer="m"), burst=True)
    await dispatcher.run()
    port = free_port()
    close = dispatcher.metrics.serve(port, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    finally:
        close()
    text = body.decode()
    expected = {
        "polewatch_dispatcher_alarms_total": 3.0,
        "polewatch_dispatcher_incidents_total": 2.0,
        "polewatch_dispatcher_merged_alarms_total": 1.0,
        "polewatch_dispatcher_dispatches_total": 1.0,
        "polewatch_dispatcher_escalations_total": 1.0,
        "polewatch_dispatcher_dead_letters_total": 1.0,
    }
    for name, value in expected.items():
        assert f"{name} {value}" in text, name
    assert "polewatch_dispatcher_batch_seconds_count" in text
