"""The command centre's live feed: one reader per gateway process follows the audit, patrol
and heartbeat streams and fans each change out to every open console as Server-Sent Events.

A console that connects gets the current picture once (open incidents, units, cameras, the
latest audit entries), then only what changed: the incidents and units an audit or position
entry touched, and the units whose record a dispatcher call announced it changed (duty, status:
``Zone.unit_changes``), re-read in one pipelined round trip per batch. Nothing polls the whole
state. A duty entry itself is not read for its unit: the feed often sees it before the
dispatcher has applied it, and would show the record as it was.
The dead letters are followed too: a command the dispatcher refused (``refused`` events, the
reason with its catalogue key) reaches the console that sent it, which had only heard "sent".
A console too slow to keep up is dropped; its EventSource reconnects and starts afresh.

The streams are followed only while a console listens in this process: the first one to
connect starts the reader, the last one to leave stops it. A gateway process that no console
watches (most of a fleet's) reads and decodes nothing; at 19,000 patrol sockets following
every position cost 0.4-0.6 s stalls.

With dispatch zones every zone's audit and patrol streams are followed. One XREAD may only name
streams of one hash slot on a Redis Cluster, so there one blocking reader follows each slot's
streams (a zone's share its hash tag), and their batches meet in one fan-out; on a single
server one XREAD follows them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web
from redis.crc import key_slot

from gateway.auth import authorize
from gateway.console.backlog import Watch
from gateway.console.cameras import camera_view
from gateway.console.picture import picture, read_records
from gateway.incidents import unit_ids
from gateway.notify import ANY
from gateway.openapi import api
from gateway.refusals import refused
from gateway.state import GATEWAY
from gateway.tasks import running
from polewatch import details, keys, wire
from polewatch.connection import RETRY_ERRORS
from polewatch.poles.index import PoleIndex

log = logging.getLogger(__name__)

BLOCK_MS: Final = 5000
READ_COUNT: Final = 1000
MIN_INTERVAL_S: Final = 0.1
"""At most ten fan-outs a second: under load a batch gathers many changes into one."""
QUEUE_MAX: Final = 512
KEEPALIVE_S: Final = 15.0

_json = msgspec.json.Encoder()


class Feed:
    """Follows the streams and keeps the set of listening consoles."""

    def __init__(
        self,
        redis: aioredis.Redis,
        poles: PoleIndex | None = None,
        zones: Sequence[keys.Zone] = (keys.DEFAULT,),
        *,
        cluster: bool = False,
    ) -> None:
        self.redis = redis
        self.poles = poles
        """Where cameras are (their heartbeats name a pole)."""
        self.zones = list(zones)
        self.cluster = cluster
        """Follow each hash slot's streams with its own XREAD (a Redis Cluster)."""
        self._zone_of: dict[str, keys.Zone | None] = {}
        """Stream followed -> its zone (``None``: the deployment's heartbeats)."""
        for zone in self.zones:
            self._zone_of[zone.audit] = self._zone_of[zone.patrol_events] = zone
            self._zone_of[zone.deadletter] = zone  # for the commands the dispatcher refused
        self._zone_of[keys.HEARTBEATS] = None
        self.listeners: set[asyncio.Queue[bytes | None]] = set()
        self.ready = asyncio.Event()
        """Set while the streams are followed from a known position: a console that waits
        for it and then reads the picture misses no change."""
        self.idle = asyncio.Event()
        """Set while nothing is followed (no console listens)."""
        self.idle.set()
        self.batches = 0
        self.reads = 0
        """Stream reads sent (``XREAD``, and the ``XREVRANGE`` that finds where to start)."""
        self.starts = 0
        self._changed = asyncio.Event()
        self._generation = 0
        self._wake = asyncio.Event()
        """Set when a stream batch or an announced unit waits for the fan-out."""
        self._announced: dict[str, keys.Zone] = {}
        self._every_unit = False

    def unit_changed(self, zone: keys.Zone, unit: str) -> None:
        """A dispatcher call in ``zone`` changed ``unit``'s record (a :class:`Notifier` listener
        of ``zone.unit_changes``): read it again with the next fan-out; every unit after
        :data:`~gateway.notify.ANY` (a lost subscription). Nothing while no console listens."""
        if not self.listeners:
            return
        if unit == ANY:
            self._every_unit = True
        else:
            self._announced[unit] = zone
        self._wake.set()

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[bytes | None]]:
        """A console's queue of frames while the block runs; the first one starts the reader,
        the last one to leave stops it (:meth:`run`)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self.listeners.add(queue)
        self._changed.set()
        try:
            yield queue
        finally:
            self.listeners.discard(queue)
            self._changed.set()

    async def listened(self) -> None:
        """Return at once while a console listens, else when one starts to."""
        await self._until(lambda: bool(self.listeners))

    def close_all(self) -> None:
        """Tell every console to end its stream (shutdown)."""
        for queue in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def broadcast(self, kind: str, data: Any) -> None:
        frame = b"event: " + kind.encode() + b"\ndata: " + _json.encode(data) + b"\n\n"
        for queue in list(self.listeners):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self.listeners.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells that console to reconnect

    def groups(self) -> list[dict[Any, Any]]:
        """The streams each XREAD follows: all in one, or one group per hash slot."""
        if not self.cluster:
            return [dict.fromkeys(self._zone_of, "$")]
        by_slot: dict[int, dict[Any, Any]] = {}
        for name in self._zone_of:
            by_slot.setdefault(key_slot(name.encode()), {})[name] = "$"
        return list(by_slot.values())

    async def run(self) -> None:
        """Until cancelled, follow the streams while any console listens."""
        while True:
            await self._until(lambda: bool(self.listeners))
            self.idle.clear()
            self.starts += 1
            async with running(self._follow_all(self._generation)):
                await self._until(lambda: not self.listeners)
                # Decided in the same step as the check: a console arriving from now on waits
                # for the next reader's start, and this reader can no longer announce one.
                self.ready.clear()
                self._generation += 1
            self.idle.set()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def _follow_all(self, generation: int) -> None:
        """Read until cancelled; after a lost connection, go on from where it stopped."""
        groups = self.groups()
        await self._start_at(groups)
        if generation == self._generation:
            self.ready.set()
        batches: asyncio.Queue[Any] = asyncio.Queue(2 * len(groups))
        readers = [asyncio.create_task(self._follow(group, batches)) for group in groups]
        delay = 0.05
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                reply: list[Any] = []
                while not batches.empty():
                    reply += batches.get_nowait()
                units, self._announced = self._announced, {}
                every, self._every_unit = self._every_unit, False
                try:
                    await self._fan_out(reply, units, every=every)
                    delay = 0.05
                except tuple(RETRY_ERRORS) as exc:
                    log.warning("live feed lost Redis (%s); again in %.2f s", exc, delay)
                    self._announced = units | self._announced  # read them when it is back
                    self._every_unit |= every
                    self._wake.set()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                self.batches += 1
                await asyncio.sleep(MIN_INTERVAL_S)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _start_at(self, groups: list[dict[Any, Any]]) -> None:
        """Replace "$" by each stream's last id, so nothing is skipped after a reconnect."""
        delay = 0.05
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for group in groups:
                        for name in group:
                            pipe.xrevrange(name, count=1)
                    lasts: list[Any] = await pipe.execute()
                self.reads += len(lasts)
                break
            except tuple(RETRY_ERRORS) as exc:
                log.warning("live feed cannot reach Redis (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        found = iter(lasts)
        for group in groups:
            for name in group:
                last = next(found)
                group[name] = last[0][0].decode() if last else "0"

    async def _follow(self, streams: dict[Any, Any], batches: asyncio.Queue[Any]) -> None:
        """One blocking reader: hand each batch of ``streams`` on to the fan-out."""
        delay = 0.05
        while True:
            try:
                self.reads += 1
                reply: Any = await self.redis.xread(streams, count=READ_COUNT, block=BLOCK_MS)
            except tuple(RETRY_ERRORS) as exc:
                log.warning("live feed lost Redis (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except Exception:
                log.exception("live feed: reading %s failed; that reader stops", list(streams))
                raise
            delay = 0.05
            if not reply:
                continue
            for stream, entries in reply:
                name = stream.decode() if isinstance(stream, bytes) else stream
                streams[name] = entries[-1][0].decode()
            await batches.put(reply)
            self._wake.set()
            await asyncio.sleep(MIN_INTERVAL_S)  # under load the next read gathers more

    async def _fan_out(
        self, reply: Any, announced: Mapping[str, keys.Zone], *, every: bool = False
    ) -> None:
        events: list[dict[str, Any]] = []
        incidents: dict[str, keys.Zone] = {}
        units: dict[str, keys.Zone] = dict(announced)
        positions: dict[str, wire.PatrolPosition] = {}
        cameras: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for stream, entries in reply:
            name = stream.decode() if isinstance(stream, bytes) else stream
            zone = self._zone_of.get(name)
            for entry_id, fields in entries:
                if zone is not None and name == zone.deadletter:
                    if (view := refusal(fields, zone)) is not None:
                        refused.append(view)
                    continue
                try:
                    message = wire.decode_entry(fields)
                except wire.WireError:
                    continue  # the stream's consumer dead-letters it; a viewer just skips it
                # A zone's dispatcher writes only its own incidents and units, and a unit
                # reports on its own zone's stream.
                if zone is None:
                    if isinstance(message, wire.Heartbeat) and message.kind == "camera":
                        cameras.append(camera_view(message, self.poles))
                elif isinstance(message, wire.IncidentEvent) and name == zone.audit:
                    incidents[message.incident] = zone
                    if message.unit:
                        units[message.unit] = zone
                    view = {"id": entry_id.decode(), **wire.to_builtins(message)}
                    events.append(details.event_view(view))
                elif isinstance(message, wire.PatrolPosition):
                    positions[message.unit] = message
                    units[message.unit] = zone
        if not self.listeners:
            return
        if every:
            units.update(await unit_ids(self.redis, self.zones))
        found_incidents, found_units = await read_records(self.redis, incidents, units)
        for unit in found_units:
            pos = positions.get(unit.id)
            if pos is not None and (unit.seen is None or pos.ts > unit.seen):
                unit.lon, unit.lat, unit.seen = pos.lon, pos.lat, pos.ts
        if found_incidents:
            self.broadcast("incidents", found_incidents)
        if found_units:
            self.broadcast("units", found_units)
        if events:
            self.broadcast("audit", events)
        if cameras:
            self.broadcast("cameras", cameras)
        if refused:
            self.broadcast("refused", refused)


def refusal(fields: Mapping[bytes, bytes], zone: keys.Zone) -> dict[str, Any] | None:
    """An operator's command that ``zone``'s dispatcher refused (a dead letter of its command
    stream) as a console shows it to whoever sent it: ``incident``, ``op``, ``actor`` and the
    reason as ``error``, with its catalogue key (:mod:`polewatch.details`); ``None`` for any
    other dead letter."""
    found = refused(fields, zone.commands, wire.Command)
    if found is None:
        return None
    command, reason = found
    view = {"incident": command.incident, "op": command.op, "actor": command.actor,
            "error": reason}  # fmt: skip
    return details.label(view, "error")


FEED = web.AppKey("console_feed", Feed)
WATCH = web.AppKey("console_dispatch_watch", Watch)


async def close_feed(app: web.Application) -> None:
    """Shutdown: end every console's stream (``on_shutdown``)."""
    if FEED in app:
        app[FEED].close_all()


async def feed_context(app: web.Application) -> AsyncIterator[None]:
    """Run the feed as long as the app (a ``cleanup_ctx``)."""
    gw = app[GATEWAY]
    feed = Feed(gw.need_redis(), gw.poles, gw.zones.all_keys(), cluster=gw.settings.redis_cluster)
    app[FEED] = feed
    for zone in feed.zones:
        gw.need_notifier().listen(zone.unit_changes, functools.partial(feed.unit_changed, zone))
    console = gw.settings.console
    watch = Watch(feed.redis, feed.zones, console.dispatch_alert_s, console.dispatch_check_s)
    app[WATCH] = watch
    async with running(feed.run()), running(watch.run(feed)):
        yield


routes = web.RouteTableDef()


@routes.get("/api/console/live")
@api(tag="console", roles=("operator", "supervisor"), content="text/event-stream")
async def live(request: web.Request) -> web.StreamResponse:
    """The operations picture as Server-Sent Events: ``picture`` once, then ``incidents``,
    ``units``, ``audit`` and ``cameras`` as they change, ``refused`` for a command the
    dispatcher refused, and ``dispatch`` while alarms, answers or commands wait too long for a
    dispatcher (the picture's ``dispatch`` is the latest such reading)."""
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, "operator", "supervisor")
    feed = request.app[FEED]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    with feed.listen() as queue:
        await feed.ready.wait()
        whole = await picture(gw.need_redis(), gw.poles, feed.zones)
        whole["dispatch"] = request.app[WATCH].last
        await response.prepare(request)
        gw.streams.add(response)
        gw.metrics.sse_clients.inc()
        try:
            await response.write(b"retry: 2000\n\nevent: picture\ndata: " + _json.encode(whole)
                                 + b"\n\n")  # fmt: skip
            while not gw.closing.is_set():
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if frame is None:
                    break  # fell behind: the browser reconnects and gets a fresh picture
                await response.write(frame)
        except ConnectionResetError:
            pass
        finally:
            gw.metrics.sse_clients.dec()
    return response
