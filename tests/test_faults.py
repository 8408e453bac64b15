"""Faults against real processes, each bounded in time: a dispatcher SIGKILLed under load,
Redis crashed and restarted under load (AOF, ``appendfsync everysec``), and an overloaded or
stalled dispatcher. The gateway faults are in ``test_faults_gateway.py``.

The promises proven here:

* A dispatcher replica killed at any moment loses no alarm and dispatches none twice: entries
  delivered to it stay pending in the group and a live replica takes them over (XAUTOCLAIM)
  after ``claim_idle_ms``; processing and acknowledgement are one atomic call.
* With ``appendfsync everysec``, every alarm the gateway answered 202 for (Redis replied to
  the XADD) survives a crash of the Redis *process* (SIGKILL) and is dispatched after the
  restart: Redis write(2)s the AOF before it sends replies, and the kernel keeps what was
  written when the process dies. What ``everysec`` does not cover is the machine itself
  (power loss, kernel panic): up to about a second of acknowledged writes (two, when the disk
  stalls) can be lost. ``appendfsync always`` closes that window by fsyncing before replying,
  at the price of one fsync per write batch (see README, "Durability").
* The gateway and the dispatcher ride out the restart on their own (same processes).
* A stalled or overloaded dispatcher sheds nothing: what it was given stays pending, what it
  was not stays in the stream, and the trimmer never cuts either.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from test_dispatch_replicas import check_invariants
from waiting import until, until_announced_sync, until_sync, until_written_sync

from dispatcher import scenario as sc
from dispatcher import trim
from polewatch import keys, wire
from polewatch.embedded import EmbeddedRedis, free_port

BBOX = (113.85, 22.50, 114.15, 22.70)
SECRET = "polewatch-test-secret-0123456789"
CITY = "faultcity"


def service(url: str, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """A polewatch service process (log to a pipe we never read: DEVNULL keeps it simple)."""
    # Rate limits off: these tests press Help far faster than any citizen (test_ratelimit.py)
    environ = {**os.environ, "REDIS_URL": url, "POLEWATCH_SECRET": SECRET,
               "POLEWATCH_CITY": CITY, "POLEWATCH_LOG_LEVEL": "WARNING",
               "POLEWATCH_RATELIMIT_ENABLED": "false", **env}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", *args],
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed and reaped at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()


FAST_CLAIM = {"POLEWATCH_CLAIM_IDLE_MS": "500", "POLEWATCH_CLAIM_EVERY_S": "0.2",
              "POLEWATCH_ACK_TIMEOUT_S": "600", "POLEWATCH_BATCH_SIZE": "25"}  # fmt: skip
"""Claim a dead replica's entries after 0.5 s; no ack timeouts during a test."""


def units_on_duty(client: redis.Redis, count: int, seed: int) -> None:
    points = sc.random_points(count, random.Random(seed), BBOX)
    sc.write(client, [sc.on_duty(f"u{i}", lon, lat) for i, (lon, lat) in enumerate(points)])


def until_on_duty(client: redis.Redis, count: int) -> None:
    """Wait for ``count`` free units, looked at again after each announcement of changed units."""

    def free() -> bool:
        return bool(client.zcard(keys.UNITS_FREE_GEO) == count)

    until_announced_sync(client, keys.DEFAULT.unit_changes, free, f"{count} units on duty", 30)


def alarms_at_random(count: int, rng: random.Random) -> list[wire.Alarm]:
    return [sc.alarm(lon, lat) for lon, lat in sc.random_points(count, rng, BBOX)]


def pending_of(client: redis.Redis, consumer: str) -> int:
    rows = client.xpending_range(keys.ALARMS, keys.DISPATCH_GROUP, "-", "+", 10_000, consumer)
    return len(rows)


def freeze_holding_entries(
    proc: subprocess.Popen[bytes],
    clients: Callable[[], Iterable[dict[str, Any]]],
    feed: Callable[[], None],
    held: Callable[[], int],
    consumer: str = "doomed",
) -> int:
    """Freeze the replica ``consumer`` (started with a BLOCK that outlasts the test) while it
    waits in XREADGROUP, as ``clients`` (CLIENT LIST rows) show, then ``feed``: the blocked read
    takes the next entries, so the frozen replica holds delivered, unprocessed entries, whatever
    a loaded machine does to its timing (hoping to freeze it mid-batch failed 2 runs in 6).
    Again only if the read ended between the look and the freeze. Returns ``held()``."""

    def waiting() -> bool:
        return any(
            c.get("name") == f"dispatcher:{consumer}" and c.get("cmd") == "xreadgroup"
            and "b" in c.get("flags", "")
            for c in clients()
        )  # fmt: skip

    frozen_by = time.monotonic() + 60
    while True:
        until_sync(waiting, f"the {consumer} replica waiting in XREADGROUP", 60)
        proc.send_signal(signal.SIGSTOP)
        feed()
        holding = held()
        if holding:
            return holding
        assert time.monotonic() < frozen_by, f"the {consumer} replica never held entries"
        proc.send_signal(signal.SIGCONT)


def all_recorded(client: redis.Redis, alarm_ids: list[str]) -> bool:
    """Every alarm has its idempotency record (the dispatcher took it into an incident)."""
    for start in range(0, len(alarm_ids), 1000):
        chunk = [keys.alarm(a) for a in alarm_ids[start : start + 1000]]
        if not all(client.mget(chunk)):
            return False
    return True


def test_a_replica_sigkilled_under_load_loses_nothing_and_doubles_nothing(
    redis_url: str, sync_redis: redis.Redis, processes: list[subprocess.Popen[bytes]]
) -> None:
    units_on_duty(sync_redis, 800, seed=21)
    doomed = service(redis_url, "dispatcher", "dispatcher", "--consumer", "doomed", **FAST_CLAIM,
                     POLEWATCH_BLOCK_MS="60000")  # fmt: skip
    survivor = service(redis_url, "d2", "dispatcher", "--consumer", "survivor", **FAST_CLAIM)
    processes += [doomed, survivor]
    until_on_duty(sync_redis, 800)
    rng = random.Random(22)
    alarms: list[wire.Alarm] = []

    def feed(count: int) -> None:
        for _ in range(count // 50):
            batch = alarms_at_random(50, rng)
            sc.write(sync_redis, batch)
            alarms.extend(batch)
            time.sleep(0.01)  # a steady stream of batches (load), not a synchronisation

    feed(600)
    # Frozen holding delivered, unprocessed entries, then killed.
    freeze_holding_entries(
        doomed, sync_redis.client_list, lambda: feed(100), lambda: pending_of(sync_redis, "doomed")
    )
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    feed(1200)  # the load goes on; the survivor does all of it and the dead one's share
    ids = [a.id for a in alarms]
    # An alarm's record is written in the same call as its incident's audit entry.
    until_written_sync(sync_redis, keys.AUDIT, lambda: all_recorded(sync_redis, ids),
                       "every alarm in an incident", 60)  # fmt: skip
    # The claim's XACK follows the call: no entry announces it.
    until_sync(lambda: pending_of(sync_redis, "doomed") == 0, "the dead one's entries claimed", 30)
    assert survivor.poll() is None
    states = check_invariants(sync_redis, alarms)  # one incident per alarm, one dispatch each
    assert states["dispatched"] >= 500


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, appendfsync="everysec").start()
    yield server
    server.stop()


def store_city(url: str, count: int = 300) -> list[tuple[str, float, float]]:
    """A small generated city in the registry; its poles as (code, lon, lat)."""
    from polewatch.connection import connect
    from polewatch.poles.city import generate_city
    from polewatch.poles.registry import PoleRegistry

    poles = generate_city(count=count, seed=5, city=CITY)

    async def store() -> None:
        client = connect(url, name="test-city")
        try:
            await PoleRegistry(client, CITY).store(poles)
        finally:
            await client.aclose()

    asyncio.run(store())
    return [(p.code, p.lon, p.lat) for p in poles]


def gateway(url: str, processes: list[subprocess.Popen[bytes]], **env: str) -> str:
    """A gateway process on a free port; its base URL once it answers."""
    import urllib.request

    port = free_port()
    processes.append(service(url, "gateway", "gateway", "--port", str(port), **env))
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert processes[-1].poll() is None, "the gateway exited"
        try:
            with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    until_sync(up, "the gateway answers", 30)
    return base


async def raise_alarms(
    base: str, codes: list[str], stop: asyncio.Event, answers: list[tuple[int, dict[str, Any]]]
) -> None:
    """Citizens pressing Help at random poles, 8 at a time, until ``stop``."""
    rng = random.Random(3)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def citizen() -> None:
            while not stop.is_set():
                body = {"pole": rng.choice(codes)}
                async with session.post(f"{base}/api/alarms", json=body) as resp:
                    answers.append((resp.status, await resp.json()))
                await asyncio.sleep(0.01)  # a citizen presses again: load, not a synchronisation

        await asyncio.gather(*(citizen() for _ in range(8)))


def test_redis_crashed_under_load_keeps_every_acknowledged_alarm(
    aof_redis: EmbeddedRedis, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = aof_redis.url
    client = redis.Redis.from_url(url)
    poles = store_city(url)
    units_on_duty(client, 50, seed=4)
    processes.append(service(url, "dispatcher", "dispatcher", "--consumer", "d1"))
    base = gateway(url, processes)
    answers: list[tuple[int, dict[str, Any]]] = []

    def accepted_count() -> int:
        return sum(status == 202 for status, _ in answers)

    async def scenario() -> int:
        stop = asyncio.Event()
        load = asyncio.create_task(raise_alarms(base, [c for c, _, _ in poles], stop, answers))
        # Under load before the crash and again after the restart: counts, not durations, so a
        # slow machine takes longer instead of failing.
        await until(lambda: accepted_count() > 20, "load before the crash", 60, alongside=load)
        before = len(answers)
        assert aof_redis.process is not None
        aof_redis.process.kill()  # a crash: no shutdown, no final AOF rewrite
        aof_redis.process.wait()
        # Time is the subject: down for a while. Presses meanwhile wait in the gateway's retries
        # (about 7 s with redis_retries=8) and may be refused (503) when those run out.
        await asyncio.sleep(0.5)
        aof_redis.start()  # same port, same data folder: the AOF is replayed
        after = accepted_count()
        await until(lambda: accepted_count() > after + 20, "load after the restart", 60,
                    alongside=load)  # fmt: skip
        stop.set()
        await load
        return before

    before_crash = asyncio.run(scenario())
    accepted = [body["alarm"] for status, body in answers if status == 202]
    refused = [(status, body) for status, body in answers if status != 202]
    assert before_crash > 20 and len(accepted) > before_crash + 20, "no load after the restart"
    # Refusals are 503s that say why (the client retries); never a 500, never silence.
    assert all(status == 503 and body.get("error") for status, body in refused), refused[:3]
    until_written_sync(client, keys.AUDIT, lambda: all_recorded(client, accepted),
                       "every accepted alarm dispatched", 60)  # fmt: skip
    assert all(proc.poll() is None for proc in processes), "a service died with Redis"
    client.close()


def test_a_stalled_dispatcher_keeps_its_entries_pending_and_untrimmed(
    redis_url: str, sync_redis: redis.Redis, processes: list[subprocess.Popen[bytes]]
) -> None:
    units_on_duty(sync_redis, 100, seed=8)
    stalled = service(redis_url, "dispatcher", "dispatcher", "--consumer", "stalled",
                      POLEWATCH_BATCH_SIZE="10", POLEWATCH_CLAIM_IDLE_MS="600000")  # fmt: skip
    processes.append(stalled)
    until_on_duty(sync_redis, 100)
    stalled.send_signal(signal.SIGSTOP)
    alarms = alarms_at_random(2000, random.Random(9))
    sc.write(sync_redis, alarms)
    # Delivered to the frozen consumer while it blocked: pending, not acknowledged, not lost.
    held = until_sync(lambda: pending_of(sync_redis, "stalled"), "entries delivered", 10)
    group = sync_redis.xinfo_groups(keys.ALARMS)[0]
    assert group["pending"] == held and group["lag"] == len(alarms) - held
    removed = asyncio.run(_trim_now(redis_url))
    assert removed.get(keys.ALARMS, 0) == 0, "the trimmer cut entries a group still needs"
    assert sync_redis.xlen(keys.ALARMS) == len(alarms)
    # Time is the subject (no event says that nothing happened): a stall is a stall, nothing
    # moves while the consumer is frozen.
    time.sleep(0.5)
    assert pending_of(sync_redis, "stalled") == held
    stalled.send_signal(signal.SIGCONT)
    ids = [a.id for a in alarms]
    until_written_sync(
        sync_redis, keys.AUDIT, lambda: all_recorded(sync_redis, ids), "all processed", 60
    )
    check_invariants(sync_redis, alarms)
    # Now the group is done with everything: the trimmer may cut it all.
    removed = asyncio.run(_trim_now(redis_url))
    assert removed[keys.ALARMS] > 0 and sync_redis.xlen(keys.ALARMS) < len(alarms)


async def _trim_now(url: str) -> dict[str, int]:
    from polewatch.connection import connect

    client = connect(url, name="test-trim")
    try:
        return await trim.trim_behind_groups(
            client, (keys.ALARMS, keys.PATROL_EVENTS, keys.COMMANDS), keep_s=0
        )
    finally:
        await client.aclose()
