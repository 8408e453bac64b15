"""The citizen's door: raise an alarm at a pole, follow its status (JSON or Server-Sent
Events), and the pole's help page that the QR code on the marker opens."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
from importlib import resources
from typing import Any, Final

import msgspec
from aiohttp import web

from gateway import bodies
from gateway.alarms import find_pole, home_zone, issued_here, pole_view, raise_alarm
from gateway.console.language import remember, request_language
from gateway.errors import REDIS_DOWN, HttpError, json_response
from gateway.notify import ANY
from gateway.openapi import Answer, api, path_value, read_body
from gateway.state import GATEWAY, Gateway
from gateway.status import AlarmStatus, alarm_status
from polewatch import districts, i18n, keys, wire

KEEPALIVE_S: Final = 15.0
COALESCE_S: Final = 0.2
"""A stream still waiting for its incident is woken by every incident change in the city; it
looks again at most this often."""

RATE_LIMITED: Final = "Too many requests from this caller or at this pole (Retry-After says when)"
"""The answer of :mod:`gateway.ratelimit` on the citizen door."""

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@routes.post("/api/alarms")
@api(
    tag="citizen",
    body=bodies.CitizenAlarm,
    ok=202,
    answers={404: "Unknown pole code; the body lists ranked candidates", 429: RATE_LIMITED},
)
async def post_alarm(request: web.Request) -> web.Response:
    """Raise a citizen alarm at a pole; 202 once it is in the alarm stream."""
    gw = request.app[GATEWAY]
    body: bodies.CitizenAlarm = await read_body(request)
    near = body.near
    try:
        pole = find_pole(gw.need_poles(), body.pole, near)
    except HttpError as exc:
        if exc.status == 404:
            gw.metrics.unknown_poles.inc()
        raise
    answer = await raise_alarm(
        gw,
        pole=pole,
        type=body.type,
        source="gateway:citizen",
        channel="citizen",
        text=body.text,
        phone=body.phone,
        caller=near,
    )
    return json_response(answer, status=202, headers={"Location": answer["status_url"]})


def _alarm_id(request: web.Request) -> str:
    return path_value(request, "alarm", "malformed alarm id")


async def _status(gw: Gateway, alarm_id: str) -> AlarmStatus:
    home = home_zone(gw.settings.secret, gw.zones, alarm_id)
    return await alarm_status(
        gw.need_redis(), alarm_id, gw.settings.patrol_speed_mps, gw.zones, home, gw.settings.city
    )


async def _status_or_404(gw: Gateway, alarm_id: str) -> AlarmStatus:
    status = await _status(gw, alarm_id)
    if status.incident is None and not issued_here(gw.settings.secret, alarm_id):
        raise HttpError(404, f"no alarm {alarm_id!r}")
    return status


@routes.get("/api/alarms/{alarm}")
@api(
    tag="citizen",
    path={"alarm": wire.Ident},
    response=AlarmStatus,
    answers={404: "No such alarm", 422: "Malformed id", 429: RATE_LIMITED},
)
async def get_alarm(request: web.Request) -> web.Response:
    """Where an alarm stands: received, dispatched (unit, distance, ETA), on scene, resolved."""
    gw = request.app[GATEWAY]
    return json_response(await _status_or_404(gw, _alarm_id(request)))


@routes.get("/api/alarms/{alarm}/events")
@api(
    tag="citizen",
    path={"alarm": wire.Ident},
    content="text/event-stream",
    answers={404: "No such alarm", 422: "Malformed id", 429: RATE_LIMITED},
)
async def alarm_events(request: web.Request) -> web.StreamResponse:
    """The alarm's status as Server-Sent Events (``event: status``), one per change, ending
    after a final one (resolved, cancelled)."""
    gw = request.app[GATEWAY]
    alarm_id = _alarm_id(request)
    status = await _status_or_404(gw, alarm_id)
    notifier = gw.need_notifier()
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    gw.streams.add(response)
    gw.metrics.sse_clients.inc()
    sent: bytes | None = None
    key = status.incident or ANY
    try:
        await response.write(b"retry: 3000\n\n")
        while not gw.closing.is_set():
            with notifier.watch(keys.INCIDENT_NOTIFY, key) as changed:
                while not gw.closing.is_set():
                    changed.clear()
                    status = await _status(gw, alarm_id)
                    data = msgspec.json.encode(status)
                    if data != sent:
                        await response.write(b"event: status\ndata: " + data + b"\n\n")
                        sent = data
                    if status.final:
                        return response
                    if (status.incident or ANY) != key:
                        key = status.incident or ANY
                        break  # watch the incident now known, then look again
                    try:
                        await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        await response.write(b": keep-alive\n\n")
                    if key == ANY:
                        await asyncio.sleep(COALESCE_S)
    except ConnectionResetError:
        pass  # the phone went away
    except REDIS_DOWN as exc:
        # the stream has started, so no error answer is possible: end it; EventSource
        # reconnects after the announced retry delay and gets a 503 or the status
        log.warning("alarm %s event stream ended, Redis unavailable: %s", alarm_id, exc)
    finally:
        gw.metrics.sse_clients.dec()
    return response


PAGE: Final = resources.files("gateway").joinpath("static/help.html").read_text("utf-8")


def _page(body: str, nonce: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def _json_for_script(data: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = msgspec.json.encode(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@routes.get("/p/{code}")
@api(
    tag="citizen",
    path={"code": bodies.PoleCode},
    content="text/html",
    answers={
        404: Answer("Unknown or malformed pole code: a page with candidates", "text/html"),
        429: RATE_LIMITED,
    },
)
async def help_page(request: web.Request) -> web.Response:
    """The page a pole's QR code opens: the place, a big Help button, the live status."""
    gw = request.app[GATEWAY]
    code = request.match_info["code"]
    nonce = secrets.token_urlsafe(16)
    language = request_language(request)
    try:
        pole = find_pole(gw.need_poles(), code)
    except HttpError as exc:
        if exc.status == 503:
            raise
        candidates = [
            {**c, "district": districts.display(c.get("district"), language) or None}
            for c in exc.extra.get("candidates", [])
        ]
        config: dict[str, Any] = {"pole": None, "query": code, "candidates": candidates}
        title = i18n.translate("citizen.title_missing", language, code=code)
        response = _page(_render(title, config, nonce, language), nonce, status=404)
    else:
        comma = i18n.translate("common.comma", language)
        district = districts.display(pole.district, language)
        place = comma.join(x for x in (pole.road, district) if x)
        config = {"pole": pole_view(pole), "place": place, "api": "/api/alarms"}
        title = i18n.translate("citizen.title", language, code=pole.code)
        response = _page(_render(title, config, nonce, language), nonce)
    remember(request, response, language)
    return response


MESSAGE: Final = re.compile(r"\{\{t:([a-z0-9_.]+)\}\}")
SCRIPT_MESSAGES: Final = ("citizen.", "common.", "time.")
"""The catalogue areas the page's script uses (sent in its config)."""


def _render(title: str, config: dict[str, Any], nonce: str, language: str) -> str:
    messages = i18n.messages(language)
    config = {**config, "messages": {k: v for k, v in messages.items()
                                     if k.startswith(SCRIPT_MESSAGES)}}  # fmt: skip
    page = MESSAGE.sub(lambda m: html.escape(i18n.translate(m.group(1), language)), PAGE)
    return (
        page.replace("{{title}}", html.escape(title))
        .replace("{{lang}}", language)
        .replace("{{switch}}", _switch(language))
        .replace("{{nonce}}", nonce)
        .replace("{{config}}", _json_for_script(config))
    )


def _switch(current: str) -> str:
    """Links to this page in every language (``?lang=`` sets the cookie)."""
    links = []
    for tag in i18n.LANGUAGES:
        name = html.escape(i18n.translate("lang.name", tag))
        mark = ' aria-current="true"' if tag == current else ""
        links.append(f'<a href="?lang={tag}" lang="{tag}" hreflang="{tag}"{mark}>{name}</a>')
    return "".join(links)
