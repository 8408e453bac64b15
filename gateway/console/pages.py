"""The pages: the command centre (``/console/``), the patrol app (``/patrol/``, an installable
PWA) and their static files, all with a Content-Security-Policy that allows no inline script
and nothing from another origin (except the map tiles a deployment configures)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
import re
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from gateway.errors import HttpError
from gateway.openapi import api
from gateway.state import GATEWAY

STATIC: Final = resources.files("gateway.console").joinpath("static")
NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\.(js|css|svg|png|html|webmanifest)$")
VENDOR: Final = re.compile(r"^maplibre-gl(-worker)?\.(mjs|css)$")
"""The vendored map library (``static/vendor/VENDOR.md``): the files a page or its worker loads."""
TYPES: Final = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}

routes = web.RouteTableDef()


def csp(tile_url: str = "") -> str:
    """The pages' policy: scripts and styles from this origin only, never inline."""
    tiles = ""
    if tile_url:
        parts = urlsplit(tile_url.replace("{", "").replace("}", ""))
        tiles = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; connect-src 'self'{tiles}; worker-src 'self'; "
        "manifest-src 'self'; font-src 'self'; media-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'; frame-src 'self'"
    )


@functools.lru_cache(maxsize=16)
def _packed(body: bytes) -> tuple[str, bytes]:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"', gzip.compress(body, 6)


def revalidated(request: web.Request, body: bytes, kind: str, cache: str) -> web.Response:
    """``body`` with an ETag (304 when the browser has it) and gzip when the browser takes it:
    for large, rarely changing answers (the map library, the road network)."""
    etag, packed = _packed(body)
    headers = {"Cache-Control": cache, "ETag": etag, "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = packed
    return web.Response(body=body, content_type=kind, headers=headers)


def _file(name: str) -> bytes:
    if not NAME.match(name):
        raise HttpError(404, "no such file")
    item = STATIC.joinpath(name)
    if not item.is_file():
        raise HttpError(404, f"no static file {name!r}")
    return item.read_bytes()


def _serve(request: web.Request, name: str, *, cache: str = "no-cache") -> web.Response:
    body = _file(name)
    suffix = "." + name.rsplit(".", 1)[-1]
    kind = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if suffix == ".html":
        gw = request.app[GATEWAY]
        headers["Content-Security-Policy"] = csp(gw.settings.console.tile_url)
        headers["X-Frame-Options"] = "DENY"
    return web.Response(body=body, content_type=kind, headers=headers)


@routes.get("/console/")
@api(tag="console", content="text/html", store=False)
async def console_page(request: web.Request) -> web.Response:
    """The command centre (login, operations map, queue, units, cameras, calls, analytics)."""
    return _serve(request, "console.html")


@routes.get("/console")
@api(tag="console", content="text/plain", ok=308, store=False,
     headers={"Location": "Where the command centre is: /console/"})  # fmt: skip
async def console_redirect(request: web.Request) -> web.Response:
    """Redirect to ``/console/``."""
    raise web.HTTPPermanentRedirect("/console/")


@routes.get("/console/static/{name}")
@api(tag="console", content="application/octet-stream", answers={404: "No such file"},
     store=False)  # fmt: skip
async def static_file(request: web.Request) -> web.Response:
    """The pages' scripts, styles and icons."""
    return _serve(request, request.match_info["name"])


@routes.get("/console/static/vendor/{name}")
@api(tag="console", content="text/javascript", answers={404: "No such file"}, store=False)
async def vendor_file(request: web.Request) -> web.Response:
    """The vendored map library (MapLibre GL JS, BSD-3-Clause): module, worker and styles."""
    return _vendor(request, request.match_info["name"])


@routes.get("/patrol/maplibre-gl-worker.mjs")
@api(tag="patrol", content="text/javascript", store=False)
async def patrol_map_worker(request: web.Request) -> web.Response:
    """The map library's worker inside the patrol app's scope: a worker is under the service
    worker whose scope holds its own address, so from here the app's service worker serves it
    offline and sees (and keeps) the road document it loads."""
    return _vendor(request, "maplibre-gl-worker.mjs")


def _vendor(request: web.Request, name: str) -> web.Response:
    if not VENDOR.match(name):
        raise HttpError(404, "no such file")
    body = STATIC.joinpath("vendor", name).read_bytes()
    kind = TYPES["." + name.rsplit(".", 1)[-1]]
    return revalidated(request, body, kind, "no-cache")


@routes.get("/patrol/")
@api(tag="patrol", content="text/html", store=False)
async def patrol_page(request: web.Request) -> web.Response:
    """The patrol app for a unit's phone (installable)."""
    return _serve(request, "patrol.html")


@routes.get("/patrol/manifest.webmanifest")
@api(tag="patrol", content="application/manifest+json", store=False)
async def patrol_manifest(request: web.Request) -> web.Response:
    """The patrol app's web app manifest."""
    return _serve(request, "manifest.webmanifest")


@routes.get("/patrol/sw.js")
@api(tag="patrol", content="text/javascript", store=False)
async def patrol_worker(request: web.Request) -> web.Response:
    """The patrol app's service worker (caches the app shell; scope ``/patrol/``)."""
    response = _serve(request, "sw.js")
    response.headers["Service-Worker-Allowed"] = "/patrol/"
    return response
