"""The patrol units' door: a WebSocket that pushes the unit's inbox (resumable from the last
stream id) and takes the unit's answers, plus the same answers as plain REST calls.

Every answer becomes a :class:`wire.PatrolStatus`, :class:`wire.PatrolPosition` or
:class:`wire.PatrolDuty` on the patrol-event stream of the unit's zone; a unit's token can only
speak for that unit. The protocol is documented in :mod:`gateway.frames`.

With dispatch zones a unit's record and inbox live in the zone of its first report with a
position (:func:`polewatch.zones.unit_zone`); until then there is no inbox to read and nowhere
to send anything else, so other reports are refused with "report a position first".
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from aiohttp import ClientConnectionResetError, WSCloseCode, WSMsgType, web

from gateway import bodies, frames
from gateway.auth import Principal, authorize
from gateway.errors import REDIS_DOWN, HttpError, json_response
from gateway.inboxes import Inboxes, Subscriber
from gateway.openapi import Query, api, path_value, read_body
from gateway.state import GATEWAY, Gateway
from gateway.writer import Overloaded
from polewatch import keys, wire
from polewatch.zones import unit_zone

log = logging.getLogger(__name__)

STREAM_ID: Final = re.compile(r"^(0|[0-9]{1,20}(-[0-9]{1,20})?)$")
NO_ZONE: Final = "report a position first (a duty or position report with lon and lat)"

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


async def zone_of(
    gw: Gateway, unit: str, item: bodies.Position | bodies.Duty | frames.Action
) -> keys.Zone:
    """The zone of ``unit``'s record and inbox, given to it by this report if it has none
    yet; 409 when it has none and the report has no position."""
    lon = lat = None
    if isinstance(item, bodies.Position | bodies.Duty):
        lon, lat = item.lon, item.lat
    try:
        name = await unit_zone(gw.need_redis(), gw.zones, unit, lon, lat)
    except REDIS_DOWN as exc:
        raise HttpError(503, f"event store unavailable ({type(exc).__name__}); retry") from None
    if name is None:
        raise HttpError(409, f"unit {unit} has no dispatch zone yet: {NO_ZONE}")
    return keys.zone(name)


async def publish(gw: Gateway, message: wire.Message, zone: keys.Zone = keys.DEFAULT) -> str:
    """Append a unit's report to the patrol-event stream of ``zone``; the entry id."""
    positions = isinstance(message, wire.PatrolPosition)  # they may wait to share a write
    writer = gw.need_positions() if positions else gw.need_writer()
    try:
        return await writer.add(zone.patrol_events, wire.entry(message))
    except Overloaded as exc:
        raise HttpError(503, f"not accepted: {exc}; retry") from None
    except HttpError:
        raise
    except Exception as exc:
        raise HttpError(503, f"event store unavailable ({type(exc).__name__}); retry") from None


def _unit(request: web.Request) -> tuple[Gateway, Principal]:
    gw = request.app[GATEWAY]
    return gw, authorize(request, gw.settings.secret, "unit")


NO_ZONE_ANSWER: Final = {409: "Zoned deployments: the unit has no zone yet; report a position"}


@routes.post("/api/patrol/position")
@api(tag="patrol", roles=("unit",), body=bodies.Position, ok=202)
async def post_position(request: web.Request) -> web.Response:
    """Report the unit's position."""
    return await _report(request)


@routes.post("/api/patrol/duty")
@api(tag="patrol", roles=("unit",), body=bodies.Duty, ok=202, answers=NO_ZONE_ANSWER)
async def post_duty(request: web.Request) -> web.Response:
    """Go on duty (with grid, capabilities, position) or off duty."""
    return await _report(request)


async def _report(request: web.Request) -> web.Response:
    gw, who = _unit(request)
    body: bodies.Position | bodies.Duty = await read_body(request)
    zone = await zone_of(gw, who.subject, body)
    entry = await publish(gw, unit_event(who.subject, body), zone)
    return json_response({"entry": entry}, status=202)


@routes.post("/api/patrol/incidents/{incident}/status")
@api(tag="patrol", roles=("unit",), body=bodies.StatusUpdate, ok=202,
     path={"incident": wire.Ident}, answers=NO_ZONE_ANSWER)  # fmt: skip
async def post_status(request: web.Request) -> web.Response:
    """Answer a dispatch (acknowledged, declined) or report progress on it."""
    gw, who = _unit(request)
    incident = path_value(request, "incident")
    body: bodies.StatusUpdate = await read_body(request)
    action = frames.Action(incident=incident, action=body.action, detail=body.detail)
    zone = await zone_of(gw, who.subject, action)
    entry = await publish(gw, unit_event(who.subject, action), zone)
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
    redis, inboxes = gw.need_redis(), gw.need_inboxes()
    unit = Connected(who.subject, last or "0")
    known = await unit_zone(redis, gw.zones, unit.id)
    unit.zone = None if known is None else keys.zone(known)
    ws = web.WebSocketResponse(
        heartbeat=gw.settings.ws_heartbeat_s, max_msg_size=gw.settings.max_ws_message_bytes
    )
    await ws.prepare(request)
    gw.streams.add(ws)
    gw.metrics.ws_clients.inc()
    try:
        if last is None and unit.zone is not None:
            inbox = unit.zone.unit_inbox(unit.id)
            unit.last = await _backlog_start(redis, inbox, gw.settings.ws_backlog)
        await ws.send_str(frames.encode_hello(unit.id, unit.last))
        # from here on the process' one inbox reader pushes (gateway.inboxes)
        sub = Subscriber(unit.id, unit.last, ws, on_sent=gw.metrics.pushed.inc)
        with inboxes.attach(sub, unit.zone):
            if gw.refusals is not None:  # those it may have missed while away
                for frame in gw.refusals.recent(unit.id):
                    sub.queue(frame)
            await _receive(gw, ws, unit, inboxes)
    except ClientConnectionResetError as exc:
        # aiohttp's own error (Redis' are others): the unit hung up while we were writing to
        # it, which is how a phone going out of coverage ends its socket
        log.debug("unit %s went away: %s", unit.id, exc)
    finally:
        gw.metrics.ws_clients.dec()
        await ws.close()
    return ws


@dataclass
class Connected:
    """A unit on its socket: the id its push starts after, and the zone of its inbox once it
    is known (a unit new to a zoned deployment has none before its first position)."""

    id: str
    last: str
    zone: keys.Zone | None = None


async def _backlog_start(redis: aioredis.Redis, inbox: str, backlog: int) -> str:
    """The id just before the last ``backlog`` entries (``0`` when there are fewer)."""
    entries: Any = await redis.xrevrange(inbox, count=backlog + 1)
    if len(entries) <= backlog:
        return "0"
    return str(entries[-1][0].decode())


async def _receive(
    gw: Gateway, ws: web.WebSocketResponse, unit: Connected, inboxes: Inboxes
) -> None:
    """Turn the unit's frames into patrol events, answering each with ok or error."""
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        try:
            frame = frames.decode(msg.data)
        except frames.FrameError as exc:
            await ws.send_str(frames.encode_error(str(exc), None))
            continue
        item = frame.item()
        try:
            zone = unit.zone
            if zone is None:
                zone = await zone_of(gw, unit.id, item)
                unit.zone = zone
                inboxes.located(unit.id, zone)  # its inbox can be read now
            entry = await publish(gw, unit_event(unit.id, item), zone)
        except HttpError as exc:
            await ws.send_str(frames.encode_error(exc.message, frame.ref))
            continue
        await ws.send_str(frames.encode_ok(frame.ref, entry))
        if gw.closing.is_set():
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")
