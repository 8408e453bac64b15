"""An incident a patrol resolved reaches the archive before (or without) the operator's close:
its row as it stands (state resolved, the timeline so far), its keys kept whole in Redis until
the close, which replaces the row with the closed one and its evaluation, whatever the order in
which two archivers commit. Written and dispatched by the dispatcher's own Functions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from test_archive_pipeline import HeldBeforeWriting, _until

from analytics.archive import archived_times
from archiver.service import GROUP, Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from dispatcher import scenario as sc
from gateway.testing import bearer, gateway_client, operator_token
from polewatch import keys

DESK = bearer(operator_token("desk"))
ROW = "SELECT state, evaluation, revision FROM incident WHERE id = '1'"


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


async def _row(pg: psycopg.AsyncConnection[Any], query: str = ROW) -> tuple[Any, ...] | None:
    row = await (await pg.execute(query.encode())).fetchone()
    return None if row is None else tuple(row)


async def _resolved(redis_url: str, sync_redis: redis.Redis) -> int:
    """Incident 1 dispatched to unit ``near``, which resolves it; its timeline's length."""
    sc.units_east(sync_redis, 114.05, 22.55, {"near": 200})
    await sc.step(redis_url, sync_redis, sc.alarm(114.05, 22.55))
    await sc.step(redis_url, sync_redis, sc.status("near", "1", "resolved", "handled"))
    assert sc.incident(sync_redis).state == "resolved"
    return int(sync_redis.llen(keys.incident_timeline("1")))


async def _close(redis_url: str, sync_redis: redis.Redis) -> None:
    await sc.step(redis_url, sync_redis, sc.command("close", "1", evaluation=4))


def _archiver(aredis: aioredis.Redis, database_url: str, **kw: Any) -> ZoneArchiver:
    return ZoneArchiver(aredis, ArchiverSettings(database_url=database_url, **kw),
                        keys.DEFAULT, Metrics())  # fmt: skip


@pytest.fixture
async def archived(
    aredis: aioredis.Redis, database_url: str, redis_url: str, sync_redis: redis.Redis
) -> int:
    """Incident 1 resolved and archived; its timeline's length then."""
    length = await _resolved(redis_url, sync_redis)
    await _archiver(aredis, database_url).run(burst=True)
    return length


async def test_a_resolved_incident_is_archived_and_its_close_replaces_the_row(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any],
    redis_url: str, sync_redis: redis.Redis, archived: int,
) -> None:  # fmt: skip
    length = archived
    assert await _row(pg) == ("resolved", None, length)
    last = "SELECT event FROM incident_event WHERE incident = '1' ORDER BY seq DESC LIMIT 1"
    assert await _row(pg, last) == ("resolved",)
    # no retention yet: the operator still has to close it from Redis
    assert await aredis.ttl(keys.incident("1")) == -1
    assert await aredis.ttl(keys.incident_timeline("1")) == -1

    await _close(redis_url, sync_redis)
    await _archiver(aredis, database_url).run(burst=True)
    assert await _row(pg) == ("closed", 4, length + 1)
    # the close wrote the one timeline row the archive lacked; the timeline is Redis' own
    events = "SELECT array_agg(event ORDER BY seq) FROM incident_event WHERE incident = '1'"
    assert await _row(pg, events) == ([e.event for e in sc.timeline(sync_redis)],)
    assert await _row(pg, last) == ("closed",)
    assert 0 < await aredis.ttl(keys.incident("1")) <= 604_800
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


class RevisionGuardOnly(HeldBeforeWriting):
    """Does not look at Redis again after its commit: the archive's order is the revision
    guard's alone."""

    async def _rewrite_grown(self, batch: Any) -> None:
        return None


@pytest.mark.parametrize("guard_only", [False, True], ids=["archiver", "revision-guard"])
async def test_a_close_committed_before_the_resolves_copy_is_kept(
    aredis: aioredis.Redis,
    database_url: str,
    pg: psycopg.AsyncConnection[Any],
    redis_url: str,
    sync_redis: redis.Redis,
    guard_only: bool,
) -> None:
    """A reads the resolve (and the incident, resolved) and holds its transaction; the
    operator closes it; B archives the close; then A commits its older copy."""
    length = await _resolved(redis_url, sync_redis)
    held = RevisionGuardOnly if guard_only else HeldBeforeWriting
    hold = 3_600_000  # neither claims the other's entries
    a_settings = ArchiverSettings(
        database_url=database_url, consumer="a", claim_idle_ms=hold, batch=length
    )
    a = held(aredis, a_settings, keys.DEFAULT, Metrics())
    b = _archiver(aredis, database_url, consumer="b", claim_idle_ms=hold)
    a_runs = asyncio.create_task(a.run(burst=True))
    await _until(a.held, a_runs)
    await _close(redis_url, sync_redis)
    await b.run(burst=True)
    assert await _row(pg) == ("closed", 4, length + 1)
    a.resume.set()
    await a_runs

    # A's copy was written (its audit rows are there) and refused: the close stays
    assert await _row(pg, "SELECT count(*) FROM audit") == (length + 1,)
    assert await _row(pg) == ("closed", 4, length + 1)
    events = "SELECT count(*), max(seq) FROM incident_event WHERE incident = '1'"
    assert await _row(pg, events) == (length + 1, length)
    if not guard_only:  # A's retention follows the closed copy it wrote again
        assert 0 < await aredis.ttl(keys.incident("1")) <= 604_800
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0


async def _history(client: Any, **query: str) -> list[tuple[str, str, bool]]:
    answer = await client.get("/api/console/history", params=query, headers=DESK)
    assert answer.status == 200, await answer.text()
    return [(i["id"], i["state"], i["archived"]) for i in (await answer.json())["incidents"]]


async def test_after_redis_is_flushed_the_resolved_incident_is_in_the_archive_and_history(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any],
    redis_url: str, sync_redis: redis.Redis, archived: int,
) -> None:  # fmt: skip
    length = archived
    async with gateway_client(redis_url, database_url=database_url) as client:
        # Redis' copy, newer (closed, not archived yet), wins: listed once, as closed
        await _close(redis_url, sync_redis)
        assert await _history(client) == [("1", "closed", False)]
        assert await _history(client, state="resolved") == []
        assert await _history(client, state="closed") == [("1", "closed", False)]

        await aredis.flushall()
        assert await _row(pg) == ("resolved", None, length)
        assert await _history(client) == [("1", "resolved", True)]
        assert await _history(client, state="closed") == []
        detail = await client.get("/api/incidents/1", headers=DESK)
        assert detail.status == 200, await detail.text()
        body = await detail.json()
        assert (body["incident"]["state"], body["archived"]) == ("resolved", True)
        assert [e["event"] for e in body["timeline"]][-1] == "resolved"
    # the figures count it as resolved: not closed, not evaluated
    (times,) = await archived_times(pg, 0, 2e9)
    assert (times.state, "resolved" in times.times, "closed" in times.times) == (
        "resolved", True, False)  # fmt: skip
