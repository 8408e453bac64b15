"""``polewatch archiver``: the audit streams -> the archive, then Redis retention.

One task per zone reads the zone's audit stream in the ``archivers`` consumer group: first its
own pending entries (a restart after a crash), then entries other archivers left pending too
long, then new ones. Per batch: undecodable entries are dead-lettered with the reason; every
incident closed, cancelled or merged in the batch, and every already-archived incident the
batch touches (reopened, amended), is read from Redis and upserted with the batch's audit rows
in one transaction; only after the commit do its keys get their retention time (EXPIRE; a
reopened one's are made persistent again) and the entries get acknowledged. A crash anywhere
replays the batch: the upserts make that harmless. While the database is unreachable the
batch is retried and nothing is acknowledged or expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any, Final

import psycopg
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import ResponseError

from archiver import schema, writer
from archiver.settings import ArchiverSettings
from archiver.source import TERMINAL, read_incidents, retain
from polewatch import connection, deadletter, keys, wire
from polewatch.connection import UNREACHABLE

log = logging.getLogger("polewatch.archiver")
GROUP = keys.ARCHIVE_GROUP
Bad = list[tuple[Any, dict[bytes, bytes], str]]
"""Entries to dead-letter: ``(entry id, fields, reason)``."""


class Metrics:
    """The archiver's Prometheus metrics (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.archived = Counter(
            "polewatch_archiver_incidents_total", "Incidents written to the archive",
            registry=self.registry,
        )  # fmt: skip
        self.entries = Counter(
            "polewatch_archiver_audit_entries_total", "Audit entries archived",
            registry=self.registry,
        )  # fmt: skip
        self.deadletters = Counter(
            "polewatch_archiver_dead_letters_total", "Audit entries dead-lettered",
            registry=self.registry,
        )  # fmt: skip
        self.lag = Gauge(
            "polewatch_archiver_lag_entries", "Audit entries not yet read by the archivers",
            ["zone"], registry=self.registry,
        )  # fmt: skip
        self.db_errors = Counter(
            "polewatch_archiver_database_errors_total", "Batches the database refused",
            registry=self.registry,
        )  # fmt: skip


class ZoneArchiver:
    """Archives one zone's audit stream."""

    def __init__(
        self, redis: aioredis.Redis, settings: ArchiverSettings, zone: keys.Zone, metrics: Metrics
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.zone = zone
        self.metrics = metrics
        self.stream = zone.audit
        self._pg: psycopg.AsyncConnection[Any] | None = None
        self.stop = asyncio.Event()
        """Set it to have :meth:`run` return after the batch in hand (SIGTERM does)."""

    async def run(self, *, burst: bool = False) -> None:
        """Consume until cancelled (with ``burst``: until the stream is drained)."""
        await _ensure_group(self.redis, self.stream)
        own = True
        try:
            while not self.stop.is_set():
                try:
                    entries = await self._read("0", block=None) if own else []
                    own = bool(entries)
                    if not own:
                        entries = await self._claim() or await self._read(">", block=None)
                    if not entries and not burst:  # caught up: wait for new entries
                        entries = await self._read(">", block=self.settings.block_ms)
                    if entries:
                        await self.process(entries)
                    elif burst:
                        return
                    await self._lag()
                except UNREACHABLE as exc:
                    # Redis (or a cluster node) failed mid-batch: what was read stays pending
                    # and is read again from the start of this consumer's pending list.
                    if connection.stopping():
                        raise
                    log.warning("Redis error (%s); reading the pending entries again", exc)
                    own = True
                    await asyncio.sleep(self.settings.retry_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the database connection (:meth:`run` does on its way out)."""
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    async def _read(self, cursor: str, *, block: int | None) -> list[Any]:
        if block is None:  # a script reads the batch: one flat reply, no per-entry dicts
            flat = await self.redis.eval(
                _READ, 1, self.stream, GROUP, self.settings.consumer, self.settings.batch,
                cursor, wire.FIELD,
            )  # fmt: skip
            return _entries(flat)
        reply: Any = await self.redis.xreadgroup(
            GROUP, self.settings.consumer, {self.stream: cursor},
            count=self.settings.batch, block=block,
        )  # fmt: skip
        return list(reply[0][1]) if reply else []

    async def _claim(self) -> list[Any]:
        reply = await self.redis.xautoclaim(
            self.stream, GROUP, self.settings.consumer, self.settings.claim_idle_ms,
            start_id="0-0", count=self.settings.batch,
        )  # fmt: skip
        return [e for e in reply[1] if e[1]]

    async def _lag(self) -> None:
        for group in await self.redis.xinfo_groups(self.stream):
            if _text(group.get("name")) == GROUP:
                self.metrics.lag.labels(self.zone.name or "default").set(group.get("lag") or 0)

    async def process(self, entries: list[Any]) -> None:
        """Archive one batch of ``(id, fields)`` audit entries, then acknowledge it."""
        rows, bad = decode_batch(self.zone.name, entries)
        incidents = await self._incidents(rows, bad)
        await self._write(incidents, rows, bad)
        async with self.redis.pipeline(transaction=False) as pipe:
            done = {a.incident.id for a in incidents}
            joined = [r.event.alarm for r in rows if r.event.alarm and r.event.incident not in done]
            retain(pipe, self.zone, incidents, self.settings.retention_s, joined)
            for entry_id, fields, reason in bad:
                deadletter.add(pipe, self.stream, GROUP, entry_id, fields, reason,
                               self.settings.consumer, to=self.zone.deadletter)  # fmt: skip
            if rows:
                pipe.xack(self.stream, GROUP, *(r.entry_id for r in rows))
            await pipe.execute()
        self.metrics.archived.inc(len(incidents))
        self.metrics.entries.inc(len(rows))
        self.metrics.deadletters.inc(len(bad))

    async def _incidents(self, rows: list[writer.AuditRow], bad: Bad) -> list[writer.Archived]:
        """The incidents the batch archives; an unreadable one dead-letters its events."""
        closing = {r.event.incident for r in rows if r.event.event in TERMINAL}
        others = {r.event.incident for r in rows} - closing
        again = await self._database(lambda c: writer.archived_ids(c, sorted(others)))
        wanted = sorted(closing | again)
        known = {r.body: r.event for r in rows}  # the timelines hold the same bytes
        found = await read_incidents(self.redis, self.zone, wanted, known) if wanted else {}
        unreadable = {iid: why for iid, why in found.items() if isinstance(why, str)}
        for r in [r for r in rows if r.event.incident in unreadable]:
            rows.remove(r)
            bad.append((r.entry_id, {wire.FIELD: r.body}, unreadable[r.event.incident]))
        return [a for a in found.values() if isinstance(a, writer.Archived)]

    async def _write(
        self,
        incidents: list[writer.Archived],
        rows: list[writer.AuditRow],
        bad: Bad,
    ) -> None:
        try:
            await self._database(lambda c: writer.write(c, incidents, rows))
        except psycopg.DataError:
            # Something in the batch the database rejects (e.g. a NUL in a text): write the
            # incidents one by one and dead-letter the events of the ones it refuses.
            for inc in list(incidents):
                mine = [r for r in rows if r.event.incident == inc.incident.id]
                try:
                    await self._database(lambda c, i=inc, m=mine: writer.write(c, [i], m))
                except psycopg.DataError as exc:
                    incidents.remove(inc)
                    for r in mine:
                        rows.remove(r)
                        bad.append((r.entry_id, {wire.FIELD: r.body}, f"archive refused: {exc}"))
            await self._database(lambda c: writer.write(c, [], rows))

    async def _database(self, work: Any) -> Any:
        """Run ``work(connection)``, reconnecting and retrying while the database is down."""
        while True:
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = await psycopg.AsyncConnection.connect(
                        self.settings.database_url, autocommit=True, connect_timeout=5
                    )
                return await work(self._pg)
            except psycopg.OperationalError as exc:
                self.metrics.db_errors.inc()
                log.warning("archive unreachable (%s); retrying", exc)
                if self._pg is not None:
                    await self._pg.close()
                    self._pg = None
                await asyncio.sleep(self.settings.retry_s)


# XREADGROUP in a script, its reply flattened to id, message, id, message, ...: redis-py's
# XREADGROUP reply callback builds a dict per entry, about a quarter of the archiver's time
# (side by side: archiver 88-93 -> 69-79 us per incident, Redis 38-39 -> 45-47 us). An entry
# with other fields than the message comes back with all its fields (a list; empty if the
# entry was deleted while pending).
_READ: Final = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], ARGV[4])
local out = {}
if not reply or not reply[1] then return out end
for _, e in ipairs(reply[1][2]) do
  local fields = e[2] or {}
  out[#out + 1] = e[1]
  if #fields == 2 and fields[1] == ARGV[5] then out[#out + 1] = fields[2]
  else out[#out + 1] = fields end
end
return out
"""


def _entries(flat: list[Any]) -> list[tuple[Any, dict[bytes, bytes]]]:
    """``(id, fields)`` entries out of the :data:`_READ` script's flat reply."""
    out: list[tuple[Any, dict[bytes, bytes]]] = []
    for entry_id, value in zip(flat[::2], flat[1::2], strict=True):
        if isinstance(value, list):
            out.append((entry_id, dict(zip(value[::2], value[1::2], strict=True))))
        else:
            out.append((entry_id, {wire.FIELD: value}))
    return out


def decode_batch(zone: str, entries: list[Any]) -> tuple[list[writer.AuditRow], Bad]:
    """Split ``(id, fields)`` audit entries into decoded rows and entries to dead-letter with
    the reason; every entry lands in exactly one of them."""
    rows: list[writer.AuditRow] = []
    bad: Bad = []
    for entry_id, fields in entries:
        try:
            event = wire.decode_entry(fields or {}, wire.IncidentEvent)
        except wire.WireError as exc:
            bad.append((entry_id, fields or {}, exc.reason))
            continue
        rows.append(writer.AuditRow(zone, _text(entry_id), event, fields[wire.FIELD]))
    return rows, bad


async def _ensure_group(redis: aioredis.Redis, stream: str) -> None:
    """The ``archivers`` group from the start of the stream (the whole history is archived)."""
    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)


async def migrate(database_url: str) -> list[int]:
    """Apply the schema migrations the archive lacks."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await schema.migrate(conn)


async def serve(settings: ArchiverSettings, *, burst: bool = False) -> None:
    """Run the archiver: migrate, then one :class:`ZoneArchiver` per zone, until SIGTERM
    (with ``burst``: until every stream is drained)."""
    applied = await migrate(settings.database_url)
    if applied:
        log.info("archive schema: applied migrations %s", applied)
    redis = connection.connect(
        settings.redis_url, name="polewatch-archiver", cluster=settings.redis_cluster
    )
    metrics = Metrics()
    close_metrics = None
    if settings.metrics_port:
        from prometheus_client import start_http_server

        server, thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_addr, registry=metrics.registry
        )
        close_metrics = (server, thread)
    zone_map = settings.zone_map()
    zones = zone_map.all_keys() if zone_map.zoned else [keys.DEFAULT]
    # One command at a time until the client knows the cluster: redis-py's asyncio cluster
    # client can break a connection that several tasks open at once.
    await connection.wait_ready(redis)
    for z in zones:
        await _ensure_group(redis, z.audit)
    archivers = [ZoneArchiver(redis, settings, z, metrics) for z in zones]
    tasks = [asyncio.create_task(a.run(burst=burst)) for a in archivers]
    loop = asyncio.get_running_loop()

    def drain() -> None:
        # Finish the batches in hand (each is one transaction), then stop; past the drain
        # time, cancel: a cancelled batch stays pending and is archived by the next start.
        for a in archivers:
            a.stop.set()
        loop.call_later(settings.drain_s, lambda: [t.cancel() for t in tasks])

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain)
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        if close_metrics is not None:
            close_metrics[0].shutdown()
            close_metrics[0].server_close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
