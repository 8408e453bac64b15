"""The incident archive: closed incidents reach PostgreSQL once, Redis keeps them for the
retention time, bad audit entries are dead-lettered, and the analytics read from SQL equal
the Redis readers on the same simulated week."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from analytics import archive
from analytics.assessment import build_assessment
from analytics.incidents import load_incident
from analytics.response_times import incident_times as redis_incident_times
from analytics.simulation import simulate_week, write_incidents
from archiver import writer
from archiver.service import GROUP, Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from dispatcher import scenario as sc
from polewatch import keys, records, wire
from polewatch.cli import main
from polewatch.settings import SettingsError, check_database_url, load

WEEK = 1_767_225_600.0  # 2026-01-01 00:00 UTC


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


def archiver(redis: aioredis.Redis, database_url: str, **kw: Any) -> ZoneArchiver:
    settings = ArchiverSettings(database_url=database_url, batch=200, **kw)
    return ZoneArchiver(redis, settings, keys.DEFAULT, Metrics())


async def count(pg: psycopg.AsyncConnection[Any], table: str) -> int:
    row = await (await pg.execute(f"SELECT count(*) FROM {table}")).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


async def test_a_week_is_archived_once_and_redis_keeps_it_for_the_retention_time(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=3, per_day=12)
    entries = await write_incidents(aredis, week)
    await archiver(aredis, database_url, retention_s=3600).run(burst=True)

    assert await count(pg, "incident") == len(week)
    assert await count(pg, "audit") == entries
    assert await count(pg, "incident_event") == entries
    assert await count(pg, "alarm") == len(week)
    ttl = await aredis.ttl(keys.incident(week[0].id))
    assert 3500 < ttl <= 3600
    assert 3500 < await aredis.ttl(keys.alarm_body(f"sim-{week[0].id}")) <= 3600
    pending = await aredis.xpending(keys.AUDIT, GROUP)
    assert pending["pending"] == 0

    # A replay of everything (as after a crash before the acknowledgement) doubles nothing.
    raw: Any = await aredis.xrange(keys.AUDIT)
    again = archiver(aredis, database_url)
    try:
        await again.process(list(raw))
    finally:
        await again.aclose()
    assert await count(pg, "incident") == len(week)
    assert await count(pg, "audit") == entries
    assert await count(pg, "incident_event") == entries
    row = await (
        await pg.execute("SELECT district, ST_X(geom) FROM incident WHERE id = %s", (week[0].id,))
    ).fetchone()
    assert row == (week[0].district, week[0].lon)


async def test_an_open_incident_stays_in_redis_without_expiry(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=4, per_day=4)
    open_one = week[0]
    open_one.steps = list(open_one.steps)[:2]  # dispatched, acknowledged: still open
    await write_incidents(aredis, week)
    body = keys.alarm_body(f"sim-{open_one.id}")
    await aredis.expire(body, 3600)  # the dispatcher stores alarm bodies with a TTL
    await archiver(aredis, database_url).run(burst=True)
    assert await count(pg, "incident") == len(week) - 1
    assert await aredis.ttl(keys.incident(open_one.id)) == -1
    assert await aredis.ttl(keys.incident_timeline(open_one.id)) == -1
    assert await aredis.ttl(body) == -1  # kept until the incident is archived


async def test_a_reopened_incident_is_archived_again_and_kept_in_redis(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=5, per_day=2)
    await write_incidents(aredis, week)
    await archiver(aredis, database_url).run(burst=True)
    iid = week[0].id
    await aredis.hset(keys.incident(iid), mapping={"state": "dispatched", "evaluation": 2})
    event = wire.IncidentEvent(incident=iid, event="dispatched", ts=WEEK + 9 * 86_400, unit="u-9")
    await aredis.rpush(keys.incident_timeline(iid), wire.encode(event))
    fields: dict[Any, Any] = wire.entry(event)  # redis-py's stubs take no dict[bytes, bytes]
    await aredis.xadd(keys.AUDIT, fields)
    await archiver(aredis, database_url).run(burst=True)
    assert await aredis.ttl(keys.incident(iid)) == -1
    row = await (
        await pg.execute("SELECT state, evaluation FROM incident WHERE id = %s", (iid,))
    ).fetchone()
    assert row == ("dispatched", 2)


async def test_the_dispatcher_keeps_an_amended_archived_incident_until_archived_again(
    redis_url: str,
    sync_redis: redis.Redis,
    aredis: aioredis.Redis,
    database_url: str,
    pg: psycopg.AsyncConnection[Any],
) -> None:
    """The dispatcher itself makes the keys persistent as it amends an archived incident, so
    an archiver down for longer than the retention time cannot let the amendment expire."""
    sc.units_east(sync_redis, 114.05, 22.55, {"near": 200})
    await sc.step(redis_url, sync_redis, sc.alarm(114.05, 22.55))
    await sc.step(redis_url, sync_redis, sc.command("cancel", "1", detail="false alarm"))
    await archiver(aredis, database_url, retention_s=3600).run(burst=True)
    listed: Any = await aredis.lrange(keys.incident_alarms("1"), 0, -1)
    alarm_ids = records.incident_alarm_ids(listed, sc.incident(sync_redis))
    assert alarm_ids
    kept = [keys.incident("1"), keys.incident_timeline("1"), *(keys.alarm(a) for a in alarm_ids)]
    # An alarm's record (with its body) is also its idempotency record: retention never
    # shortens its own TTL; the incident's keys get the retention time.
    ttls = [await aredis.ttl(k) for k in kept]
    assert all(0 < ttl <= 3600 for ttl in ttls[:2]) and all(ttl > 0 for ttl in ttls[2:])
    # the unit that let incident 1 time out is restored on it: an event after its end
    sync_redis.hset(keys.unit("near"), mapping={"status": "unresponsive", "missed": 2})
    await sc.step(redis_url, sync_redis, sc.command("restore_unit", "1", unit="near"))
    assert sc.timeline(sync_redis)[-1].event == "restored"
    assert sc.incident(sync_redis).state == "cancelled"
    assert [await aredis.ttl(k) for k in kept] == [-1] * len(kept)
    await archiver(aredis, database_url, retention_s=3600).run(burst=True)
    assert all(0 < ttl <= 3600 for ttl in [await aredis.ttl(k) for k in kept])
    events = await (
        await pg.execute("SELECT event FROM incident_event WHERE incident = '1' ORDER BY seq")
    ).fetchall()
    assert events[-1] == ("restored",)


async def test_bad_audit_entries_are_dead_lettered_and_the_rest_archived(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=6, per_day=3)
    await aredis.xadd(keys.AUDIT, {wire.FIELD: b"\xc1 not msgpack"})
    await aredis.xadd(keys.AUDIT, {b"other": b"x"})
    await write_incidents(aredis, week)
    await aredis.hset(keys.incident("broken"), mapping={"id": "broken", "state": "closed"})
    closed = wire.IncidentEvent(incident="broken", event="closed", ts=WEEK + 100)
    fields: dict[Any, Any] = wire.entry(closed)  # redis-py's stubs take no dict[bytes, bytes]
    await aredis.xadd(keys.AUDIT, fields)
    await archiver(aredis, database_url).run(burst=True)

    assert await count(pg, "incident") == len(week)
    dead: Any = await aredis.xrange(keys.DEADLETTER)
    reasons = [d[1][b"reason"].decode() for d in dead]
    assert len(reasons) == 3, reasons
    assert any("broken" in r and "unreadable" in r for r in reasons)
    assert all(r for r in reasons)
    assert (await aredis.xpending(keys.AUDIT, GROUP))["pending"] == 0
    assert await aredis.ttl(keys.incident("broken")) == -1


async def test_figures_from_sql_equal_the_redis_readers_on_a_simulated_week(
    aredis: aioredis.Redis, database_url: str, pg: psycopg.AsyncConnection[Any]
) -> None:
    week = simulate_week(WEEK, seed=7, per_day=30)
    previous = simulate_week(WEEK - 7 * 86_400, seed=8, per_day=30)
    for inc in previous:
        inc.id = f"p{inc.id}"
    await write_incidents(aredis, [*previous, *week])
    await archiver(aredis, database_url).run(burst=True)
    end = WEEK + 7 * 86_400
    for district in (None, "Futian"):
        from_redis = await redis_incident_times(aredis, WEEK, end, district=district)
        from_sql = await archive.archived_times(pg, WEEK, end, district=district)
        assert from_sql == from_redis
        assert len(from_sql) > 0
    before = await redis_incident_times(aredis, WEEK - 7 * 86_400, WEEK)
    now = await redis_incident_times(aredis, WEEK, end)
    expected = build_assessment(now, before, WEEK, end, utc_offset_min=480)
    assert await archive.assess(pg, WEEK, end, utc_offset_min=480) == expected
    both_sources = archive.Incidents(aredis, conn=pg)
    assert await both_sources.assess(WEEK, end, utc_offset_min=480) == expected
    futian = (
        [t for t in now if t.district == "Futian"],
        [t for t in before if t.district == "Futian"],
    )
    assert await archive.assess(pg, WEEK, end, district="Futian") == build_assessment(
        *futian, WEEK, end, district="Futian"
    )
    # Not archived yet: still counted from Redis, once.
    both = await both_sources.times(WEEK, end)
    assert [t.id for t in both] == [t.id for t in now]

    exported = await archive.load_incident(pg, week[5].id)
    live = await load_incident(aredis, week[5].id)
    assert exported is not None and live is not None
    assert exported.timeline == live.timeline
    assert exported.alarms == live.alarms
    assert exported.incident.district == live.incident.district
    # One reader for every source: Redis alone, the archive alone (a connection of its own),
    # or both, where an incident Redis still has is read there.
    archived = await archive.archived_times(pg, WEEK, end)
    assert await archive.Incidents(aredis).times(WEEK, end) == now
    assert await archive.Incidents(database_url=database_url).times(WEEK, end) == archived
    from_archive = await archive.Incidents(database_url=database_url).record(week[5].id)
    assert from_archive == exported
    assert await archive.Incidents(aredis, database_url).record(week[5].id) == live
    assert await archive.Incidents(aredis).record("no-such-incident") is None


def test_a_bad_database_url_fails_at_start_naming_the_key() -> None:
    with pytest.raises(SettingsError, match="database_url"):
        load(ArchiverSettings, section="archiver", env={"DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError, match="database_url"):
        load(ArchiverSettings, section="archiver", env={"DATABASE_URL": "postgresql://h:99x/d"})
    good = load(ArchiverSettings, section="archiver", env={"DATABASE_URL": "postgresql://h/d"})
    assert good.database_url == "postgresql://h/d"


def test_compose_runs_the_archiver_against_its_postgis_service() -> None:
    from polewatch.cli import build_parser
    from tests.test_deployment import compose

    services = compose()["services"]
    assert isinstance(services, dict)
    assert services["postgis"]["image"].startswith("postgis/postgis")
    archiver_service = services["archiver"]
    assert callable(build_parser().parse_args(archiver_service["command"]).func)
    env = archiver_service["environment"]
    settings = load(ArchiverSettings, section="archiver", env=env)
    assert (
        settings.database_url.startswith("postgresql://") and "@postgis:" in settings.database_url
    )
    assert settings.metrics_port == 9102


async def test_reports_and_exports_read_the_archive_once_redis_let_go(
    aredis: aioredis.Redis,
    redis_url: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    week = simulate_week(WEEK, seed=10, per_day=5)
    await write_incidents(aredis, week)
    await archiver(aredis, database_url).run(burst=True)
    await aredis.flushall()  # retention and the audit stream's cap: Redis holds none of it
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("POLEWATCH_UTC_OFFSET_MIN", "0")
    period = ["--from", "2026-01-01", "--to", "2026-01-07"]
    assert await asyncio.to_thread(main, ["report", "times", *period]) == 0
    figures = msgspec.json.decode(capsys.readouterr().out)
    assert figures["incidents"] == len(week)
    assert await asyncio.to_thread(main, ["export", "eido", week[3].id]) == 0
    assert week[3].id in capsys.readouterr().out
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    assert await asyncio.to_thread(main, ["report", "times", *period]) == 2
    assert "database_url" in capsys.readouterr().err


@given(st.text(max_size=80))
def test_any_database_url_is_accepted_or_refused_naming_the_key(url: str) -> None:
    try:
        check_database_url(url)
    except ValueError as exc:
        assert str(exc).startswith("database_url:")
    else:
        assert url == "" or url.split(":", 1)[0] in ("postgresql", "postgres")


async def test_the_archivers_lag_and_counts_are_metrics(
    aredis: aioredis.Redis, database_url: str
) -> None:
    from prometheus_client import generate_latest

    week = simulate_week(WEEK, seed=11, per_day=2)
    entries = await write_incidents(aredis, week)
    worker = archiver(aredis, database_url)
    await worker.run(burst=True)
    text = generate_latest(worker.metrics.registry).decode()
    assert 'polewatch_archiver_lag_entries{zone="default"} 0.0' in text
    assert f"polewatch_archiver_incidents_total {float(len(week))}" in text
    assert f"polewatch_archiver_audit_entries_total {float(entries)}" in text


async def test_the_scripted_batch_read_returns_what_xreadgroup_returns(
    aredis: aioredis.Redis, database_url: str
) -> None:
    # The archiver reads its batches through a script (a flat reply); any entry, whatever its
    # fields, comes back as XREADGROUP would give it, its own pending ones (deleted too) as well.
    bodies: list[dict[Any, Any]] = [
        {wire.FIELD: b"\x81\xa1k\xa8incident"}, {wire.FIELD: b""}, {b"other": b"x"},
        {wire.FIELD: b"m", b"extra": b"y", b"": b"z"}, {b"a": b"1", b"b": b"2"},
    ]  # fmt: skip
    ids = [await aredis.xadd(keys.AUDIT, fields) for fields in bodies]
    await aredis.xgroup_create(keys.AUDIT, GROUP, id="0")
    reader = archiver(aredis, database_url, consumer="scripted")
    assert await reader._read(">", block=None) == list(zip(ids, bodies, strict=True))
    await aredis.xdel(keys.AUDIT, ids[1])
    mine: Any = await aredis.xreadgroup(GROUP, "scripted", {keys.AUDIT: "0"})
    expected = [(i, f or {}) for i, f in mine[0][1]]
    assert await reader._read("0", block=None) == expected
    assert expected[1] == (ids[1], {})
    assert await reader._read(">", block=None) == []


async def test_rows_already_archived_are_updated_through_the_upsert(
    pg: psycopg.AsyncConnection[Any],
) -> None:
    # New timeline and audit rows are COPied straight into their tables; a batch that meets a
    # row already there (a replay, an amendment) is written through the upserts instead.
    def events(detail: str) -> list[wire.IncidentEvent]:
        return [
            wire.IncidentEvent(incident="x1", event="new", ts=WEEK),
            wire.IncidentEvent(incident="x1", event="closed", ts=WEEK + 60, detail=detail),
        ]

    def batch(detail: str) -> tuple[list[writer.Archived], list[writer.AuditRow]]:
        incident = records.Incident(
            id="x1", state="closed", priority=2, type="call", group="call", lon=114.0,
            lat=22.5, created=WEEK,
        )  # fmt: skip
        timeline = events(detail)
        archived = writer.Archived(
            zone="", incident=incident, timeline=timeline, alarm_ids=["a1"], alarms=[None]
        )
        audit = [
            writer.AuditRow("", f"{n + 1}-0", e, wire.encode(e)) for n, e in enumerate(timeline)
        ]
        return [archived], audit

    await writer.write(pg, *batch("first"))
    incidents, audit = batch("amended")
    await writer.write(pg, incidents, [*audit, writer.AuditRow("", "3-0", audit[1].event, b"x")])
    rows = await (
        await pg.execute("SELECT seq, detail FROM incident_event ORDER BY seq")
    ).fetchall()
    assert rows == [(0, None), (1, "amended")]
    entries = await (await pg.execute("SELECT entry_id FROM audit ORDER BY entry_id")).fetchall()
    assert entries == [("1-0",), ("2-0",), ("3-0",)]


async def test_an_older_copy_committed_later_does_not_replace_a_newer_one(
    pg: psycopg.AsyncConnection[Any],
) -> None:
    # Two archiver processes read incident x2 at different moments (resolved, then closed with
    # an evaluation) and commit in the other order: the archive keeps the closed copy.
    timeline = [
        wire.IncidentEvent(incident="x2", event="new", ts=WEEK),
        wire.IncidentEvent(incident="x2", event="resolved", ts=WEEK + 60),
        wire.IncidentEvent(incident="x2", event="closed", ts=WEEK + 90),
    ]

    def copy(state: str, events: int, evaluation: int | None) -> writer.Archived:
        incident = records.Incident(
            id="x2", state=state, priority=2, type="call", group="call", lon=114.0, lat=22.5,
            created=WEEK, evaluation=evaluation,
        )  # fmt: skip
        return writer.Archived(
            zone="", incident=incident, timeline=timeline[:events], alarm_ids=[], alarms=[]
        )

    await writer.write(pg, [copy("closed", 3, 5)], [])
    await writer.write(pg, [copy("resolved", 2, None)], [])
    row = await (await pg.execute("SELECT state, evaluation, revision FROM incident")).fetchone()
    assert row == ("closed", 5, 3)
    await writer.write(pg, [copy("closed", 3, 4)], [])  # the same revision, amended: applied
    row = await (await pg.execute("SELECT state, evaluation, revision FROM incident")).fetchone()
    assert row == ("closed", 4, 3)
