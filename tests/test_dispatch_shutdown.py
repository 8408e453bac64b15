"""SIGTERM stops a dispatcher replica within its grace period, even while Redis is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from dispatcher import trim
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys
from polewatch.embedded import EmbeddedRedis


def test_sigterm_with_redis_gone_stops_within_the_grace_period(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    env = {**os.environ, "REDIS_URL": server.url, "POLEWATCH_SHUTDOWN_GRACE_S": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", "dispatcher", "--consumer", "doomed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = redis.Redis.from_url(server.url)
        wait_for_heartbeat(client, lambda: proc.poll() is None)  # the replica is up, consuming
        client.close()
        server.kill()
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = proc.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    assert proc.returncode == 0, err
    assert took < 2 + 5, f"took {took:.1f} s to stop"


async def test_a_stop_ends_the_periodic_jobs_even_if_a_cancellation_is_swallowed(
    redis_url: str, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py can swallow a task's cancellation that lands inside a command (seen: a replica
    took the whole 10 s trim period to stop after SIGTERM, 2 runs in 9 under load). Here the
    trim job swallows it on purpose, with an hour's period: stopping must still end it."""
    swallowed = asyncio.Event()

    async def stubborn_trim() -> None:
        try:
            await asyncio.Event().wait()  # a job that only ends when cancelled
        except asyncio.CancelledError:
            swallowed.set()  # what the racing library does: the cancellation is lost

    monkeypatch.setattr(trim, "EVERY_S", 3600.0)
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, consumer="calm", block_ms=100))
    monkeypatch.setattr(dispatcher, "trim", stubborn_trim)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.to_thread(wait_for_heartbeat, sync_redis, lambda: not task.done())
    dispatcher.stop()
    done, _ = await asyncio.wait({task}, timeout=60)  # before the fix: an hour, asleep
    if not done:
        task.cancel()
    assert done and swallowed.is_set(), "the replica did not stop"
    task.result()


def wait_for_heartbeat(
    client: redis.Redis, alive: Callable[[], bool], within_s: float = 30.0
) -> None:
    """Block on the heartbeat stream until the replica's first heartbeat (it is up and its
    periodic jobs run), checking every second that it is still alive."""
    deadline = time.monotonic() + within_s
    while not client.xread({keys.HEARTBEATS: "0-0"}, count=1, block=1000):
        assert alive(), "the replica ended before its first heartbeat"
        assert time.monotonic() < deadline, "the replica never sent a heartbeat"
