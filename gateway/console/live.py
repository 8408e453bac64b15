"""The command centre's live feed: one reader per gateway process follows the audit, patrol
and heartbeat streams and fans each change out to every open console as Server-Sent Events.

A console that connects gets the current picture once (open incidents, units, cameras, the
latest audit entries), then only what changed: the incidents and units an audit or patrol
entry touched, re-read in one pipelined round trip per batch. Nothing polls the whole state.
A console too slow to keep up is dropped; its EventSource reconnects and starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from gateway.auth import authorize
from gateway.console.cameras import camera_view, latest_cameras
from gateway.openapi import api
from gateway.state import GATEWAY
from polewatch import keys, records, wire
from polewatch.connection import RETRY_ERRORS
from polewatch.poles.index import PoleIndex

log = logging.getLogger(__name__)

BLOCK_MS: Final = 5000
READ_COUNT: Final = 1000
MIN_INTERVAL_S: Final = 0.1
"""At most ten fan-outs a second: under load a batch gathers many changes into one."""
QUEUE_MAX: Final = 512
KEEPALIVE_S: Final = 15.0
RECENT_AUDIT: Final = 60
MAX_OPEN: Final = 2000

_json = msgspec.json.Encoder()


class Feed:
    """Follows the streams and keeps the set of listening consoles."""

    def __init__(self, redis: aioredis.Redis, poles: PoleIndex | None = None) -> None:
        self.redis = redis
        self.poles = poles
        """Where cameras are (their heartbeats name a pole)."""
        self.listeners: set[asyncio.Queue[bytes | None]] = set()
        self.ready = asyncio.Event()
        self.batches = 0

    @contextlib.contextmanager
    def listen(self) -> Any:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self.listeners.add(queue)
        try:
            yield queue
        finally:
            self.listeners.discard(queue)

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

    async def run(self) -> None:
        """Read until cancelled; after a lost connection, go on from where it stopped."""
        streams: dict[Any, Any] = {keys.AUDIT: "$", keys.PATROL_EVENTS: "$", keys.HEARTBEATS: "$"}
        delay = 0.05
        while True:
            try:
                for name in streams:  # "$" once, then real ids: nothing is skipped later
                    if streams[name] == "$":
                        last: Any = await self.redis.xrevrange(name, count=1)
                        streams[name] = last[0][0].decode() if last else "0"
                self.ready.set()
                while True:
                    reply: Any = await self.redis.xread(streams, count=READ_COUNT, block=BLOCK_MS)
                    delay = 0.05
                    if not reply:
                        continue
                    for stream, entries in reply:
                        name = stream.decode() if isinstance(stream, bytes) else stream
                        streams[name] = entries[-1][0].decode()
                    await self._fan_out(reply)
                    self.batches += 1
                    await asyncio.sleep(MIN_INTERVAL_S)
            except tuple(RETRY_ERRORS) as exc:
                log.warning("live feed lost Redis (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _fan_out(self, reply: Any) -> None:
        events: list[dict[str, Any]] = []
        incidents: set[str] = set()
        units: set[str] = set()
        positions: dict[str, wire.PatrolPosition] = {}
        cameras: list[dict[str, Any]] = []
        for stream, entries in reply:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                try:
                    message = wire.decode_entry(fields)
                except wire.WireError:
                    continue  # the stream's consumer dead-letters it; a viewer just skips it
                if isinstance(message, wire.IncidentEvent) and name == keys.AUDIT:
                    incidents.add(message.incident)
                    if message.unit:
                        units.add(message.unit)
                    events.append({"id": entry_id.decode(), **wire.to_builtins(message)})
                elif isinstance(message, wire.PatrolPosition):
                    positions[message.unit] = message
                    units.add(message.unit)
                elif isinstance(message, wire.PatrolDuty | wire.PatrolStatus):
                    units.add(message.unit)
                elif isinstance(message, wire.Heartbeat) and message.kind == "camera":
                    cameras.append(camera_view(message, self.poles))
        if not self.listeners:
            return
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


async def read_records(
    redis: aioredis.Redis, incidents: set[str] | list[str], units: set[str] | list[str]
) -> tuple[list[records.Incident], list[records.Unit]]:
    """The incident and unit hashes named, in one pipelined round trip."""
    incident_ids, unit_ids = list(incidents), list(units)
    if not incident_ids and not unit_ids:
        return [], []
    async with redis.pipeline(transaction=False) as pipe:
        for i in incident_ids:
            pipe.hgetall(keys.incident(i))
        for u in unit_ids:
            pipe.hgetall(keys.unit(u))
        hashes: list[Any] = await pipe.execute()
    found_i = [records.incident_from_hash(h) for h in hashes[: len(incident_ids)]]
    found_u = [records.unit_from_hash(h) for h in hashes[len(incident_ids) :]]
    return [i for i in found_i if i], [u for u in found_u if u]


async def picture(redis: aioredis.Redis, poles: PoleIndex | None = None) -> dict[str, Any]:
    """The whole current picture, sent once to a console when it connects."""
    open_ids: Any = await redis.zrevrange(keys.INCIDENTS_OPEN, 0, MAX_OPEN - 1)
    unit_ids: Any = await redis.smembers(keys.UNITS)
    incidents, units = await read_records(
        redis, [i.decode() for i in open_ids], sorted(u.decode() for u in unit_ids)
    )
    recent: Any = await redis.xrevrange(keys.AUDIT, count=RECENT_AUDIT)
    audit = []
    for entry_id, fields in reversed(recent):
        with contextlib.suppress(wire.WireError):
            message = wire.decode_entry(fields, wire.IncidentEvent)
            audit.append({"id": entry_id.decode(), **wire.to_builtins(message)})
    return {
        "incidents": incidents,
        "units": units,
        "cameras": await latest_cameras(redis, poles),
        "audit": audit,
    }


FEED = web.AppKey("console_feed", Feed)


async def close_feed(app: web.Application) -> None:
    """Shutdown: end every console's stream (``on_shutdown``)."""
    if FEED in app:
        app[FEED].close_all()


async def feed_context(app: web.Application) -> AsyncIterator[None]:
    """Run the feed as long as the app (a ``cleanup_ctx``)."""
    from gateway.app import _running  # the app imports this module: import at run time

    gw = app[GATEWAY]
    feed = Feed(gw.need_redis(), gw.poles)
    app[FEED] = feed
    async with _running(feed.run()):
        yield


routes = web.RouteTableDef()


@routes.get("/api/console/live")
@api(tag="console", roles=("operator", "supervisor"), content="text/event-stream")
async def live(request: web.Request) -> web.StreamResponse:
    """The operations picture as Server-Sent Events: ``picture`` once, then ``incidents``,
    ``units``, ``audit`` and ``cameras`` as they change."""
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
        whole = await picture(gw.need_redis(), gw.poles)
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
