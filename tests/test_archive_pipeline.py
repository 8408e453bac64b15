"""The archiver works on three batches at once (one written, the next read, the previous
acknowledged): what must wait for a commit still does, and no batch is archived twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis

from analytics.simulation import simulate_week, write_incidents
from archiver.service import GROUP, Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from archiver.source import TERMINAL
from dispatcher import scenario as sc
from polewatch import keys, wire

WEEK = 1_767_225_600.0


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


async def one(pg: psycopg.AsyncConnection[Any], query: str, *params: Any) -> tuple[Any, ...]:
    row = await (await pg.execute(query.encode(), params)).fetchone()
    assert row is not None
    return tuple(row)


class AmendedOnceRead(ZoneArchiver):
    """Amends an incident (as an operator would) right after the batch that closes it was read
    from Redis, so the amendment is the next batch, read while the close is being written."""

    amend: Any = None

    async def _prepare(self, entries: list[Any]) -> Any:
        batch = await super()._prepare(entries)
        amend, self.amend = self.amend, None
        if amend is not None:
            await amend()
        return batch


async def test_an_amendment_read_while_its_close_is_written_is_archived_again(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    closed = next(i for i in simulate_week(WEEK, seed=7, per_day=3) if i.state in TERMINAL)
    entries = await write_incidents(aredis, [closed])
    restored = wire.IncidentEvent(
        incident=closed.id, event="restored", ts=WEEK + 8 * 86_400, unit="u-9", actor="op-1"
    )

    async def amend() -> None:
        await aredis.hset(keys.incident(closed.id), "evaluation", "2")
        await aredis.rpush(keys.incident_timeline(closed.id), wire.encode(restored))
        entry: dict[Any, Any] = wire.entry(restored)
        await aredis.xadd(keys.AUDIT, entry)

    settings = ArchiverSettings(database_url=database_url, batch=entries, retention_s=3600)
    archiver = AmendedOnceRead(aredis, settings, keys.DEFAULT, Metrics())
    archiver.amend = amend
    await archiver.run(burst=True)

    # The amendment's "already archived?" check ran after the close was committed: the
    # incident was read again and archived with it.
    assert await one(pg, "SELECT evaluation, revision FROM incident") == (2, entries + 1)
    last = "SELECT event FROM incident_event WHERE incident = %s ORDER BY seq DESC LIMIT 1"
    assert await one(pg, last, closed.id) == ("restored",)
    assert await one(pg, "SELECT count(*) FROM audit") == (entries + 1,)
    assert 0 < await aredis.ttl(keys.incident(closed.id)) <= 3600
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


class HeldBeforeWriting(ZoneArchiver):
    """Holds its first batch's transaction (after its "already archived?" check) until
    ``resume`` is set; ``held`` is set once it holds it and its read-ahead is done."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.holding, self.read_ahead = asyncio.Event(), asyncio.Event()
        self.held, self.resume = asyncio.Event(), asyncio.Event()

    def _check_held(self) -> None:
        if self.holding.is_set() and self.read_ahead.is_set():
            self.held.set()

    async def _next(self, after: Any, *, block: bool) -> Any:
        batch = await super()._next(after, block=block)
        if after is not None:
            self.read_ahead.set()
            self._check_held()
        return batch

    async def _write(self, *args: Any) -> None:
        if not self.holding.is_set():
            self.holding.set()
            self._check_held()
            await self.resume.wait()
        await super()._write(*args)


async def _until(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Wait for ``event``, or for ``task`` to end first (then raise its error)."""
    waiting = asyncio.ensure_future(event.wait())
    await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        task.result()
        raise AssertionError("the archiver ended before the event")


async def _amend(redis: aioredis.Redis, iid: str, reopen: wire.IncidentState | None) -> None:
    """What the dispatcher writes when an operator amends a finished incident (evaluation 2
    and a unit restored) or reopens it (its state becomes ``reopen``)."""
    event = wire.IncidentEvent(
        incident=iid, event=reopen or "restored", ts=WEEK + 8 * 86_400, unit="u-9", actor="op-1"
    )
    fields: dict[Any, Any] = {"evaluation": 2, **({"state": reopen} if reopen else {})}
    await redis.hset(keys.incident(iid), mapping=fields)
    await redis.rpush(keys.incident_timeline(iid), wire.encode(event))
    entry: dict[Any, Any] = wire.entry(event)
    await redis.xadd(keys.AUDIT, entry)


def _two_archivers(
    redis: aioredis.Redis, database_url: str, *, batch: int
) -> tuple[HeldBeforeWriting, ZoneArchiver]:
    """A (holding its first batch of ``batch`` entries) and B, never claiming each other's
    pending entries."""
    hold = 3_600_000

    def settings(consumer: str, batch: int = 2000) -> ArchiverSettings:
        return ArchiverSettings(
            database_url=database_url, batch=batch, consumer=consumer, claim_idle_ms=hold
        )

    a = HeldBeforeWriting(redis, settings("a", batch), keys.DEFAULT, Metrics())
    return a, ZoneArchiver(redis, settings("b"), keys.DEFAULT, Metrics())


@pytest.mark.parametrize("reopen", [None, "dispatched"], ids=["amended", "reopened"])
async def test_an_amendment_another_archiver_checks_before_the_close_is_committed(
    aredis: aioredis.Redis,
    database_url: str,
    pg: psycopg.AsyncConnection[Any],
    reopen: wire.IncidentState | None,
) -> None:
    """Two archivers: A reads the close (and the incident as Redis then held it) and checks
    the archive; the incident is amended; B reads the amendment, finds the incident not
    archived yet and commits the amendment's audit row; then A commits its copy. The archive
    ends with the amended one (A looks at Redis again after its commit)."""
    closed = next(i for i in simulate_week(WEEK, seed=7, per_day=3) if i.state in TERMINAL)
    entries = await write_incidents(aredis, [closed])
    a, b = _two_archivers(aredis, database_url, batch=entries)
    a_runs = asyncio.create_task(a.run(burst=True))
    await _until(a.held, a_runs)
    await _amend(aredis, closed.id, reopen)
    await b.run(burst=True)
    # B found nothing archived: the amendment is in the archive as an audit row only
    assert await one(pg, "SELECT count(*), (SELECT count(*) FROM incident) FROM audit") == (1, 0)
    a.resume.set()
    await a_runs

    amended = (reopen or closed.state, 2, entries + 1)
    assert await one(pg, "SELECT state, evaluation, revision FROM incident") == amended
    last = "SELECT event FROM incident_event WHERE incident = %s ORDER BY seq DESC LIMIT 1"
    assert await one(pg, last, closed.id) == (reopen or "restored",)
    assert await one(pg, "SELECT count(*) FROM audit") == (entries + 1,)
    ttl = await aredis.ttl(keys.incident(closed.id))
    assert ttl == -1 if reopen else 0 < ttl <= 604_800  # a reopened incident stays in Redis
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


async def test_a_unit_the_dispatcher_restores_while_another_archiver_holds_the_cancel(
    aredis: aioredis.Redis,
    database_url: str,
    pg: psycopg.AsyncConnection[Any],
    redis_url: str,
    sync_redis: redis.Redis,
) -> None:
    """The same with the dispatcher's own Functions: incident 1 is cancelled, A reads the
    cancel, the unit that let it time out is restored on it (an event after its end), B
    archives that event, A commits."""
    sc.units_east(sync_redis, 114.05, 22.55, {"near": 200})
    await sc.step(redis_url, sync_redis, sc.alarm(114.05, 22.55))
    await sc.step(redis_url, sync_redis, sc.command("cancel", "1", detail="false alarm"))
    a, b = _two_archivers(aredis, database_url, batch=int(await aredis.xlen(keys.AUDIT)))
    a_runs = asyncio.create_task(a.run(burst=True))
    await _until(a.held, a_runs)
    sync_redis.hset(keys.unit("near"), mapping={"status": "unresponsive", "missed": 2})
    await sc.step(redis_url, sync_redis, sc.command("restore_unit", "1", unit="near"))
    await b.run(burst=True)
    a.resume.set()
    await a_runs

    length = await aredis.llen(keys.incident_timeline("1"))
    assert await one(pg, "SELECT state, revision FROM incident") == ("cancelled", length)
    last = "SELECT event FROM incident_event WHERE incident = '1' ORDER BY seq DESC LIMIT 1"
    assert await one(pg, last) == ("restored",)
    assert 0 < await aredis.ttl(keys.incident("1")) <= 604_800
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


async def test_own_pending_entries_are_replayed_in_batches_each_once(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=8, per_day=4)
    entries = await write_incidents(aredis, week)
    # A consumer read half the stream and died before archiving any of it.
    await aredis.xgroup_create(keys.AUDIT, GROUP, id="0")
    await aredis.xreadgroup(GROUP, "a1", {keys.AUDIT: ">"}, count=entries // 2)
    settings = ArchiverSettings(database_url=database_url, batch=7, consumer="a1")
    archiver = ZoneArchiver(aredis, settings, keys.DEFAULT, Metrics())
    await archiver.run(burst=True)

    assert await one(pg, "SELECT count(*) FROM incident") == (len(week),)
    assert await one(pg, "SELECT count(*) FROM audit") == (entries,)
    # Each entry was acknowledged once: no pending batch was read again while being written.
    acked = archiver.metrics.registry.get_sample_value("polewatch_archiver_audit_entries_total")
    assert acked == entries
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


class AcknowledgementLostOnce(ZoneArchiver):
    """Redis fails under the first acknowledgement, while the next batch is being written and
    the one after it read."""

    failed = False

    async def _acknowledge(self, batch: Any) -> None:
        if not self.failed:
            self.failed = True
            raise redis.ConnectionError("connection lost")
        await super()._acknowledge(batch)


async def test_a_redis_error_with_batches_in_hand_loses_and_doubles_nothing(
    aredis: aioredis.Redis,
    database_url: str,
    pg: psycopg.AsyncConnection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    week = simulate_week(WEEK, seed=9, per_day=4)
    entries = await write_incidents(aredis, week)
    settings = ArchiverSettings(database_url=database_url, batch=7, retry_s=0.01)
    archiver = AcknowledgementLostOnce(aredis, settings, keys.DEFAULT, Metrics())
    await archiver.run(burst=True)

    assert archiver.failed
    assert "reading the pending entries again" in caplog.text
    assert await one(pg, "SELECT count(*) FROM incident") == (len(week),)
    assert await one(pg, "SELECT count(*) FROM audit") == (entries,)
    assert await one(pg, "SELECT count(*) FROM incident_event") == (entries,)
    # the batches in hand were read again from the pending list and acknowledged once each
    acked = archiver.metrics.registry.get_sample_value("polewatch_archiver_audit_entries_total")
    assert acked == entries
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0
    ttls = [await aredis.ttl(keys.incident(i.id)) for i in week if i.state in TERMINAL]
    assert ttls and all(ttl > 0 for ttl in ttls)
