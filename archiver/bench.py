"""``polewatch bench archive``: how fast the archiver writes, and how fast the archive answers.

On a private redis-server and a private PostgreSQL (never the deployment's: the bench writes
a million rows), two measurements in one run:

* ``archive``: simulated closed incidents (each with its alarm and six to seven audit events,
  as the dispatcher writes them) preloaded in Redis, one archiver drains the audit stream:
  incidents and audit entries archived per second (a resolution and its close 10 minutes
  later mostly fall in one batch); ``archive_closed_later``: the same with every close two
  days after its resolution, so each incident is archived at both, as in a city where the
  operator closes hours after the patrol. ``needed_incidents_per_s`` is what the
  dispatcher produces at 10,000 alarms/s when every alarm that is not another report of a
  recent one (the dispatch bench's 20 %) opens an incident that later closes: the rate the
  archive must sustain to keep up; ``archive_2_consumers`` is the same with two archivers in
  the group in one process; ``archive_processes`` runs ``polewatch archiver --burst`` as one
  and as two processes sharing the group, side by side on the same data (with the processes'
  start-up and exit measured apart, on an empty stream);
* ``assessment``: ``incidents`` archived incidents generated in SQL (``generate_series``, 8
  quarters), then the quarterly assessment of the last quarter against the one before
  (:func:`analytics.archive.assess`), the whole city and one district; with the indexes the
  query plans use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any, Final

import psycopg
import redis.asyncio as aioredis

from analytics import archive
from analytics.simulation import Step, simulate_week, write_incidents
from archiver.service import Metrics, ZoneArchiver, fewer_collections, migrate
from archiver.settings import ArchiverSettings
from polewatch import keys
from polewatch.embedded import EmbeddedRedis
from polewatch.embedded_pg import EmbeddedPostgres

QUARTER: Final = 91 * 86_400.0
T0: Final = 1_704_067_200.0  # 2024-01-01 UTC: 8 quarters of history
ALARMS_PER_S: Final = 10_000
BATCH: Final = 5_000
"""Audit entries per archiver round (about 700 incidents per transaction)."""
REPEAT_SHARE: Final = 0.2
"""As in ``dispatcher.bench``: the share of alarms merged into an existing incident."""
CLOSE_LATER_S: Final = 2 * 86_400.0
"""``archive_closed_later``: the operator's close this long after the patrol's resolution."""

_GENERATE: Final = """
INSERT INTO incident (id, state, priority, type, merge_group, created, alarm_ts, district,
    grid, pole, units, times, geom, alarm_to_dispatch, dispatch_to_ack, ack_to_scene,
    alarm_to_scene, resolution)
SELECT 'g' || g, state, priority, type, type, created, created - 1.5, district,
    left(district, 2) || '-' || lpad((1 + g %% 40)::text, 2, '0'), (1000000 + g %% 900000)::text,
    ARRAY['unit-' || (g %% 500)],
    CASE WHEN state = 'cancelled' THEN jsonb_build_object('new', created,
            'dispatched', created + 2, 'cancelled', created + 60)
         ELSE jsonb_build_object('new', created, 'dispatched', created + 1 + g %% 3,
            'acknowledged', created + 10 + g %% 30, 'en_route', created + 15 + g %% 30,
            'on_scene', created + 200 + g %% 500, 'resolved', created + 900 + g %% 900,
            'closed', created + 1500 + g %% 900) END,
    ST_SetSRID(ST_MakePoint(113.8 + (g %% 997) * 0.0008, 22.45 + (g %% 991) * 0.0004), 4326),
    CASE WHEN state = 'cancelled' THEN 3.5 ELSE 2.5 + g %% 3 END,
    CASE WHEN state = 'cancelled' THEN NULL ELSE 9 + g %% 30 - g %% 3 END,
    CASE WHEN state = 'cancelled' THEN NULL ELSE 190 + g %% 500 - g %% 30 END,
    CASE WHEN state = 'cancelled' THEN NULL ELSE 201.5 + g %% 500 END,
    CASE WHEN state = 'cancelled' THEN NULL ELSE 900 + g %% 900 END
FROM (SELECT g, %(t0)s + (g - 1) * %(span)s / %(n)s AS created,
        CASE WHEN g %% 20 = 0 THEN 'cancelled' WHEN g %% 50 = 1 THEN 'merged'
             ELSE 'closed' END AS state,
        1 + g %% 4 AS priority,
        (ARRAY['citizen_sos', 'call', 'intrusion', 'crowd', 'loitering', 'door_forced',
               'tailgating', 'tamper', 'camera_offline'])[1 + g %% 9] AS type,
        (ARRAY['Futian', 'Luohu', 'Nanshan', 'Bao''an', 'Longgang', 'Yantian'])[1 + g %% 6]
            AS district
      FROM generate_series(1, %(n)s) AS g) AS s
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point of ``polewatch bench archive`` (``--quick``: a small run for smoke
    tests)."""
    quick = bool(args.quick)
    out: dict[str, Any] = {
        "command": "polewatch bench archive --json" + (" --quick" if quick else ""),
        "machine": {"cpus": os.cpu_count()},
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(f"{tmp}/redis", appendonly=False) as red,
        EmbeddedPostgres(f"{tmp}/pg", keep=False) as pg,
    ):
        n = 1_000 if quick else 20_000
        out["archive"] = asyncio.run(_archive(red.url, pg.url, n))
        out["archive_2_consumers"] = asyncio.run(_archive(red.url, pg.url, n, consumers=2))
        out["archive_closed_later"] = asyncio.run(_archive(red.url, pg.url, n, close_later=True))
        out["archive_processes"] = {
            f"{k}_process{'es' if k > 1 else ''}": asyncio.run(
                _archive(red.url, pg.url, n, processes=k)
            )
            for k in (1, 2)
        }
        out["assessment"] = asyncio.run(_assessment(pg.url, 20_000 if quick else 1_000_000))
    needed = ALARMS_PER_S * (1 - REPEAT_SHARE)
    for name in ("archive", "archive_2_consumers", "archive_closed_later"):
        out[name]["needed_incidents_per_s"] = needed
        out[name]["keeps_up_ratio"] = round(out[name]["incidents_per_s"] / needed, 2)
    for measured in out["archive_processes"].values():  # start-up included, and after it
        measured["keeps_up_ratio"] = round(measured["incidents_per_s"] / needed, 2)
        measured["keeps_up_ratio_after_startup"] = round(
            measured["incidents_per_s_after_startup"] / needed, 2
        )
    return out


async def _archive(
    redis_url: str,
    database_url: str,
    n: int,
    *,
    consumers: int = 1,
    processes: int = 0,
    close_later: bool = False,
) -> dict[str, Any]:
    await migrate(database_url)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.flushall()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("TRUNCATE incident, incident_event, alarm, audit")
        per_day = max(1, n // 7)
        week = simulate_week(T0, seed=1, per_day=per_day)
        if close_later:  # each close in a later batch than its resolution: archived twice
            for inc in week:
                inc.steps = [Step(s.event, s.after + CLOSE_LATER_S, s.unit)
                             if s.event == "closed" else s for s in inc.steps]  # fmt: skip
        for start in range(0, len(week), 2_000):
            await write_incidents(redis, week[start : start + 2_000])
        entries = int(await redis.xlen(keys.AUDIT))
        if processes:
            # start-up and exit alone: a burst archiver on Redis database 1, which is empty
            startup = await _processes(redis_url.rsplit("/", 1)[0] + "/1", database_url, 1)
            took = await _processes(redis_url, database_url, processes)
            return {
                "incidents": len(week),
                "audit_entries": entries,
                "seconds": round(took, 3),
                "startup_seconds": round(startup, 3),
                "incidents_per_s": round(len(week) / took, 1),
                "incidents_per_s_after_startup": round(len(week) / max(took - startup, 1e-3), 1),
                "batch": BATCH,
                "processes": processes,
            }
        archivers = [
            ZoneArchiver(
                redis,
                ArchiverSettings(database_url=database_url, batch=BATCH, consumer=f"bench-{i}"),
                keys.DEFAULT,
                Metrics(),
            )
            for i in range(consumers)
        ]
        began = time.perf_counter()
        with fewer_collections():  # as ``polewatch archiver`` runs them
            await asyncio.gather(*(a.run(burst=True) for a in archivers))
        took = time.perf_counter() - began
    finally:
        await redis.aclose()
    return {
        "incidents": len(week),
        "audit_entries": entries,
        "seconds": round(took, 3),
        "incidents_per_s": round(len(week) / took, 1),
        "audit_entries_per_s": round(entries / took, 1),
        "batch": BATCH,
        "consumers": consumers,
        **({"closes_after_resolution_s": CLOSE_LATER_S} if close_later else {}),
    }


async def _processes(redis_url: str, database_url: str, k: int) -> float:
    """Seconds until ``k`` ``polewatch archiver --burst`` processes (one consumer group) have
    drained the audit stream and exited."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "POLEWATCH_BATCH": str(BATCH)}  # fmt: skip
    began = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "polewatch.cli",
            "archiver",
            "--burst",
            "--consumer",
            f"bench-p{i}",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for i in range(k)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"archiver exited with {proc.returncode}: {err.decode()[-800:]}")
    return time.perf_counter() - began


async def _assessment(database_url: str, n: int) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("TRUNCATE incident, incident_event, alarm")
        began = time.perf_counter()
        await conn.execute(_GENERATE, {"t0": T0, "span": 8 * QUARTER, "n": n})
        await conn.execute("VACUUM ANALYZE incident")  # as autovacuum leaves an archive
        generated = time.perf_counter() - began
        start = T0 + 7 * QUARTER
        end = start + QUARTER
        timings = {}
        for name, district in (("city", None), ("district", "Futian")):
            took = []
            for _ in range(3):  # the first reads from disk, the others from the cache
                began = time.perf_counter()
                result = await archive.assess(conn, start, end, district=district)
                took.append(round(time.perf_counter() - began, 3))
            timings[name] = {
                "seconds_first": took[0],
                "seconds_best": min(took[1:]),
                "incidents": result.incidents,
                "previous_incidents": result.previous_incidents,
                "indexes": await _indexes(conn, start, end, district),
            }
    return {
        "archived_incidents": n,
        "generate_seconds": round(generated, 1),
        "quarter": timings,
        "target_seconds": 2.0,
    }


async def _indexes(
    conn: psycopg.AsyncConnection[Any], start: float, end: float, district: str | None
) -> list[str]:
    """The indexes the period query's plan names."""
    query, params = archive.times_query(start, end, district)
    cur = await conn.execute(f"EXPLAIN (FORMAT JSON) {query}".encode(), params)
    row = await cur.fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node and node["Index Name"] not in found:
            found.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found
