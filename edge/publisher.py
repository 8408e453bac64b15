"""The one way an edge agent hands alarms, heartbeats and camera frames to Redis.

Every agent (video, door, button) owns one :class:`AlarmPublisher`::

    async with AlarmPublisher(settings.redis_url, name="door-agent", spool=FileSpool(dir)) as pub:
        await pub.publish(alarm)                       # from the event loop
        pub.submit(alarm, snapshot=jpeg)               # from any thread (video workers)

Delivery: one background task writes, in order, everything handed over. Each alarm goes to
the stream of the dispatch zone its place lies in (``keys.zone(zones.locate(lon, lat))``;
``keys.ALARMS`` in a deployment without zones). A batch goes as one MULTI/EXEC round trip:
``SET keys.snapshot(alarm.id) jpeg EX ttl`` then ``XADD``, so a consumer never sees an alarm
whose snapshot is not there yet. On a Redis Cluster the snapshots, the heartbeat stream and
each zone's stream live on different shards, where one transaction cannot span them: there
the snapshots are SET in one pipelined round trip and the XADDs follow in a second, once
every SET is confirmed (the same guarantee; a snapshot whose XADD then fails is harmless and
expires). A batch one shard refused is retried whole, so on a cluster a message may reach a
stream twice; the dispatcher is idempotent on the alarm id.

When Redis cannot be reached, messages go to the spool (:mod:`edge.spool`) and are replayed
in order, oldest first, when it comes back; while the spool is not empty new messages queue
behind it, so order is preserved across the outage. A spooled record is removed only after
its XADD is confirmed.

Camera frames (:meth:`AlarmPublisher.frame`) are latest-only and never spooled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from types import TracebackType
from typing import Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from edge import lifecycle
from edge.spool import MemorySpool, Record, SpoolError, Store
from polewatch import connection, keys, settings, wire
from polewatch.zones import ZoneMap

log = logging.getLogger(__name__)

Delivery = Literal["sent", "spooled"]
"""What became of a message: confirmed in Redis, or safely in the spool for later replay."""

SNAPSHOT_TTL_S: Final = 7 * 24 * 3600
FRAME_TTL_S: Final = 10
HEARTBEAT_MAXLEN: Final = 10_000
BATCH: Final = 256


class PublisherStats(msgspec.Struct):
    """Counters for health reports and tests."""

    sent: int = 0
    spooled: int = 0
    replayed: int = 0
    frames: int = 0
    frames_dropped: int = 0
    failures: int = 0
    """Failed round trips to Redis (each sends the batch to the spool or retries it)."""
    lost: int = 0
    """Messages neither sent nor spooled (the spool could not be written), each logged."""


class _Item(msgspec.Struct):
    record: Record
    done: concurrent.futures.Future[Delivery] | None


class AlarmPublisher:
    """Ordered, spool-backed writer of alarms and heartbeats; an async context manager.

    ``redis_url`` may carry the agent's ACL user (``redis://edge:secret@host:6379/0``); see
    :mod:`polewatch.acl`. ``spool`` defaults to a :class:`~edge.spool.MemorySpool`; agents
    pass a :class:`~edge.spool.FileSpool` so nothing is lost across a restart. ``client`` lets
    a caller supply its own Redis client (the publisher then does not close it). ``cluster``:
    ``redis_url`` names a node of a Redis Cluster; ``zones``: the deployment's dispatch zones
    (none: one zone). :meth:`from_settings` takes all three from an agent's settings.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        name: str,
        spool: Store | None = None,
        client: aioredis.Redis | None = None,
        snapshot_ttl_s: int = SNAPSHOT_TTL_S,
        retry_cap_s: float = 2.0,
        cluster: bool = False,
        zones: ZoneMap | None = None,
    ) -> None:
        if client is None and redis_url is None:
            raise ValueError("AlarmPublisher needs a redis_url or a client")
        self.name = name
        self.spool: Store = spool if spool is not None else MemorySpool()
        self.snapshot_ttl_s = snapshot_ttl_s
        self.retry_cap_s = retry_cap_s
        self.stats = PublisherStats()
        self.zones = zones or ZoneMap.single()
        self.connected = True
        """False from a failed round trip until the next successful one."""
        self._down_since = 0.0
        self._own_client = client is None
        self._client: aioredis.Redis = client or connection.connect(
            redis_url or "",
            name=name,
            retries=0,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            cluster=cluster,
        )
        self._cluster = isinstance(self._client, RedisCluster)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handover = threading.Lock()
        self._frames: dict[str, asyncio.Task[bool]] = {}
        """Frame writes in flight, by camera."""
        self._in_flight = 0
        """Submitted from a thread, not yet in the queue (the loop has not run the put)."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, conf: settings.Settings, *, name: str, spool: Store | None = None
    ) -> AlarmPublisher:
        """The publisher of an agent configured by ``conf``: its Redis URL, cluster mode and
        dispatch zones."""
        return cls(
            conf.redis_url, name=name, spool=spool, cluster=conf.redis_cluster,
            zones=conf.zone_map(),
        )  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> AlarmPublisher:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"publisher:{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, drain_s: float = 5.0) -> None:
        """Send what is queued for up to ``drain_s`` seconds (at once if Redis is away: the
        spool keeps it), spool the rest, stop. Idempotent."""
        if self._task is None:
            return
        if self.connected:
            with contextlib.suppress(TimeoutError):
                await self.drained(drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await lifecycle.cancel(list(self._frames.values()))
        self._spool_queued()
        if len(self.spool) and isinstance(self.spool, MemorySpool):
            log.error("stopping with %d unsent messages in a memory spool", len(self.spool))
        self.spool.close()
        if self._own_client:
            await self._client.aclose()

    # --- async API -------------------------------------------------------------------------
    async def publish(self, alarm: wire.Alarm, snapshot: bytes | None = None) -> Delivery:
        """Hand ``alarm`` (and its JPEG ``snapshot``) over; returns once it is in Redis or in
        the spool. With a snapshot, ``alarm.snapshot`` is set to the alarm id if empty."""
        return await asyncio.wrap_future(self._put(self._record(alarm, snapshot), future=True))

    async def heartbeat(self, hb: wire.Heartbeat) -> Delivery:
        """Hand a heartbeat over (spooled like alarms, but dropped first when the spool is
        full)."""
        return await asyncio.wrap_future(self._put(Record(hb), future=True))

    async def frame(self, camera_id: str, jpeg: bytes, ttl_s: int = FRAME_TTL_S) -> bool:
        """Store a camera's latest JPEG under ``keys.camera_frame``; False if Redis is away
        (frames are never spooled)."""
        try:
            await self._client.set(keys.camera_frame(camera_id), jpeg, ex=ttl_s)
        except connection.UNREACHABLE:
            self.stats.frames_dropped += 1
            return False
        self.stats.frames += 1
        return True

    async def drained(self, timeout_s: float | None = None) -> None:
        """Wait until every message handed over is confirmed in Redis (queue and spool
        empty); raises TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not self._is_idle():
                self._idle.clear()
                await self._idle.wait()

    @property
    def pending(self) -> int:
        """Messages handed over and not yet confirmed in Redis."""
        return self._in_flight + self._queue.qsize() + len(self.spool)

    # --- thread-safe API -------------------------------------------------------------------
    def submit(
        self, alarm: wire.Alarm, snapshot: bytes | None = None
    ) -> concurrent.futures.Future[Delivery]:
        """Thread-safe :meth:`publish` for worker threads: returns at once; the future says
        ``"sent"`` or ``"spooled"`` (ignore it unless you want to know)."""
        return self._put_threadsafe(self._record(alarm, snapshot))

    def submit_heartbeat(self, hb: wire.Heartbeat) -> concurrent.futures.Future[Delivery]:
        """Thread-safe :meth:`heartbeat`."""
        return self._put_threadsafe(Record(hb))

    def submit_frame(self, camera_id: str, jpeg: bytes, ttl_s: int = FRAME_TTL_S) -> None:
        """Thread-safe :meth:`frame`, fire and forget. Latest-only: a frame arriving while the
        camera's previous one is still being written is dropped (counted)."""
        loop = self._running_loop()

        def start() -> None:
            if camera_id in self._frames or self._task is None:
                self.stats.frames_dropped += 1
                return
            task = loop.create_task(self.frame(camera_id, jpeg, ttl_s))
            self._frames[camera_id] = task
            task.add_done_callback(lambda t: self._frames.pop(camera_id, None))
            task.add_done_callback(_quiet)

        loop.call_soon_threadsafe(start)

    # --- internals -------------------------------------------------------------------------
    def _record(self, alarm: wire.Alarm, snapshot: bytes | None) -> Record:
        if snapshot is not None and alarm.snapshot is None:
            alarm = msgspec.structs.replace(alarm, snapshot=alarm.id)
        return Record(alarm, snapshot)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._task is None:
            raise RuntimeError("AlarmPublisher is not started (use 'async with')")
        return self._loop

    def _put(self, record: Record, *, future: bool) -> concurrent.futures.Future[Delivery]:
        self._running_loop()
        done: concurrent.futures.Future[Delivery] = concurrent.futures.Future()
        self._queue.put_nowait(_Item(record, done if future else None))
        self._wake.set()
        return done

    def _put_threadsafe(self, record: Record) -> concurrent.futures.Future[Delivery]:
        loop = self._running_loop()
        done: concurrent.futures.Future[Delivery] = concurrent.futures.Future()

        def put() -> None:
            self._queue.put_nowait(_Item(record, done))
            with self._handover:
                self._in_flight -= 1
            self._wake.set()

        with self._handover:
            self._in_flight += 1
        loop.call_soon_threadsafe(put)
        return done

    def _is_idle(self) -> bool:
        return self._queue.empty() and len(self.spool) == 0 and self._in_flight == 0

    def _take(self) -> list[_Item]:
        items: list[_Item] = []
        while len(items) < BATCH:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return items

    def _spool_queued(self) -> None:
        while items := self._take():
            self._to_spool(items)

    def _to_spool(self, items: list[_Item]) -> None:
        try:
            self.spool.append([i.record for i in items])
        except (OSError, SpoolError) as exc:  # disk full or gone: say exactly what was lost
            self.stats.lost += len(items)
            ids = [i.record.message.id for i in items if isinstance(i.record.message, wire.Alarm)]
            log.error("cannot spool (%s): %d messages lost, alarms %s", exc, len(items), ids)
            for item in items:
                if item.done is not None and not item.done.done():
                    item.done.set_exception(SpoolError(f"not sent and not spooled: {exc}"))
            return
        self.stats.spooled += len(items)
        _resolve(items, "spooled")

    async def _run(self) -> None:
        delay = 0.05
        # The loop tests for a pending cancellation itself: redis-py (on a cluster) can swallow
        # one that lands during a command and return as if nothing happened.
        while not lifecycle.stopping():
            try:
                delay = await self._step(delay)
            except Exception:  # a broken spool must not stop the loop that owns every future
                log.exception("publisher %s: unexpected error; retrying", self.name)
                delay = await self._backoff(delay)
        raise asyncio.CancelledError

    async def _step(self, delay: float) -> float:
        """One turn of the writer: wait for work, replay the spool, or send what is queued."""
        if self._is_idle():
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()
            return delay
        if len(self.spool):
            self._spool_queued()  # queued messages are newer than the spool: behind it
            batch = self.spool.peek(BATCH)
            if not batch:
                return delay
            if await self._send([r for _, r in batch]):
                self.spool.ack(batch[-1][0])
                self.stats.replayed += len(batch)
                return 0.05
            return await self._backoff(delay)
        items = self._take()
        try:
            sent = await self._send([i.record for i in items])
        except asyncio.CancelledError:
            self._to_spool(items)  # stopped mid-write: kept (a replay may repeat some)
            raise
        if sent:
            self.stats.sent += len(items)
            _resolve(items, "sent")
        else:
            self._to_spool(items)
        return delay

    async def _backoff(self, delay: float) -> float:
        """Wait ``delay`` before the next replay attempt; messages arriving meanwhile go behind
        the spool at once, so their callers' futures resolve promptly."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            self._spool_queued()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._wake.wait()
        self._spool_queued()
        return min(delay * 2, self.retry_cap_s)

    async def _send(self, records: list[Record]) -> bool:
        """Write ``records`` (one MULTI/EXEC round trip; two pipelined ones on a cluster);
        False if Redis did not confirm them all."""
        try:
            if self._cluster:
                await self._send_ordered(records)
            else:
                await self._send_atomic(records)
        except connection.UNREACHABLE as exc:
            if lifecycle.stopping():
                raise asyncio.CancelledError from exc
            self.stats.failures += 1
            if self.connected:
                log.warning("redis refused or unreachable (%r); spooling", exc)
                self._down_since = time.monotonic()
            self.connected = False
            return False
        if not self.connected:
            log.info("redis is back after %.1f s", time.monotonic() - self._down_since)
        self.connected = True
        return True

    def _xadd(self, pipe: Any, message: wire.Alarm | wire.Heartbeat) -> None:
        if isinstance(message, wire.Heartbeat):
            pipe.xadd(keys.HEARTBEATS, _fields(message), maxlen=HEARTBEAT_MAXLEN, approximate=True)
        else:
            stream = keys.zone(self.zones.locate(message.lon, message.lat)).alarms
            pipe.xadd(stream, _fields(message))

    def _snapshot(self, pipe: Any, record: Record) -> None:
        message = record.message
        if isinstance(message, wire.Alarm) and record.snapshot is not None and message.snapshot:
            pipe.set(keys.snapshot(message.snapshot), record.snapshot, ex=self.snapshot_ttl_s)

    async def _send_atomic(self, records: list[Record]) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            for record in records:
                self._snapshot(pipe, record)
                self._xadd(pipe, record.message)
            await pipe.execute()

    async def _send_ordered(self, records: list[Record]) -> None:
        """The cluster's way: every snapshot confirmed first, then every XADD (each shard
        gets its share of a pipeline in one write, so a stream's entries keep their order)."""
        if any(r.snapshot is not None for r in records):
            async with self._client.pipeline(transaction=False) as pipe:
                for record in records:
                    self._snapshot(pipe, record)
                await pipe.execute()
        async with self._client.pipeline(transaction=False) as pipe:
            for record in records:
                self._xadd(pipe, record.message)
            await pipe.execute()


def _fields(message: wire.Message) -> Any:
    return wire.entry(message)


def _resolve(items: list[_Item], outcome: Delivery) -> None:
    for item in items:
        if item.done is not None and not item.done.done():
            item.done.set_result(outcome)


def _quiet(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("frame write failed: %s", task.exception())
