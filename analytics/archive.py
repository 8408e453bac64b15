"""The archive as a data source: the same :class:`~analytics.response_times.IncidentTimes`
and :class:`~analytics.incidents.IncidentRecord` as the Redis readers, read from PostgreSQL
(``archiver/`` writes it).

Closed, cancelled and merged incidents live here for years; open ones only in Redis.
:func:`incident_times` of a period therefore returns the archived incidents of the period and,
given a Redis client, the not-yet-archived ones Redis still has (an incident in both counts
once, as archived). The figures equal the Redis readers' on the same incidents: times are
stored as the same Unix-second floats and ``times`` holds the first time of each event.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import psycopg
import redis.asyncio as aioredis

from analytics import archive_figures
from analytics.assessment import Assessment, build_assessment
from analytics.incidents import IncidentRecord
from analytics.response_times import IncidentTimes
from analytics.response_times import incident_times as redis_incident_times
from polewatch import records, wire
from polewatch.zones import ZoneMap

_TIMES: Final = """
SELECT id, type, priority, state, created, district, grid, pole, alarm_ts, reports, times::text
FROM incident WHERE created >= %s AND created < %s {district} ORDER BY created, id
"""
_times_decoder = msgspec.json.Decoder(dict[str, float])


def times_query(start: float, end: float, district: str | None) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of :func:`archived_times` (the bench explains its plan)."""
    query = _TIMES.format(district="AND district = %s" if district is not None else "")
    return query, (start, end) if district is None else (start, end, district)


async def archived_times(
    conn: psycopg.AsyncConnection[Any], start: float, end: float, *, district: str | None = None
) -> list[IncidentTimes]:
    """Every archived incident created in ``[start, end)`` (optionally of one district), oldest
    first; the period scan uses ``incident_created`` (``incident_district_created`` with a
    district)."""
    query, params = times_query(start, end, district)
    async with conn.cursor(binary=True) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    return [
        IncidentTimes(
            id=r[0],
            type=r[1],
            priority=r[2],
            state=r[3],
            created=r[4],
            district=r[5],
            grid=r[6],
            pole=r[7],
            alarm_ts=r[8],
            reports=r[9],
            times=_times_decoder.decode(r[10]),
        )  # fmt: skip
        for r in rows
    ]


async def incident_times(
    conn: psycopg.AsyncConnection[Any],
    start: float,
    end: float,
    *,
    district: str | None = None,
    redis: aioredis.Redis | None = None,
    zones: ZoneMap | None = None,
) -> list[IncidentTimes]:
    """The archived incidents of the period, plus (with ``redis``) those Redis holds that the
    archive does not have yet; oldest first."""
    archived = await archived_times(conn, start, end, district=district)
    if redis is None:
        return archived
    have = {t.id for t in archived}
    recent = await redis_incident_times(redis, start, end, district=district, zones=zones)
    merged = archived + [t for t in recent if t.id not in have]
    merged.sort(key=lambda t: (t.created, t.id))
    return merged


async def assess(
    conn: psycopg.AsyncConnection[Any],
    start: float,
    end: float,
    *,
    district: str | None = None,
    redis: aioredis.Redis | None = None,
    zones: ZoneMap | None = None,
    utc_offset_min: int = 0,
    **presentation: Any,
) -> Assessment:
    """The assessment of ``[start, end)`` against the period before, from the archive (and,
    with ``redis``, the incidents not archived yet). From the archive alone it is aggregated
    inside PostgreSQL (:func:`analytics.archive_figures.assess`); with ``redis`` the incidents
    of both come to Python and are summed as the Redis reader does."""
    if redis is None:
        return await archive_figures.assess(
            conn, start, end, district=district, utc_offset_min=utc_offset_min, **presentation
        )
    previous_start = start - (end - start)
    current = await incident_times(conn, start, end, district=district, redis=redis, zones=zones)
    previous = await incident_times(
        conn, previous_start, start, district=district, redis=redis, zones=zones
    )
    return build_assessment(
        current, previous, start, end, district=district, utc_offset_min=utc_offset_min,
        **presentation,
    )  # fmt: skip


async def load_incident(
    conn: psycopg.AsyncConnection[Any], incident_id: str
) -> IncidentRecord | None:
    """An archived incident with its alarms and timeline, for CSV, CAP and EIDO exports of old
    incidents; ``None`` when the archive does not have it."""
    cur = await conn.execute(
        "SELECT id, state, priority, type, merge_group, ST_X(geom), ST_Y(geom), created, reports,"
        " pole, district, grid, text, wanted, first_alarm, alarm_ts, evaluation, merged_into,"
        " times::text FROM incident WHERE id = %s",
        (incident_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    incident = records.Incident(
        id=row[0], state=row[1], priority=row[2], type=row[3], group=row[4], lon=row[5],
        lat=row[6], created=row[7], reports=row[8], pole=row[9], district=row[10], grid=row[11],
        text=row[12], wanted=row[13], first_alarm=row[14], alarm_ts=row[15], evaluation=row[16],
        merged_into=row[17], times=_times_decoder.decode(row[18]),
    )  # fmt: skip
    cur = await conn.execute(
        "SELECT event, ts, unit, alarm, actor, detail, priority, reports FROM incident_event"
        " WHERE incident = %s ORDER BY seq",
        (incident_id,),
    )
    timeline = [
        wire.IncidentEvent(
            incident=incident_id,
            event=e[0],
            ts=e[1],
            unit=e[2],
            alarm=e[3],
            actor=e[4],
            detail=e[5],
            priority=e[6],
            reports=e[7],
        )  # fmt: skip
        for e in await cur.fetchall()
    ]
    cur = await conn.execute(
        "SELECT id, body FROM alarm WHERE incident = %s ORDER BY seq", (incident_id,)
    )
    alarm_rows = await cur.fetchall()
    alarms = []
    for _, body in alarm_rows:
        if body is not None:
            try:
                alarms.append(wire.decode(bytes(body), wire.Alarm))
            except wire.WireError:
                continue
    return IncidentRecord(
        incident=incident, alarm_ids=[a[0] for a in alarm_rows], alarms=alarms, timeline=timeline
    )


# --- the report commands' data source: Redis alone, or the archive and Redis ----------------


async def times_from(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    database_url: str = "",
    district: str | None = None,
    zones: ZoneMap | None = None,
) -> list[IncidentTimes]:
    """The incidents of a period for the CSV and the response times: from Redis alone without
    a ``database_url``, else archived ones plus those Redis holds that are not archived yet."""
    if not database_url:
        return await redis_incident_times(redis, start, end, district=district, zones=zones)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await incident_times(conn, start, end, district=district, redis=redis, zones=zones)


async def assess_from(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    database_url: str = "",
    district: str | None = None,
    zones: ZoneMap | None = None,
    utc_offset_min: int = 0,
    **presentation: Any,
) -> Assessment:
    """:func:`analytics.assessment.assess` without a ``database_url``; else :func:`assess`
    over the archive and the incidents Redis holds that are not archived yet."""
    if not database_url:
        from analytics.assessment import assess as assess_redis

        return await assess_redis(
            redis, start, end, district=district, zones=zones, utc_offset_min=utc_offset_min,
            **presentation,
        )  # fmt: skip
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await assess(
            conn, start, end, district=district, redis=redis, zones=zones,
            utc_offset_min=utc_offset_min, **presentation,
        )  # fmt: skip


async def record_from(
    redis: aioredis.Redis,
    incident_id: str,
    *,
    database_url: str = "",
    zones: ZoneMap | None = None,
) -> IncidentRecord | None:
    """An incident for CAP / EIDO export: from Redis while it is there (the hot, current
    state), else, with a ``database_url``, from the archive."""
    from analytics.incidents import load_incident as load_from_redis

    record = await load_from_redis(redis, incident_id, zones=zones)
    if record is not None or not database_url:
        return record
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await load_incident(conn, incident_id)
