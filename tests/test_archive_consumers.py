"""Archiver replicas get names of their own (``<hostname>-<pid>`` unless told), a replica
restarted under a new name leaves its entries to be taken over, and consumers that are gone
and hold nothing leave the group instead of piling up in ``XINFO CONSUMERS``."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

import psycopg
import redis.asyncio as aioredis

from analytics.simulation import simulate_week, write_incidents
from archiver.service import GROUP, Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from archiver.stream import ensure_group
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys
from polewatch.groups import forget_gone

WEEK = 1_767_225_600.0
AN_HOUR_MS = 3_600_000


async def _consumers(redis: aioredis.Redis) -> dict[str, int]:
    """Name -> pending entries of each consumer of the archivers' group."""
    found = await redis.xinfo_consumers(keys.AUDIT, GROUP)
    return {c["name"].decode(): c["pending"] for c in found}


def test_replicas_started_without_a_name_get_their_own(database_url: str) -> None:
    settings = ArchiverSettings(database_url=database_url)
    archiver = ZoneArchiver(aioredis.Redis(), settings, keys.DEFAULT, Metrics())
    mine = f"{socket.gethostname()}-{os.getpid()}"
    assert (settings.consumer, archiver.consumer) == ("", mine)
    # the dispatcher names its replicas the same way (one helper in the core)
    assert Dispatcher(DispatcherSettings()).consumer == mine
    named = ArchiverSettings(database_url=database_url, consumer="archiver-east")
    assert ZoneArchiver(aioredis.Redis(), named, keys.DEFAULT, Metrics()).consumer == named.consumer


async def test_a_restarted_replica_takes_over_its_old_entries_and_forgets_the_old_name(
    aredis: aioredis.Redis, redis_url: str, database_url: str
) -> None:
    """An archiver read the whole stream and died before archiving any of it; a replica that
    held nothing stopped long ago. A new ``polewatch archiver`` process (no ``--consumer``)
    takes the dead one's entries over, archives them, and deletes both old names."""
    week = simulate_week(WEEK, seed=5, per_day=3)
    entries = await write_incidents(aredis, week)
    await ensure_group(aredis, keys.AUDIT)
    read: Any = await aredis.xreadgroup(GROUP, "archiver-1", {keys.AUDIT: ">"})
    ids = [entry_id for entry_id, _ in read[0][1]]
    # its entries an hour idle, as after a crash long ago (instead of waiting claim_idle_ms)
    await aredis.xclaim(keys.AUDIT, GROUP, "archiver-1", 0, ids, idle=AN_HOUR_MS, justid=True)
    await aredis.xgroup_createconsumer(keys.AUDIT, GROUP, "archiver-2")
    assert await _consumers(aredis) == {"archiver-1": entries, "archiver-2": 0}

    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "POLEWATCH_FORGET_IDLE_MS": "1"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "polewatch.cli", "archiver", "--burst", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]

    async with await psycopg.AsyncConnection.connect(database_url) as pg:
        cur = await pg.execute("SELECT count(*), (SELECT count(*) FROM audit) FROM incident")
        archived = await cur.fetchone()
    ending = {"resolved", "closed", "cancelled", "merged"}
    assert archived == (sum(1 for i in week if i.state in ending), entries)
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0
    # the old names are gone, the new process's own (<hostname>-<pid>) is the group's only one
    assert await _consumers(aredis) == {f"{socket.gethostname()}-{proc.pid}": 0}
    assert "consumers gone from archivers (nothing pending, idle 1 ms): archiver-1, archiver-2" in (
        err.decode()
    )


async def test_only_consumers_holding_nothing_and_idle_long_enough_are_forgotten(
    aredis: aioredis.Redis,
) -> None:
    await write_incidents(aredis, simulate_week(WEEK, seed=6, per_day=1)[:2])
    await ensure_group(aredis, keys.AUDIT)
    await aredis.xreadgroup(GROUP, "holding", {keys.AUDIT: ">"}, count=1)
    for name in ("empty", "me"):
        await aredis.xgroup_createconsumer(keys.AUDIT, GROUP, name)

    # none has been idle an hour
    assert await forget_gone(aredis, keys.AUDIT, GROUP, "me", AN_HOUR_MS) == []
    # any idle time: the one holding an entry stays (deleting it would drop the entry), and
    # so does the caller
    assert await forget_gone(aredis, keys.AUDIT, GROUP, "me", 0) == ["empty"]
    assert await _consumers(aredis) == {"holding": 1, "me": 0}
