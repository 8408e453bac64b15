"""The patrol units' door: a WebSocket that pushes the unit's inbox (resumable from the last
stream id) and takes the unit's answers, plus the same answers as plain REST calls.

Every answer becomes a :class:`wire.PatrolStatus`, :class:`wire.PatrolPosition` or
:class:`wire.PatrolDuty` on ``keys.PATROL_EVENTS``; a unit's token can only speak for that
unit. The protocol is documented in :mod:`gateway.frames`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any, Final

import redis.asyncio as aioredis
from aiohttp import ClientConnectionResetError, WSCloseCode, WSMsgType, web

from gateway import bodies, frames
from gateway.auth import Principal, authorize
from gateway.errors import REDIS_DOWN, HttpError, json_response
from gateway.openapi import Query, api, path_value, read_body
from gateway.state import GATEWAY, Gateway
from gateway.writer import Overloaded
from polewatch import keys, wire

log = logging.getLogger(__name__)

STREAM_ID: Final = re.compile(r"^(0|[0-9]{1,20}(-[0-9]{1,20})?)$")
READ_CHUNK: Final = 100
RECHECK_S: Final = 15.0
"""A connected unit's inbox is read again at least this often, even without a notification."""

routes = web.RouteTableDef()


def unit_event(unit: str, item: bodies.Position | bodies.Duty | frames.Action) -> wire.Message:
    """The patrol-event message for a unit's report."""
    now = time.time()
    if isinstance(item, bodies.Position):
        return wire.PatrolPosition(
            unit=unit, lon=item.lon, lat=item.lat, ts=now,
            speed_mps=item.speed_mps, heading=item.heading,
        )  # fmt: skip
    if isinstance(item, bodies.Duty):
        return wire.PatrolDuty(
            unit=unit, duty=item.duty, ts=now, grid=item.grid,
            capabilities=list(item.capabilities), lon=item.lon, lat=item.lat,
        )  # fmt: skip
    return wire.PatrolStatus(
        unit=unit, incident=item.incident, action=item.action, ts=now, detail=item.detail
    )


async def publish(gw: Gateway, message: wire.Message) -> str:
    """Append a unit's report to ``keys.PATROL_EVENTS``; the entry id."""
    try:
        return await gw.need_writer().add(keys.PATROL_EVENTS, wire.entry(message))
    except Overloaded as exc:
        raise HttpError(503, f"not accepted: {exc}; retry") from None
    except HttpError:
        raise
    except Exception as exc:
        raise HttpError(503, f"event store unavailable ({type(exc).__name__}); retry") from None


def _unit(request: web.Request) -> tuple[Gateway, Principal]:
    gw = request.app[GATEWAY]
    return gw, authorize(request, gw.settings.secret, "unit")


@routes.post("/api/patrol/position")
@api(tag="patrol", roles=("unit",), body=bodies.Position, ok=202)
async def post_position(request: web.Request) -> web.Response:
    """Report the unit's position."""
    return await _report(request)


@routes.post("/api/patrol/duty")
@api(tag="patrol", roles=("unit",), body=bodies.Duty, ok=202)
async def post_duty(request: web.Request) -> web.Response:
    """Go on duty (with grid, capabilities, position) or off duty."""
    return await _report(request)


async def _report(request: web.Request) -> web.Response:
    gw, who = _unit(request)
    body: bodies.Position | bodies.Duty = await read_body(request)
    entry = await publish(gw, unit_event(who.subject, body))
    return json_response({"entry": entry}, status=202)


@routes.post("/api/patrol/incidents/{incident}/status")
@api(tag="patrol", roles=("unit",), body=bodies.StatusUpdate, ok=202,
     path={"incident": wire.Ident})  # fmt: skip
async def post_status(request: web.Request) -> web.Response:
    """Answer a dispatch (acknowledged, declined) or report progress on it."""
    gw, who = _unit(request)
    incident = path_value(request, "incident")
    body: bodies.StatusUpdate = await read_body(request)
    action = frames.Action(incident=incident, action=body.action, detail=body.detail)
    entry = await publish(gw, unit_event(who.subject, action))
    return json_response({"entry": entry}, status=202)


@routes.get("/api/patrol/ws")
@api(
    tag="patrol",
    roles=("unit",),
    ok=101,
    query=(Query("last", "Resume: send the inbox entries after this stream id"),),
    answers={400: "Malformed 'last' or not a WebSocket upgrade"},
)
async def patrol_socket(request: web.Request) -> web.StreamResponse:
    """The unit's live channel: inbox entries out, answers and reports in."""
    gw, who = _unit(request)
    last = request.query.get("last") or None
    if last is not None and not STREAM_ID.match(last):
        raise HttpError(400, "'last' must be a stream id such as 1700000000000-0")
    redis, notifier = gw.need_redis(), gw.need_notifier()
    ws = web.WebSocketResponse(
        heartbeat=gw.settings.ws_heartbeat_s, max_msg_size=gw.settings.max_ws_message_bytes
    )
    await ws.prepare(request)
    gw.streams.add(ws)
    gw.metrics.ws_clients.inc()
    unit = who.subject
    inbox = keys.unit_inbox(unit)
    try:
        with notifier.watch(keys.UNIT_NOTIFY, unit) as landed:
            if last is None:
                last = await _backlog_start(redis, inbox, gw.settings.ws_backlog)
            await ws.send_str(frames.encode_hello(unit, last))
            pusher = asyncio.create_task(_push(gw, ws, redis, inbox, last, landed))
            try:
                await _receive(gw, ws, unit)
            finally:
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientConnectionResetError):
                    await pusher
    except ClientConnectionResetError as exc:
        # aiohttp's own error (Redis' are others): the unit hung up while we were writing to
        # it, which is how a phone going out of coverage ends its socket
        log.debug("unit %s went away: %s", unit, exc)
    finally:
        gw.metrics.ws_clients.dec()
        await ws.close()
    return ws


async def _backlog_start(redis: aioredis.Redis, inbox: str, backlog: int) -> str:
    """The id just before the last ``backlog`` entries (``0`` when there are fewer)."""
    entries: Any = await redis.xrevrange(inbox, count=backlog + 1)
    if len(entries) <= backlog:
        return "0"
    return str(entries[-1][0].decode())


async def _push(
    gw: Gateway,
    ws: web.WebSocketResponse,
    redis: aioredis.Redis,
    inbox: str,
    last: str,
    landed: asyncio.Event,
) -> None:
    """Send every inbox entry after ``last``, then each new one as it lands."""
    delay = 0.1
    while not ws.closed:
        landed.clear()  # before the read: a publish during it wakes us again
        while True:
            try:
                reply: Any = await redis.xread({inbox: last}, count=READ_CHUNK)
            except REDIS_DOWN as exc:  # keep the socket; read on from ``last`` once it is back
                log.warning("inbox %s unreadable (%s); retrying in %.1f s", inbox, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            entries: list[Any] = reply[0][1] if reply else []
            for entry_id, fields in entries:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                await ws.send_str(frames.encode_inbox(last, fields))
                gw.metrics.pushed.inc()
            if len(entries) < READ_CHUNK:
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(landed.wait(), RECHECK_S)


async def _receive(gw: Gateway, ws: web.WebSocketResponse, unit: str) -> None:
    """Turn the unit's frames into patrol events, answering each with ok or error."""
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        try:
            frame = frames.decode(msg.data)
        except frames.FrameError as exc:
            await ws.send_str(frames.encode_error(str(exc), None))
            continue
        try:
            entry = await publish(gw, unit_event(unit, frame.item()))
        except HttpError as exc:
            await ws.send_str(frames.encode_error(exc.message, frame.ref))
            continue
        await ws.send_str(frames.encode_ok(frame.ref, entry))
        if gw.closing.is_set():
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")
