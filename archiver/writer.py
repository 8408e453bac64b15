"""The bulk upsert of archived incidents: one transaction per batch, keyed by incident id,
``(incident, seq)`` timeline positions, alarm ids and audit stream ids, so writing the same
batch twice (a replay after a crash) leaves the archive as writing it once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import psycopg
from psycopg.types.json import set_json_dumps

from analytics.response_times import METRICS, IncidentTimes
from polewatch import records, wire


class AuditRow(msgspec.Struct, frozen=True):
    """One decoded entry of a zone's audit stream."""

    zone: str
    entry_id: str
    event: wire.IncidentEvent
    body: bytes


class Archived(msgspec.Struct, kw_only=True):
    """An incident as it goes into the archive."""

    zone: str
    incident: records.Incident
    timeline: list[wire.IncidentEvent]
    alarm_ids: list[str]
    alarms: list[bytes | None]
    """The MessagePack body of each of ``alarm_ids`` (``None``: expired or undecodable)."""
    read_length: int = -1
    """The timeline's length in Redis when it was read (undecodable entries included; -1:
    not read from Redis)."""

    def times(self) -> dict[str, float]:
        """``event -> first time`` over the timeline, as the Redis readers count them."""
        out: dict[str, float] = {}
        for e in self.timeline:
            out.setdefault(e.event, e.ts)
        return out

    def reports(self) -> int:
        seen = [e.reports for e in self.timeline if e.reports is not None]
        return max([self.incident.reports, *seen])


_INCIDENT_COLUMNS: Final = (
    "id, zone, state, priority, type, merge_group, created, alarm_ts, reports, wanted, pole,"
    " district, grid, text, units, first_alarm, evaluation, merged_into, times, "
    + ", ".join(METRICS)
    + ", revision"
)
_STAGE: Final = f"""
CREATE TEMP TABLE IF NOT EXISTS stage_incident ON COMMIT DELETE ROWS AS
    SELECT {_INCIDENT_COLUMNS}, 0::float8 AS lon, 0::float8 AS lat FROM incident WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_event ON COMMIT DELETE ROWS AS
    SELECT * FROM incident_event WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_alarm ON COMMIT DELETE ROWS AS
    SELECT id, incident, seq, type, source, ts, pole, district, grid, text, body,
        0::float8 AS lon, 0::float8 AS lat FROM alarm WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_audit ON COMMIT DELETE ROWS AS
    SELECT * FROM audit WITH NO DATA;
"""
"""Staging tables of the connection: a batch is COPied in, then upserted in four statements."""
_F8: Final = "float8"
_TYPES: Final = {
    "stage_incident": [
        "text", "text", "text", "int2", "text", "text", _F8, _F8, "int4", "int2", "text", "text",
        "text", "text", "text[]", "text", "int2", "text", "jsonb", *[_F8] * len(METRICS), "int4",
        _F8, _F8,
    ],
    "stage_event": ["text", "int4", "text", _F8, "text", "text", "text", "text", "int2", "int4"],
    "stage_alarm": [
        "text", "text", "int4", "text", "text", _F8, "text", "text", "text", "text", "bytea", _F8,
        _F8,
    ],
    "stage_audit": ["text", "text", "text", "text", _F8, "bytea"],
}  # fmt: skip
"""Each staging table's column types: the batch is COPied in binary (no text formatting of
numbers and escaping of strings)."""
_DIRECT: Final = {"stage_event": "incident_event", "stage_audit": "audit"}
"""Staging tables whose rows are first COPied straight into their table (same columns)."""
_INCIDENT: Final = f"""
INSERT INTO incident ({_INCIDENT_COLUMNS}, geom)
SELECT {_INCIDENT_COLUMNS}, ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM stage_incident
ON CONFLICT (id) DO UPDATE SET zone = EXCLUDED.zone, state = EXCLUDED.state,
    priority = EXCLUDED.priority, type = EXCLUDED.type, merge_group = EXCLUDED.merge_group,
    created = EXCLUDED.created, alarm_ts = EXCLUDED.alarm_ts, reports = EXCLUDED.reports,
    wanted = EXCLUDED.wanted, pole = EXCLUDED.pole, district = EXCLUDED.district,
    grid = EXCLUDED.grid, text = EXCLUDED.text, units = EXCLUDED.units,
    first_alarm = EXCLUDED.first_alarm, evaluation = EXCLUDED.evaluation,
    merged_into = EXCLUDED.merged_into, times = EXCLUDED.times, geom = EXCLUDED.geom,
    archived_at = now(), revision = EXCLUDED.revision,
    {", ".join(f"{m} = EXCLUDED.{m}" for m in METRICS)}
WHERE incident.revision <= EXCLUDED.revision
"""
"""An incident's row is replaced by a copy at least as new (``revision``: its timeline's
length), never by an older one that another process read earlier and committed later."""
_EVENT: Final = """
INSERT INTO incident_event SELECT * FROM stage_event
ON CONFLICT (incident, seq) DO UPDATE SET event = EXCLUDED.event, ts = EXCLUDED.ts,
    unit = EXCLUDED.unit, alarm = EXCLUDED.alarm, actor = EXCLUDED.actor,
    detail = EXCLUDED.detail, priority = EXCLUDED.priority, reports = EXCLUDED.reports
"""
_ALARM: Final = """
INSERT INTO alarm (id, incident, seq, type, source, ts, pole, district, grid, text, body, geom)
SELECT DISTINCT ON (id) id, incident, seq, type, source, ts, pole, district, grid, text, body,
    CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END
FROM stage_alarm ORDER BY id
ON CONFLICT (id) DO UPDATE SET incident = EXCLUDED.incident, seq = EXCLUDED.seq,
    type = COALESCE(EXCLUDED.type, alarm.type), source = COALESCE(EXCLUDED.source, alarm.source),
    ts = COALESCE(EXCLUDED.ts, alarm.ts), pole = COALESCE(EXCLUDED.pole, alarm.pole),
    district = COALESCE(EXCLUDED.district, alarm.district),
    grid = COALESCE(EXCLUDED.grid, alarm.grid), text = COALESCE(EXCLUDED.text, alarm.text),
    geom = COALESCE(EXCLUDED.geom, alarm.geom), body = COALESCE(EXCLUDED.body, alarm.body)
"""
_AUDIT: Final = """
INSERT INTO audit SELECT * FROM stage_audit ON CONFLICT (zone, entry_id) DO NOTHING
"""


def _incident_row(a: Archived) -> tuple[Any, ...]:
    i = a.incident
    units = sorted({e.unit for e in a.timeline if e.unit} | set(i.units))
    times = a.times()
    created = times.get("new", i.created)
    durations = IncidentTimes(
        id=i.id, type=i.type, priority=i.priority, state=i.state, created=created,
        alarm_ts=i.alarm_ts, times=times,
    ).durations()  # fmt: skip
    return (
        i.id, a.zone, i.state, i.priority, i.type, i.group, created, i.alarm_ts, a.reports(),
        i.wanted, i.pole, i.district, i.grid, i.text, units, i.first_alarm, i.evaluation,
        i.merged_into, times, *(durations[m] for m in METRICS), len(a.timeline),
        i.lon, i.lat,
    )  # fmt: skip


def _alarm_rows(a: Archived) -> list[tuple[Any, ...]]:
    rows = []
    for seq, (alarm_id, body) in enumerate(zip(a.alarm_ids, a.alarms, strict=True)):
        alarm: wire.Alarm | None = None
        if body is not None:
            try:
                alarm = wire.decode(body, wire.Alarm)
            except wire.WireError:
                body = None
        lon = alarm.lon if alarm else None
        lat = alarm.lat if alarm else None
        rows.append((
            alarm_id, a.incident.id, seq, alarm and alarm.type, alarm and alarm.source,
            alarm and alarm.ts, alarm and alarm.pole, alarm and alarm.district,
            alarm and alarm.grid, alarm and alarm.text, body, lon, lat,
        ))  # fmt: skip
    return rows


Tables = list[tuple[str, str, list[tuple[Any, ...]], bool]]
"""Each staging table with its upsert, its rows and whether they are first COPied straight
into their table (:func:`tables`, :func:`write_tables`)."""


def tables(incidents: Sequence[Archived], audit: Sequence[AuditRow] = ()) -> Tables:
    """The rows :func:`write_tables` writes for ``incidents`` (with their timelines and
    alarms) and the ``audit`` rows: built apart from the transaction, so the archiver builds a
    batch's while the batch before it is being written."""
    return [
        ("stage_incident", _INCIDENT, [_incident_row(a) for a in incidents], False),
        ("stage_event", _EVENT, [
            (a.incident.id, seq, e.event, e.ts, e.unit, e.alarm, e.actor, e.detail,
             e.priority, e.reports)
            for a in incidents for seq, e in enumerate(a.timeline)
        ], True),
        ("stage_alarm", _ALARM, [row for a in incidents for row in _alarm_rows(a)], False),
        ("stage_audit", _AUDIT, [
            (r.zone, r.entry_id, r.event.incident, r.event.event, r.event.ts, r.body)
            for r in audit
        ], True),
    ]  # fmt: skip


def new_events_only(tables: Tables, archived: Mapping[str, int]) -> Tables:
    """``tables`` without the timeline rows the archive holds already: those of an incident
    archived at revision ``archived[id]`` below that position (the timeline only grows, so
    they are the same rows). The rest of those incidents' rows are upserted; the others' are
    still COPied straight in. An incident resolved, then closed: its close writes one event,
    and the batch's other events keep the direct COPY (without this, the conflict of one
    incident's rows would send the whole batch's through the staging table)."""
    out: Tables = []
    for table, upsert, rows, direct in tables:
        if table != "stage_event":
            out.append((table, upsert, rows, direct))
            continue
        fresh = [r for r in rows if r[0] not in archived]
        later = [r for r in rows if r[0] in archived and r[1] >= archived[r[0]]]
        out += [(table, upsert, fresh, direct), (table, upsert, later, False)]
    return out


async def write(
    conn: psycopg.AsyncConnection[Any],
    incidents: Sequence[Archived],
    audit: Sequence[AuditRow] = (),
) -> None:
    """Upsert ``incidents`` (with their timelines and alarms) and insert the ``audit`` rows,
    in one transaction (COPY into staging tables, then ``INSERT ... ON CONFLICT``): when this
    returns, the archive has confirmed all of them."""
    await write_tables(conn, tables(incidents, audit))


async def write_tables(conn: psycopg.AsyncConnection[Any], tables: Tables) -> None:
    """:func:`write` of rows built by :func:`tables`."""
    async with conn.transaction(), conn.cursor() as cur:
        set_json_dumps(_json, context=cur)
        await cur.execute(_STAGE)
        for table, upsert, rows, direct in tables:
            if not rows:
                continue
            if direct:
                # Rows written for the first time (all but a replay's or an amendment's) go
                # straight into the table; a conflict undoes that and takes the upsert.
                try:
                    async with conn.transaction():
                        await _copy(cur, _DIRECT[table], _TYPES[table], rows)
                    continue
                except psycopg.errors.UniqueViolation:
                    pass
            await _copy(cur, table, _TYPES[table], rows)
            await cur.execute(upsert.encode())


async def _copy(
    cur: psycopg.AsyncCursor[Any], table: str, types: list[str], rows: list[tuple[Any, ...]]
) -> None:
    async with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)".encode()) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def revisions(conn: psycopg.AsyncConnection[Any], ids: Sequence[str]) -> dict[str, int]:
    """Which of ``ids`` the archive already holds, with the revision it holds."""
    if not ids:
        return {}
    cur = await conn.execute("SELECT id, revision FROM incident WHERE id = ANY(%s)", (list(ids),))
    return {row[0]: row[1] for row in await cur.fetchall()}
