"""The archive as a data source: the same :class:`~analytics.response_times.IncidentTimes`
and :class:`~analytics.incidents.IncidentRecord` as the Redis readers, read from PostgreSQL
(``archiver/`` writes it).

Resolved (until their close replaces them), closed, cancelled and merged incidents live here
for years; open ones only in Redis.
:class:`Incidents` of a period therefore returns the archived incidents of the period and,
given a Redis client, the not-yet-archived ones Redis still has (an incident in both counts
once, as archived). The figures equal the Redis readers' on the same incidents: times are
stored as the same Unix-second floats and ``times`` holds the first time of each event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from analytics import archive_figures
from analytics.assessment import Assessment, build_assessment
from analytics.incidents import IncidentRecord
from analytics.response_times import IncidentTimes
from analytics.response_times import incident_times as redis_incident_times
from polewatch import records, wire
from polewatch.zones import ZoneMap

# What each reader selects: field of its struct -> SQL expression, in the SELECT's order.
_TIMES_COLUMNS: Final = {
    "id": "id", "type": "type", "priority": "priority", "state": "state", "created": "created",
    "district": "district", "grid": "grid", "pole": "pole", "alarm_ts": "alarm_ts",
    "reports": "reports", "times": "times::text",
}  # fmt: skip
_INCIDENT_COLUMNS: Final = {
    "id": "id", "state": "state", "priority": "priority", "type": "type", "group": "merge_group",
    "lon": "ST_X(geom)", "lat": "ST_Y(geom)", "created": "created", "reports": "reports",
    "pole": "pole", "district": "district", "grid": "grid", "text": "text", "wanted": "wanted",
    "first_alarm": "first_alarm", "alarm_ts": "alarm_ts", "evaluation": "evaluation",
    "merged_into": "merged_into", "times": "times::text",
}  # fmt: skip
_EVENT_COLUMNS: Final = {
    name: name
    for name in ("event", "ts", "unit", "alarm", "actor", "detail", "priority", "reports")
}
_TIMES: Final = (
    f"SELECT {', '.join(_TIMES_COLUMNS.values())} FROM incident"
    " WHERE created >= %s AND created < %s {district} ORDER BY created, id"
)
_times_decoder = msgspec.json.Decoder(dict[str, float])
_MATCHED: Final = ("i.id", "i.pole", "i.type", "i.district", "i.grid", "i.text", "ev.detail")
# The history's search: finished incidents, newest finish first. A finish is the time of the
# event named like the state (``times`` keeps each event's first time); the text is matched
# as the Redis search does, lower-cased by ICU (the C locale lowers ASCII only), and ids
# compare byte-wise (COLLATE "C": Python's str order), so a cursor pages the same way.
_FINISHED: Final = (
    "SELECT {columns}, fin.ts, ev.detail FROM incident i"
    " CROSS JOIN LATERAL (SELECT COALESCE((i.times->>i.state)::float8, i.created) AS ts) fin"
    " LEFT JOIN LATERAL (SELECT e.detail FROM incident_event e WHERE e.incident = i.id"
    "  AND e.event = i.state ORDER BY e.seq DESC LIMIT 1) ev ON true"
    " WHERE i.state = ANY(%(states)s) {text} {before}"
    ' ORDER BY fin.ts DESC, i.id COLLATE "C" DESC LIMIT %(limit)s'
)
_BEFORE: Final = 'AND (fin.ts, i.id COLLATE "C") < (%(ts)s, %(id)s)'
# A text is first looked for in the newest WINDOW finished incidents (below the cursor), read
# in the history's order (index incident_finished) down to the first one past them, the edge:
# a common text fills its page there.
_EDGE: Final = (
    "SELECT COALESCE((w.times->>w.state)::float8, w.created), w.id FROM incident w"
    " WHERE w.state = ANY(%(states)s) {before}"
    ' ORDER BY COALESCE((w.times->>w.state)::float8, w.created) DESC, w.id COLLATE "C" DESC'
    " OFFSET %(window)s LIMIT 1"
)
_EDGE_BEFORE: Final = (
    'AND (COALESCE((w.times->>w.state)::float8, w.created), w.id COLLATE "C") < (%(ts)s, %(id)s)'
)
_PAST_EDGE: Final = 'AND (fin.ts, i.id COLLATE "C") > (%(edge_ts)s, %(edge_id)s)'
WINDOW = 2_000
"""Newest finished incidents a text is looked for in before the indexes are read."""
# Otherwise in two parts, each through a trigram index of migration 005 (the expressions are
# the indexes', letter for letter): the planner reads the few candidates from the index (a
# text found in few incidents, or nowhere) or the history's order up to the page. The
# candidates are a superset: every field is then matched on its own. In the incident's fields:
_IN_FIELDS: Final = (
    "AND lower(COALESCE(i.id, '') || E'\\n' || COALESCE(i.pole, '') || E'\\n'"
    " || COALESCE(i.type, '') || E'\\n' || COALESCE(i.district, '') || E'\\n'"
    " || COALESCE(i.grid, '') || E'\\n' || COALESCE(i.text, '') COLLATE \"und-x-icu\")"
    " LIKE %(like)s AND ({matched})"
)
# ... and the part found in the detail of the event named like the incident's state. Always
# read from the index: the rows holding the text decide (as an array, the planner cannot
# misjudge how many: a join read the history's whole order for a text found nowhere).
_IN_DETAIL: Final = (
    "AND i.id = ANY(ARRAY(SELECT e.incident FROM incident_event e JOIN incident s"
    '  ON s.id = e.incident AND s.state = e.event WHERE lower(e.detail COLLATE "und-x-icu")'
    "  LIKE %(like)s)) AND ({matched})"
)
TRIGRAM: Final = 3
"""Characters a text needs for a trigram; a shorter one is matched as it is read."""


def _fields(columns: Mapping[str, str], row: Sequence[Any]) -> dict[str, Any]:
    """A row selected by ``columns`` as field -> value, ``times`` (JSON text) decoded."""
    fields = dict(zip(columns, row, strict=True))
    if "times" in fields:
        fields["times"] = _times_decoder.decode(fields["times"])
    return fields


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
    return [IncidentTimes(**_fields(_TIMES_COLUMNS, r)) for r in rows]


async def assess(
    conn: psycopg.AsyncConnection[Any],
    start: float,
    end: float,
    *,
    district: str | None = None,
    **options: Any,
) -> Assessment:
    """The assessment of ``[start, end)`` from the archive alone, aggregated inside PostgreSQL
    (:func:`analytics.archive_figures.assess`); ``options``: ``utc_offset_min`` and the
    presentation (``language``)."""
    return await archive_figures.assess(conn, start, end, district=district, **options)


async def load_incident(
    conn: psycopg.AsyncConnection[Any], incident_id: str
) -> IncidentRecord | None:
    """An archived incident with its alarms and timeline, for CSV, CAP and EIDO exports of old
    incidents; ``None`` when the archive does not have it."""
    cur = await conn.execute(
        f"SELECT {', '.join(_INCIDENT_COLUMNS.values())} FROM incident WHERE id = %s",
        (incident_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    incident = records.Incident(**_fields(_INCIDENT_COLUMNS, row))
    cur = await conn.execute(
        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM incident_event WHERE incident = %s ORDER BY seq",
        (incident_id,),
    )
    timeline = [
        wire.IncidentEvent(incident=incident_id, **_fields(_EVENT_COLUMNS, e))
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


@dataclass(frozen=True)
class Finished:
    """An archived incident as the history lists it: when it finished (the time of its
    closing, cancellation or resolution) and that event's detail (a cancellation's reason)."""

    incident: records.Incident
    finished: float
    detail: str | None


async def finished_incidents(
    conn: psycopg.AsyncConnection[Any],
    states: Sequence[str],
    text: str,
    limit: int,
    before: tuple[float, str] | None = None,
) -> list[Finished]:
    """Up to ``limit`` archived incidents in one of ``states`` whose id, pole, type,
    district, grid, description or finishing detail contains ``text`` (any case), most
    recently finished first (then by id, descending), all finished before ``before``
    (``(finished, id)``, the last one of the previous page) when given."""
    needle = text.lower()
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params: dict[str, Any] = {"states": list(states), "text": needle, "like": like,
                              "limit": limit}  # fmt: skip
    if before is not None:
        params.update(ts=before[0], id=before[1])
    if not needle:
        return _page(await _rows(conn, params, "", before), limit)
    every = f"AND ({_matched(_MATCHED)})"
    cur = await conn.execute(_EDGE.format(before=_EDGE_BEFORE if before else ""),
                             {**params, "window": WINDOW})  # fmt: skip
    edge = await cur.fetchone()
    if edge is None:  # the newest are all there are
        return _page(await _rows(conn, params, every, before), limit)
    params.update(edge_ts=edge[0], edge_id=edge[1])
    rows = await _rows(conn, params, every + " " + _PAST_EDGE, before)
    if len(rows) < limit:  # not among the newest: through the indexes (a short text: all)
        parts = [every] if len(needle) < TRIGRAM else [
            _IN_FIELDS.format(matched=_matched(_MATCHED[:-1])),
            _IN_DETAIL.format(matched=_matched(_MATCHED[-1:]))]  # fmt: skip
        for part in parts:
            rows += await _rows(conn, params, part, before)
    return _page(rows, limit)


async def _rows(
    conn: psycopg.AsyncConnection[Any], params: Mapping[str, Any], text: str, before: object
) -> list[tuple[Any, ...]]:
    query = _FINISHED.format(
        columns=", ".join(_INCIDENT_COLUMNS.values()),  # no name of fin's or ev's among them
        text=text,
        before=_BEFORE if before is not None else "",
    )
    cur = await conn.execute(query, params)
    return await cur.fetchall()


def _page(rows: Sequence[tuple[Any, ...]], limit: int) -> list[Finished]:
    """The first ``limit`` of ``rows`` (each incident once) in the history's order (ids as
    Python's str compare: byte order, COLLATE "C")."""
    width = len(_INCIDENT_COLUMNS)
    unique = {row[0]: row for row in rows}.values()
    page = sorted(unique, key=lambda row: (row[width], row[0]), reverse=True)[:limit]
    return [
        Finished(records.Incident(**_fields(_INCIDENT_COLUMNS, row[:width])), row[width],
                 row[width + 1])
        for row in page
    ]  # fmt: skip


def _matched(fields: Sequence[str]) -> str:
    """SQL: one of ``fields`` holds the text, lower-cased by ICU as Python lowers it."""
    return " OR ".join(f'strpos(lower({f} COLLATE "und-x-icu"), %(text)s) > 0' for f in fields)


async def archived_detail(
    conn: psycopg.AsyncConnection[Any], incident_id: str
) -> records.IncidentDetail | None:
    """An archived incident as the console's incident detail shows it (the shape of
    :func:`polewatch.records.read_incident`): its timeline, every alarm merged into it (an
    alarm whose body had expired before it was archived is ``None``) and, as ``units``, every
    unit named in its timeline; ``None`` when the archive does not have it."""
    record = await load_incident(conn, incident_id)
    if record is None:
        return None
    cur = await conn.execute("SELECT units FROM incident WHERE id = %s", (incident_id,))
    row = await cur.fetchone()
    units = list(row[0]) if row is not None else []
    by_id = {a.id: a for a in record.alarms}
    incident = msgspec.structs.replace(record.incident, units=units)
    alarms: list[wire.Alarm | str | None] = [by_id.get(a) for a in record.alarm_ids]
    return records.IncidentDetail(
        incident=incident, timeline=list(record.timeline), alarm_ids=record.alarm_ids,
        alarms=alarms,
    )  # fmt: skip


# --- the readers' data source: Redis alone, the archive alone, or both ---------------------


@dataclass(frozen=True)
class Incidents:
    """Where the reports, the CSV and the exports read incidents: Redis (``redis``, the hot
    state, with the ``zones`` of a zoned deployment), the archive (an open ``conn``, or one
    opened per call from ``database_url``), or both. With both, a period's incidents are the
    archived ones plus those Redis holds that are not archived yet (an incident in both counts
    once, as archived), and one incident is read from Redis while Redis has it."""

    redis: aioredis.Redis | None = None
    database_url: str = ""
    zones: ZoneMap | None = None
    conn: psycopg.AsyncConnection[Any] | None = None
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
    """A pool of archive connections (the gateway's); taken before ``database_url``."""

    @property
    def archived(self) -> bool:
        """Whether there is an archive to read (else Redis alone)."""
        return self.conn is not None or self.pool is not None or bool(self.database_url)

    async def times(
        self, start: float, end: float, *, district: str | None = None
    ) -> list[IncidentTimes]:
        """The incidents created in ``[start, end)`` (optionally of one district), oldest
        first."""
        async with self._archive() as conn:
            if conn is None:
                return await redis_incident_times(
                    self._hot(), start, end, district=district, zones=self.zones
                )
            archived = await archived_times(conn, start, end, district=district)
            if self.redis is None:
                return archived
            have = {t.id for t in archived}
            recent = await redis_incident_times(
                self.redis, start, end, district=district, zones=self.zones
            )
            merged = archived + [t for t in recent if t.id not in have]
            merged.sort(key=lambda t: (t.created, t.id))
            return merged

    async def assess(
        self,
        start: float,
        end: float,
        *,
        district: str | None = None,
        utc_offset_min: int = 0,
        **presentation: Any,
    ) -> Assessment:
        """The assessment of ``[start, end)`` against the period before. From the archive
        alone it is aggregated inside PostgreSQL; from Redis alone by
        :func:`analytics.assessment.assess`; with both, the incidents of both come to Python
        and are summed as the Redis reader does."""
        options = dict(district=district, utc_offset_min=utc_offset_min, **presentation)
        if not self.archived:
            from analytics.assessment import assess as assess_redis

            return await assess_redis(self._hot(), start, end, zones=self.zones, **options)
        if self.redis is None:
            async with self._archive() as conn:
                assert conn is not None
                return await assess(conn, start, end, **options)
        current = await self.times(start, end, district=district)
        previous = await self.times(start - (end - start), start, district=district)
        return build_assessment(current, previous, start, end, **options)

    async def record(self, incident_id: str) -> IncidentRecord | None:
        """An incident for CAP / EIDO export: from Redis while it is there (the hot, current
        state), else from the archive; ``None`` when neither has it."""
        if self.redis is not None:
            from analytics.incidents import load_incident as load_from_redis

            record = await load_from_redis(self.redis, incident_id, zones=self.zones)
            if record is not None:
                return record
        async with self._archive() as conn:
            return None if conn is None else await load_incident(conn, incident_id)

    async def finished(
        self, states: Sequence[str], text: str, limit: int, before: tuple[float, str] | None
    ) -> list[Finished]:
        """The archive's :func:`finished_incidents` (none without an archive)."""
        async with self._archive() as conn:
            return [] if conn is None else await finished_incidents(
                conn, states, text, limit, before)  # fmt: skip

    async def detail(self, incident_id: str) -> records.IncidentDetail | None:
        """The archive's :func:`archived_detail` (``None`` without an archive)."""
        async with self._archive() as conn:
            return None if conn is None else await archived_detail(conn, incident_id)

    def _hot(self) -> aioredis.Redis:
        if self.redis is None:
            raise ValueError("Incidents needs a Redis client, an archive, or both")
        return self.redis

    @contextlib.asynccontextmanager
    async def _archive(self) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
        """The archive's connection for a block: the open one, one opened from
        ``database_url``, or ``None`` without an archive."""
        if self.pool is not None and self.conn is None:
            async with self.pool.connection() as conn:
                yield conn
            return
        if self.conn is not None or not self.database_url:
            yield self.conn
            return
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            yield conn
