"""The tests' own waits (tests/waiting.py): each returns what it waited for, wakes on the event it
names, and fails saying what did not happen, at once when the work it waits on ends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
import redis
import redis.asyncio as aioredis
from waiting import (
    ending,
    until,
    until_announced_sync,
    until_notified,
    until_sync,
    until_written,
)

from polewatch import keys


async def test_a_wait_returns_the_first_true_result_or_fails_naming_what() -> None:
    seen = iter([0, [], "found"])
    assert await until(lambda: next(seen), "a result") == "found"
    with pytest.raises(AssertionError, match=r"not within 0.1 s: the impossible"):
        await until(lambda: False, "the impossible", 0.1)
    with pytest.raises(AssertionError, match=r"not within 0.1 s: the impossible"):
        until_sync(lambda: None, "the impossible", 0.1)


async def test_a_stream_wait_wakes_on_the_entry_that_makes_it_true(aredis: aioredis.Redis) -> None:
    async def length() -> int:
        return int(await aredis.xlen(keys.AUDIT))

    async def blocked() -> bool:
        clients: list[dict[str, str]] = await aredis.client_list()
        return any(c["cmd"] == "xread" and "b" in c["flags"] for c in clients)

    async def write() -> None:  # once the wait is blocked in XREAD: only the entry can wake it
        await until(blocked, "the wait blocked in XREAD", 30)
        await aredis.xadd(keys.AUDIT, {"m": b"1"})

    writer = asyncio.ensure_future(write())
    assert await until_written(aredis, keys.AUDIT, length, "an audit entry", 30) == 1
    await writer
    with pytest.raises(AssertionError, match=r"not within 0.2 s: a second entry"):
        await until_written(aredis, keys.AUDIT, lambda: False, "a second entry", 0.2)


def test_an_announced_wait_wakes_on_the_announcement(sync_redis: redis.Redis) -> None:
    channel = keys.DEFAULT.unit_changes
    told: list[str] = []

    def dispatcher() -> None:  # announces once the wait is subscribed: only that can wake it
        until_sync(lambda: sync_redis.pubsub_numsub(channel)[0][1], "the wait subscribed", 30)
        told.append("u1")
        sync_redis.publish(channel, "u1")

    thread = threading.Thread(target=dispatcher)
    thread.start()
    try:
        assert until_announced_sync(sync_redis, channel, lambda: told, "an announcement", 30)
    finally:
        thread.join()
    with pytest.raises(AssertionError, match=r"not within 0.2 s: another announcement"):
        until_announced_sync(sync_redis, channel, lambda: None, "another announcement", 0.2)


async def test_a_notified_wait_looks_again_after_each_notify() -> None:
    got: list[int] = []
    more = asyncio.Condition()

    async def reader() -> None:
        for n in range(3):
            got.append(n)
            async with more:
                more.notify_all()

    task = asyncio.ensure_future(reader())
    assert await until_notified(more, lambda: len(got) == 3, "three things read", 30)
    await task


async def test_a_wait_on_a_process_that_dies_fails_at_once_with_its_status() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # noqa: ASYNC220 (what ending watches)
    with ending(proc) as ended, pytest.raises(AssertionError, match=r"work.*ended \(3\)"):
        await until(lambda: False, "the process's work", 60, alongside=ended)
    task = asyncio.ensure_future(asyncio.sleep(0))
    with pytest.raises(AssertionError, match=r"the task's work: the work it waits on ended"):
        await until(lambda: False, "the task's work", 60, alongside=task)
