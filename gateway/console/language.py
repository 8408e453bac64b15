"""The pages' language: ``/i18n/catalogue.json`` answers the message catalogue of the
language a person chose (``?lang=``, else the ``pw_lang`` cookie, else ``Accept-Language``,
else the city's ``language`` setting), with English filling any gap, and the city's time zone
so pages show local times. ``gateway/console/static/i18n.js`` is its browser side."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Final

from aiohttp import web

from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY, Gateway
from polewatch import i18n
from polewatch.poles.gridnames import city_grid_names, grid_label

COOKIE_MAX_AGE_S: Final = 365 * 24 * 3600
MAX_GRIDS: Final = 200
GRID_ID: Final = re.compile(r"[A-Za-z0-9_.:@#/-]{1,32}")

routes = web.RouteTableDef()


def request_language(request: web.Request) -> str:
    """The language of a request: ``?lang=``, the cookie, ``Accept-Language``, the setting."""
    explicit = request.query.get("lang") or request.cookies.get(i18n.COOKIE)
    default = request.app[GATEWAY].settings.language
    return i18n.choose(explicit, request.headers.get("Accept-Language"), default)


def local_offset(gw: Gateway) -> int:
    """The command centre's local time now, minutes east of UTC: ``[gateway.console]
    utc_offset_min`` when set, else the ``timezone`` setting's offset."""
    fixed = gw.settings.console.utc_offset_min
    return fixed if fixed is not None else gw.settings.utc_offset_at(time.time())


def remember(request: web.Request, response: web.StreamResponse, language: str) -> None:
    """Keep an explicit ``?lang=`` choice in the cookie (the switch on every page sets it)."""
    if i18n.normalise(request.query.get("lang")) == language:
        response.set_cookie(
            i18n.COOKIE, language, max_age=COOKIE_MAX_AGE_S, path="/", samesite="Lax"
        )
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Content-Language"] = language


@routes.get("/i18n/catalogue.json")
@api(
    tag="console",
    store=False,
    query=(Query("lang", "A language tag (zh-CN, en); default: cookie, Accept-Language"),),
)
async def catalogue(request: web.Request) -> web.Response:
    """The pages' messages in the chosen language, the languages offered, the time zone."""
    gw = request.app[GATEWAY]
    language = request_language(request)
    body = {
        "lang": language,
        "languages": {tag: i18n.translate("lang.name", tag) for tag in i18n.LANGUAGES},
        "timezone": gw.settings.timezone,
        "messages": i18n.messages(language),
    }
    response = json_response(body, headers={"Cache-Control": "no-cache"})
    remember(request, response, language)
    return response


@routes.get("/i18n/grids")
@api(
    tag="console",
    store=False,
    query=(
        Query("ids", f"Grid ids, comma-separated (at most {MAX_GRIDS})", required=True),
        Query("lang", "A language tag (zh-CN, en); default: cookie, Accept-Language"),
    ),
    answers={422: "Malformed or too many grid ids"},
)
async def grid_names(request: web.Request) -> web.Response:
    """Responsibility grids by their human names (福田·片区07·23): id -> name."""
    ids = [i for i in request.query.get("ids", "").split(",") if i]
    if not ids or len(ids) > MAX_GRIDS or not all(GRID_ID.fullmatch(i) for i in ids):
        raise HttpError(422, f"ids: 1 to {MAX_GRIDS} grid ids, comma-separated")
    language = request_language(request)
    await asyncio.to_thread(city_grid_names)  # built once, off the event loop
    names = {grid: grid_label(grid, language) for grid in ids}
    headers = {"Cache-Control": "max-age=3600", "Vary": "Accept-Language, Cookie"}
    return json_response(names, headers=headers)
