"""The archiver on a zoned Redis Cluster: every zone's audit stream (on different shards) is
archived, each incident once, with its zone; retention applies in each incident's zone."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis.asyncio as aioredis
from test_edge_cluster import acluster, zones  # noqa: F401

from analytics.simulation import simulate_week, write_incidents
from archiver.service import serve
from archiver.settings import ArchiverSettings
from polewatch import keys, records
from polewatch.zones import ZoneMap

WEEK = 1_767_225_600.0


async def test_every_zone_of_a_cluster_is_archived(
    cluster_url: str,
    acluster: aioredis.Redis,  # noqa: F811
    zones: ZoneMap,  # noqa: F811
    zones_file: Path,
    database_url: str,
) -> None:
    week = [i for i in simulate_week(WEEK, seed=9, per_day=6) if i.district in ("Futian", "Luohu")]
    for inc in week:
        inc.id = f"{inc.district.lower()}-{inc.id}"  # type: ignore[union-attr]
    await write_incidents(acluster, week, zones=zones)
    settings = ArchiverSettings(
        redis_url=cluster_url, redis_cluster=True, zones=str(zones_file),
        database_url=database_url, retention_s=600,
    )  # fmt: skip
    await serve(settings, burst=True)

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (
            await conn.execute("SELECT zone, count(*) FROM incident GROUP BY 1")
        ).fetchall()
    expected: dict[str, int] = {}
    for inc in week:
        zone = records.incident_zone(inc.id, zones).name
        expected[zone] = expected.get(zone, 0) + 1
    assert dict(rows) == expected and set(expected) == {"futian", "luohu"}
    for inc in week[:4]:
        zone = records.incident_zone(inc.id, zones)
        assert 0 < await acluster.ttl(zone.incident(inc.id)) <= 600
        assert await acluster.xpending(zone.audit, keys.ARCHIVE_GROUP) == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
