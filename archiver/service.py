"""``polewatch archiver``: the audit streams -> the archive, then Redis retention.

One task per zone reads the zone's audit stream in the ``archivers`` consumer group: first its
own pending entries (a restart after a crash), then entries other archivers left pending too
long, then new ones. Per batch: undecodable entries are dead-lettered with the reason; every
incident resolved, closed, cancelled or merged in the batch, and every already-archived incident
the batch touches (reopened, amended, closed after its resolution), is read from Redis and
upserted with the batch's audit rows in one transaction; only after the commit do its keys get
their retention time (EXPIRE; closed, cancelled, merged only: a resolved or reopened one's are
made persistent) and the entries get acknowledged. A crash anywhere
replays the batch: the upserts make that harmless. While the database is unreachable the
batch is retried and nothing is acknowledged or expired.

Three batches are in hand at a time (:meth:`ZoneArchiver.run`): one is written while the next
is read and decoded and the previous one acknowledged, so this process, PostgreSQL and Redis
work at the same time; a batch's "already archived?" check and its writing wait for the
previous commit, its acknowledgement for its own commit and the previous acknowledgement.
After its commit, a batch's incidents whose timeline Redis has grown since they were read are
archived again (an amendment another archiver checked before the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import redis.asyncio as aioredis

from archiver import schema, writer
from archiver.metrics import Metrics
from archiver.settings import ArchiverSettings
from archiver.source import ARCHIVING, grown, read_incidents, retain
from archiver.stream import GROUP, Bad, decode_batch, ensure_group, read
from polewatch import connection, deadletter, keys, wire
from polewatch.connection import UNREACHABLE
from polewatch.groups import forget_gone
from polewatch.settings import consumer_name

__all__ = [
    "GROUP", "Metrics", "ZoneArchiver", "decode_batch", "fewer_collections", "migrate", "serve",
]  # fmt: skip
log = logging.getLogger("polewatch.archiver")


@dataclasses.dataclass
class _Batch:
    """A batch read and decoded, its closed incidents read from Redis, not yet written."""

    rows: list[writer.AuditRow]
    bad: Bad
    incidents: list[writer.Archived]
    others: list[str]
    """Incidents it touches without closing them: archived again if already archived."""
    tables: writer.Tables
    """Its rows, as written."""
    resolved: list[str]
    """Incidents it archives that a patrol resolved in an earlier batch: archived then."""
    last: Any
    """Its last entry's id."""


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
        self.consumer = consumer_name(settings.consumer)
        self._pg: psycopg.AsyncConnection[Any] | None = None
        self._own = True
        """Whether this consumer's own pending entries may remain to be read (a restart)."""
        self._acking: asyncio.Future[None] | None = None
        """The acknowledgement in flight (of the batch committed last)."""
        self._claimed = -math.inf
        """When entries left by crashed replicas were last claimed (``time.monotonic``)."""
        self.stop = asyncio.Event()
        """Set it to have :meth:`run` return after the batch in hand (SIGTERM does)."""

    async def run(self, *, burst: bool = False) -> None:
        """Consume until cancelled (with ``burst``: until the stream is drained), three
        batches in hand at a time (written, read, acknowledged: the module's docstring)."""
        await ensure_group(self.redis, self.stream)
        self._own = True
        batch: _Batch | None = None
        try:
            while not self.stop.is_set():
                if connection.stopping():  # a cancel a read swallowed: still a cancel
                    raise asyncio.CancelledError
                try:
                    if batch is None:
                        batch = await self._next(None, block=not burst and not self._acking)
                        if batch is None and burst and not self._acking:
                            return
                    if batch is None:
                        await self._acknowledged()
                    else:
                        batch = await self._write_reading_next(batch)
                    await self._lag()
                except UNREACHABLE as exc:
                    # Redis (or a cluster node) failed mid-batch: what was read stays pending
                    # and is read again from the start of this consumer's pending list.
                    if connection.stopping():
                        raise
                    log.warning("Redis error (%s); reading the pending entries again", exc)
                    await self._settle()
                    batch = None
                    self._own = True
                    await asyncio.sleep(self.settings.retry_s)
            try:  # stopped: what was read ahead is in hand too
                if batch is not None:
                    await self._write_reading_next(batch, reading=False)
                await self._acknowledged()
            except UNREACHABLE as exc:
                log.warning("Redis error (%s) at the stop; the entries stay pending", exc)
        finally:
            await self._settle(cancel=True)
            await self.aclose()

    async def _write_reading_next(self, batch: _Batch, *, reading: bool = True) -> _Batch | None:
        """Write ``batch`` while the next one is read and prepared and the previous one is
        acknowledged; then start its own acknowledgement. The next batch, if any."""
        writing = asyncio.ensure_future(self._commit(batch))
        upcoming = None
        try:
            if reading:
                upcoming = await self._next(batch.last, block=False)
        except asyncio.CancelledError:
            writing.cancel()
            raise
        except BaseException:
            # The read failed (Redis): the write ends (or fails) first, then the caller reads
            # this consumer's pending entries again, both batches' included.
            await asyncio.gather(writing, return_exceptions=True)
            raise
        finally:
            if writing.cancelled() or not writing.done():
                await asyncio.gather(writing, return_exceptions=True)
        writing.result()
        await self._acknowledged()
        self._acking = asyncio.ensure_future(self._acknowledge(batch))
        return upcoming

    async def _acknowledged(self) -> None:
        """Wait for the acknowledgement in flight (raising its error)."""
        acking, self._acking = self._acking, None
        if acking is not None:
            await acking

    async def _settle(self, *, cancel: bool = False) -> None:
        """End the acknowledgement in flight, ignoring its error (its entries stay pending)."""
        acking, self._acking = self._acking, None
        if acking is not None:
            if cancel:
                acking.cancel()
            await asyncio.gather(acking, return_exceptions=True)

    async def _next(self, after: Any, *, block: bool) -> _Batch | None:
        """The next batch, read and prepared; ``None`` when there is none. Own pending entries
        (after a restart) come first, read after ``after``, the last entry of the batch being
        written (it is still pending); then entries a crashed replica left; then new ones,
        waiting for them with ``block``."""
        entries: list[Any] = []
        if self._own:
            entries = await self._read(after or "0", block=None)
            self._own = bool(entries)
        if not entries and time.monotonic() >= self._claimed + self.settings.claim_idle_ms / 2e3:
            entries = await self._claim()
            # consumers that hold nothing and were idle forget_idle_ms leave the group
            await forget_gone(
                self.redis, self.stream, GROUP, self.consumer, self.settings.forget_idle_ms
            )
        if not entries:
            entries = await self._read(">", block=None) or await self._claim()
        if not entries and block:
            entries = await self._read(">", block=self.settings.block_ms)
        return await self._prepare(entries) if entries else None

    async def aclose(self) -> None:
        """Close the database connection (:meth:`run` does on its way out)."""
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    async def _read(self, cursor: str, *, block: int | None) -> list[Any]:
        return await read(self.redis, self.stream, self.consumer, cursor, self.settings.batch,
                          block=block)  # fmt: skip

    async def _claim(self) -> list[Any]:
        # Not every round: XAUTOCLAIM walks the pending list, which holds the batches in hand
        # (about 1 us of Redis per entry). Each half idle time, and whenever nothing is new.
        self._claimed = time.monotonic()
        reply = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, self.settings.claim_idle_ms,
            start_id="0-0", count=self.settings.batch,
        )  # fmt: skip
        return [e for e in reply[1] if e[1]]

    async def _lag(self) -> None:
        for group in await self.redis.xinfo_groups(self.stream):
            if group.get("name") in (GROUP, GROUP.encode()):
                self.metrics.lag.labels(self.zone.name or "default").set(group.get("lag") or 0)

    async def process(self, entries: list[Any]) -> None:
        """Archive one batch of ``(id, fields)`` audit entries, then acknowledge it."""
        batch = await self._prepare(entries)
        await self._commit(batch)
        await self._acknowledge(batch)

    async def _prepare(self, entries: list[Any]) -> _Batch:
        """Decode a batch of ``(id, fields)`` audit entries and read from Redis the incidents
        it ends (resolved, closed, cancelled, merged). Nothing here asks the archive: what the
        batch touches that is archived already is found by :meth:`_commit`, after the batch
        before it was committed."""
        rows, bad = decode_batch(self.zone.name, entries)
        closing = {r.event.incident for r in rows if r.event.event in ARCHIVING}
        others = {r.event.incident for r in rows} - closing
        incidents = await self._incidents(sorted(closing), rows, bad)
        tables = writer.tables(incidents, rows)
        here = {r.event.incident for r in rows if r.event.event == "resolved"}
        resolved = [i.incident.id for i in incidents if "resolved" in i.incident.times
                    and i.incident.id not in here]  # fmt: skip
        return _Batch(rows, bad, incidents, sorted(others), tables, resolved, entries[-1][0])

    async def _commit(self, batch: _Batch) -> None:
        """Archive a prepared batch, with the archived incidents it reopens or amends; of the
        incidents the archive holds, only the timeline rows it lacks are written."""
        ids = batch.others + batch.resolved
        archived = await self._database(lambda c: writer.revisions(c, ids))
        if again := [i for i in batch.others if i in archived]:
            batch.incidents += await self._incidents(again, batch.rows, batch.bad)
            batch.tables = writer.tables(batch.incidents, batch.rows)
        tables = writer.new_events_only(batch.tables, archived) if archived else batch.tables
        await self._write(batch.incidents, batch.rows, batch.bad, tables)
        await self._rewrite_grown(batch)

    async def _rewrite_grown(self, batch: _Batch) -> None:
        """After the commit: archive again the batch's incidents Redis changed since they were
        read. Another archiver may have read the change (an amendment, a reopening) and found
        them not archived before this commit; one made after this look is read after the
        commit, by an archiver that finds them archived. No timing between processes counts."""
        changed = set(await grown(self.redis, self.zone, batch.incidents))
        if not changed:
            return
        found = await read_incidents(self.redis, self.zone, sorted(changed))
        again = [a for a in found.values() if isinstance(a, writer.Archived)]
        await self._write(again, [], batch.bad, writer.tables(again))
        # retention follows the new copies; one the database refused keeps its keys as they are
        batch.incidents[:] = [a for a in batch.incidents if a.incident.id not in changed] + again

    async def _acknowledge(self, batch: _Batch) -> None:
        """After its commit: give a batch's incidents their retention time, dead-letter its
        bad entries and acknowledge the rest."""
        rows, bad, incidents = batch.rows, batch.bad, batch.incidents
        async with self.redis.pipeline(transaction=False) as pipe:
            done = {a.incident.id for a in incidents}
            joined = [r.event.alarm for r in rows if r.event.alarm and r.event.incident not in done]
            retain(pipe, self.zone, incidents, self.settings.retention_s, joined)
            for entry_id, fields, reason in bad:
                deadletter.add(pipe, self.stream, GROUP, entry_id, fields, reason,
                               self.consumer, to=self.zone.deadletter)  # fmt: skip
            if rows:
                pipe.xack(self.stream, GROUP, *(r.entry_id for r in rows))
            await pipe.execute()
        self.metrics.archived.inc(len(incidents))
        self.metrics.entries.inc(len(rows))
        self.metrics.deadletters.inc(len(bad))

    async def _incidents(
        self, wanted: list[str], rows: list[writer.AuditRow], bad: Bad
    ) -> list[writer.Archived]:
        """The incidents ``wanted`` as Redis holds them; an unreadable one dead-letters its
        events (moved from ``rows`` to ``bad``), one that is gone is left out."""
        if not wanted:
            return []
        known = {r.body: r.event for r in rows}  # the timelines hold the same bytes
        found = await read_incidents(self.redis, self.zone, wanted, known)
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
        tables: writer.Tables,
    ) -> None:
        try:
            await self._database(lambda c: writer.write_tables(c, tables))
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


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cycle collector every 100,000 net allocations instead of 700, for as long as
    the archiver runs. A batch allocates about 100,000 objects (rows, events, incidents) that
    live until it is acknowledged, and each collection walked them again: about 16 of the
    archiver's 77 us per incident (timed with ``gc.callbacks``, 20,000 incidents), none
    after. The archiver makes few reference cycles, so little waits for the collector."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


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
        await ensure_group(redis, z.audit)
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
        with fewer_collections():
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
