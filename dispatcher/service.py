"""The dispatcher replica: reads each zone's three input streams in one consumer group and
forwards each batch to the Redis functions in one call on the zone's shard.

Any number of replicas can run. Processing and acknowledgement happen in the same atomic call,
so a replica killed mid-batch either did the batch or did not; entries left pending by a dead
replica are claimed (XAUTOCLAIM) by a live one after ``claim_idle_ms``. A timer loop expires
unacknowledged dispatches and retries escalated incidents; a heartbeat says the replica lives.
Taking over a dead replica's entries and riding out Redis restarts: :mod:`dispatcher.recovery`.
``burst`` mode drains what is there, runs the timer once and returns (tests, batch jobs).

A replica serves every zone of the deployment (or the ``serve_zones`` it is given), one
consumer loop per zone; a zone's border alarms may be handed to a neighbouring zone (see
:mod:`dispatcher.routing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from dispatcher import command, drive, intake, library, recovery, trim
from dispatcher.command import Batch
from dispatcher.metrics import Metrics
from dispatcher.priorities import PriorityTable
from dispatcher.routing import Route, Router
from dispatcher.settings import DispatcherSettings
from polewatch import deadletter, keys, wire
from polewatch.connection import connect, wait_ready
from polewatch.settings import consumer_name

log = logging.getLogger("polewatch.dispatcher")

HEARTBEAT_MAXLEN = 10_000


class Dispatcher:
    """One dispatcher replica. ``await run()`` until :meth:`stop` (or the streams are drained,
    in burst mode)."""

    def __init__(
        self,
        settings: DispatcherSettings,
        *,
        burst: bool = False,
        client: aioredis.Redis | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.burst = burst
        self.consumer = consumer_name(settings.consumer)
        self._forget_at: dict[str, float] = {}
        """Per zone: when its gone consumers are looked for next (``claim``)."""
        self.table = PriorityTable(settings.alarm_types())
        self.metrics = metrics or Metrics()
        self.totals: Counter[str] = Counter()
        """Everything the functions counted since start (plus ``deadletter`` from intake)."""
        self._client = client
        self._own_client = client is None
        self.zone_map = settings.zone_map()
        self.zones = [keys.zone(name) for name in settings.served_zones()]
        """The zones this replica consumes."""
        self._conf = {
            zone.name: library.settings_arg(settings, self.consumer, zone)
            for zone in self.zone_map.all_keys()
        }
        self.router = Router(self.zone_map, settings, self.table, self._conf)
        self.ranker = drive.Ranker(settings)
        """Road shortlists for the functions (the city's graph, reloaded when it changes)."""
        self._stopping = asyncio.Event()
        self._warming = False
        self.idle = command.Idle()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = connect(
                self.settings.redis_url,
                name=f"dispatcher:{self.consumer}",
                cluster=self.settings.redis_cluster,
            )
        return self._client

    def stop(self) -> None:
        """Finish the batch in flight, then return from :meth:`run`."""
        self._stopping.set()

    async def prepare(self) -> None:
        """Load the functions and the alarm-type table; create the consumer group."""
        await wait_ready(self.client)
        if self.zone_map.zoned and not self._warming:
            # Border distances for the whole city, in a daemon thread (no one waits for it;
            # alarms meanwhile compute the squares they need themselves).
            self._warming = True
            threading.Thread(target=self.zone_map.warm, name="zone-warm", daemon=True).start()
        await library.load(self.client, self.table, self.zone_map.all_keys())
        await self.ranker.refresh(self.client)
        for zone in self.zones:
            for stream in zone.streams:
                with contextlib.suppress(ResponseError):  # BUSYGROUP: another replica made it
                    await self.client.xgroup_create(stream, keys.DISPATCH_GROUP, "0", mkstream=True)

    async def run(self) -> None:
        """Consume until stopped (or drained, in burst mode)."""
        await self.prepare()
        background: list[asyncio.Task[None]] = []
        if not self.burst:
            background = [
                asyncio.create_task(self._every(self.settings.tick_s, self.tick)),
                asyncio.create_task(self._every(self.settings.heartbeat_s, self.heartbeat)),
                asyncio.create_task(self._every(trim.EVERY_S, self.trim)),
            ]
            if self.settings.metrics_port:
                every = self.settings.metrics_every_s
                background.append(asyncio.create_task(self._every(every, self.read_state)))
        try:
            await asyncio.gather(*(self._consume_resiliently(zone) for zone in self.zones))
            if self.burst:
                await self.tick()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not self.burst:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.heartbeat("stopping"), 2.0)
            await self.ranker.close()
            if self._own_client and self._client is not None:
                await self._client.aclose()

    async def _consume_resiliently(self, zone: keys.Zone) -> None:
        """Consume ``zone``; ride out Redis restarts (see :func:`recovery.resiliently`)."""
        consume = functools.partial(self._consume, zone)
        await recovery.resiliently(
            consume, self.prepare, zone=zone.name, burst=self.burst, stopping=self._stopping
        )

    async def _consume(self, zone: keys.Zone) -> None:
        # Entries this consumer name was given before a restart come first.
        await self._drain_own_pending(zone)
        next_claim = 0.0
        # Two stages: batch n+1 is checked and ranked while Redis runs the functions on batch
        # n, and sent once n's reply is in: the calls stay in order, and n+1's lists lose the
        # units n took (dispatcher.shortlist). The entries of n+1 (and a copy of the free set
        # due) are asked for right before n's call: Redis answers them before it runs it.
        batch: Batch | None = None
        reading: asyncio.Future[list[intake.Entry]] | None = None
        sending: asyncio.Future[dict[str, int]] | None = None
        stopped = False
        try:
            while not self._stopping.is_set():
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.settings.claim_every_s
                    if await self.claim(zone):
                        continue
                reading = asyncio.ensure_future(self._read(zone))
                if batch is not None:
                    self.ranker.read_if_due(self.client, zone)
                    send = functools.partial(self._send, batch, zone)
                    sending, batch = await command.started(send), None
                    self.idle.written()
                if entries := await reading:
                    batch = await self._prepare(entries, zone, in_flight=sending is not None)
                if sending is not None:
                    await sending
                    sending = None
                elif not entries and self.burst and not await self.claim(zone):
                    break
            stopped = True
        finally:
            if stopped and batch is not None:  # stopping: what was read is ours to do
                await self._send(batch, zone)
            elif not stopped:  # failing: what was read stays pending (for _drain_own_pending
                for job in (reading, sending):  # after a restart, or another replica)
                    if job is not None:
                        job.cancel()
                        with contextlib.suppress(BaseException):
                            await job

    async def _read(self, zone: keys.Zone, start: str = ">") -> list[intake.Entry]:
        """New entries (``>``: blocking unless in burst mode), or from ``start`` on, entries
        given to this consumer name before (a restart's)."""
        block = None if self.burst or start != ">" else self.settings.block_ms
        reply = await self.client.xreadgroup(
            keys.DISPATCH_GROUP, self.consumer, {s: start for s in zone.streams},
            count=self.settings.batch_size, block=block,
        )  # fmt: skip
        return intake.flatten(reply)

    async def _drain_own_pending(self, zone: keys.Zone) -> None:
        while entries := await self._read(zone, "0"):
            await self.process(entries, zone, replay=True)

    async def claim(self, zone: keys.Zone = keys.DEFAULT) -> int:
        """Take over and process entries idle too long in other (dead) consumers; every
        ``forget_every_s``, delete the consumers that are gone and hold nothing."""
        done = 0
        idle_ms, count = self.settings.claim_idle_ms, self.settings.batch_size
        taken = recovery.idle_entries(self.client, zone, self.consumer, idle_ms, count)
        async with contextlib.aclosing(taken):
            async for entries in taken:
                await self.process(entries, zone, replay=True)
                done += len(entries)
        if time.monotonic() >= self._forget_at.get(zone.name, 0.0):
            self._forget_at[zone.name] = time.monotonic() + self.settings.forget_every_s
            await recovery.forget_gone(
                self.client, zone, self.consumer, self.settings.forget_idle_ms
            )
        return done

    async def process(
        self, entries: list[intake.Entry], zone: keys.Zone = keys.DEFAULT, *, replay: bool = False
    ) -> dict[str, int]:
        """Dead-letter the bad entries and hand the good ones to ``pw_batch`` on the zone's
        shard, in one round trip (border alarms another zone should take go there first);
        returns the counters."""
        return await self._send(await self._prepare(entries, zone, replay=replay), zone)

    async def _prepare(
        self,
        entries: list[intake.Entry],
        zone: keys.Zone,
        *,
        replay: bool = False,
        in_flight: bool = False,
    ) -> Batch:
        """What a batch's call needs that no earlier call can change: the entries checked,
        the alarms' road shortlists ranked (the units taken meanwhile leave them when sent).
        ``in_flight``: the zone's call before it is under way."""
        started = time.perf_counter()
        checked = intake.checked(entries)
        ranked = await self.ranker.ranked(
            self.client, zone, checked.args, checked.places, in_flight=in_flight
        )
        packed = None  # (a batch with dead letters, or on a cluster, goes through redis-py)
        if checked.args and not checked.bad and isinstance(self.client, aioredis.Redis):
            packed = command.Command(zone.alarms, self._conf[zone.name], ranked)
        took = time.perf_counter() - started
        return Batch(checked.good, checked.bad, ranked, packed, replay, took)

    async def _send(
        self, batch: Batch, zone: keys.Zone, written: asyncio.Event | None = None
    ) -> dict[str, int]:
        """Route ``batch``'s border alarms, then dead-letter its bad entries and run the good
        ones in ``pw_batch``, in one round trip (``written`` is set once it is sent); the
        counters."""
        started = time.perf_counter()
        good, bad = batch.good, batch.bad
        away = await self.router.route(
            self.client, zone, [p if e.is_alarm else None for e, p in good], replay=batch.replay
        )
        counts: Counter[str] = Counter()
        reply: Any = None
        if away:  # (rare: alarms near another zone's nearest unit) ranked again without them
            counts.update(await self._forward(zone, good, away))
            good = [g for i, g in enumerate(good) if i not in away]
            args = await self.ranker.arguments(self.client, zone, intake.arguments(good))
        elif batch.packed is not None:  # the usual batch: packed while the call before ran
            reply, args = await command.call(self.client, batch.packed, written), []
        else:
            args = batch.ranked.arguments()
        if args or bad:
            async with self.client.pipeline(transaction=False) as pipe:
                for rejected in bad:
                    e = rejected.entry
                    deadletter.add(
                        pipe, e.stream, keys.DISPATCH_GROUP, e.id, e.fields, rejected.reason,
                        self.consumer, to=zone.deadletter,
                    )  # fmt: skip
                if args:
                    pipe.fcall(library.BATCH, 1, zone.alarms, self._conf[zone.name], *args)
                if written is not None:
                    written.set()  # (about to be)
                replies = await pipe.execute()
            reply = replies[-1] if args else None
        if reply is not None:
            self.idle.replied()
            counts.update(self._answered(zone.name, reply))
        counts["deadletter"] = len(bad) + counts.get("rejected", 0)
        for rejected in bad:
            log.warning("dead-lettered %s %s: %s", rejected.entry.stream,
                        rejected.entry.id, rejected.reason)  # fmt: skip
        self._count(dict(counts))
        self.metrics.batch_seconds.observe(time.perf_counter() - started + batch.prepared_s)
        return dict(counts)

    async def _forward(
        self, zone: keys.Zone, good: list[tuple[intake.Entry, bytes]], away: dict[int, Route]
    ) -> Counter[str]:
        """Run the alarms routed elsewhere in their zones, then acknowledge them here (a crash
        in between replays them to the same zone, where they are duplicates)."""
        by_zone: dict[str, list[bytes]] = {}
        for i, route in away.items():
            by_zone.setdefault(route.zone, []).extend((library.ALARM, b"", good[i][1]))
        counts: Counter[str] = Counter()
        for target, args in by_zone.items():
            by_zone[target] = await self.ranker.arguments(self.client, keys.zone(target), args)
        async with self.client.pipeline(transaction=False) as pipe:
            for target, args in by_zone.items():
                other = keys.zone(target)
                pipe.fcall(library.BATCH, 1, other.alarms, self._conf[target], *args)
            for target, reply in zip(by_zone, await pipe.execute(), strict=True):
                counts.update(self._answered(target, reply))
        await self.router.remember(self.client, zone, list(away.values()))
        await self.client.xack(zone.alarms, keys.DISPATCH_GROUP, *(good[i][0].id for i in away))
        counts["routed"] = len(away)
        return counts

    async def tick(self) -> dict[str, int]:
        """Expire unacknowledged dispatches and retry escalated incidents, in every zone
        served."""
        counts: Counter[str] = Counter()
        await self.ranker.refresh(self.client)
        for zone in self.zones:
            waiting = await self.ranker.waiting(self.client, zone)
            reply = await self.client.fcall(
                library.TICK, 1, zone.alarms, self._conf[zone.name], *waiting
            )
            counts.update(self._answered(zone.name, reply))
        self._count(dict(counts))
        return dict(counts)

    def _answered(self, zone: str, reply: list[Any]) -> dict[str, int]:
        """A function's counters; the units it took off the free set are told to the ranker
        (its copy of the zone's free set may still list them)."""
        self.ranker.claimed(zone, library.left_free(reply))
        return library.counters(reply)

    async def trim(self) -> None:
        """Trim the input streams behind the slowest consumer group (see :mod:`dispatcher.trim`)."""
        await trim.trim_behind_groups(self.client, [s for zone in self.zones for s in zone.streams])

    async def heartbeat(self, status: str = "online") -> None:
        beat = wire.Heartbeat(
            source=self.consumer,
            kind="dispatcher",
            status=status,  # type: ignore[arg-type]
            ts=time.time(),
            detail=f"alarms={self.totals['alarms']} dispatched={self.totals['dispatched']}",
        )
        fields: Any = wire.entry(beat)
        await self.client.xadd(keys.HEARTBEATS, fields, maxlen=HEARTBEAT_MAXLEN, approximate=True)

    async def read_state(self) -> None:
        """Read the deployment's operational state for ``/metrics`` (every zone: a scrape of
        any replica shows the whole deployment)."""
        await self.metrics.state.refresh(self.client, self.zone_map.all_keys())

    def _count(self, counts: dict[str, int]) -> None:
        self.totals.update(counts)
        self.metrics.record(counts)

    async def _every(self, period: float, action: Any) -> None:
        # Until stopped, not only until cancelled: redis-py can swallow a cancellation that
        # lands inside a command, which left a stopping replica asleep for a whole period.
        while not self._stopping.is_set():
            try:
                await action()
            except Exception:  # a failed tick or heartbeat must not stop the replica
                log.exception("%s failed", getattr(action, "__name__", action))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), period)
