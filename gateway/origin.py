"""Other sites' pages may not change anything here from a visitor's browser (CSRF).

Every state-changing request (any method but GET, HEAD and OPTIONS) is checked by the
:func:`same_origin_only` middleware, the way browsers let a server tell:

* ``Sec-Fetch-Site`` (every current browser sends it): ``same-origin`` or ``none`` (typed or
  bookmarked by the user) passes; ``same-site`` and ``cross-site`` are refused unless the
  ``Origin`` is trusted.
* Without it, ``Origin`` (older browsers send it on every cross-origin POST) must be this
  gateway's own (its ``Host``, or the origin of the ``public_url`` setting); ``null``
  (sandboxed frames, ``file:`` pages) is refused.
* A request with neither header does not come from a browser page (edge agents, simulators,
  ``curl``): it passes; it carries no cookie of a visitor anyway.

There is no CORS: the gateway never sends ``Access-Control-Allow-*``, so a preflight
(``OPTIONS``) fails and other origins cannot read any answer. Logins hold no cookie: the console
keeps its token in ``sessionStorage`` and sends it as a bearer header, which another site's page
cannot set; the only cookie (the language) is ``SameSite=Lax``. Bodies must be
``application/json`` (:func:`gateway.openapi.read_body` answers 415 otherwise), which a plain
HTML form cannot send.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from gateway.errors import HttpError
from gateway.state import GATEWAY

log = logging.getLogger(__name__)

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SAME: Final = frozenset({"same-origin", "none"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` (lower case), or ``None`` when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def refusal(request: web.Request) -> str | None:
    """Why ``request`` looks like another site's page acting through a visitor's browser, or
    ``None`` when it does not."""
    if request.method in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    origin = request.headers.get("Origin")
    if site in SAME:
        return None
    if origin is None:
        return None if not site else f"cross-site request refused (Sec-Fetch-Site: {site})"
    given = origin_of(origin)
    if given is not None and given in trusted(request):
        return None
    return f"cross-origin request from {origin[:100]!r} refused"


def trusted(request: web.Request) -> set[str]:
    """The origins this gateway answers for: its ``Host`` as reached, and ``public_url``'s."""
    origins = {f"{request.scheme}://{request.host}".lower()}
    public = origin_of(request.app[GATEWAY].settings.public_url)
    if public is not None:
        origins.add(public)
    return origins


@web.middleware
async def same_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (403) state-changing requests from other sites' pages."""
    why = refusal(request)
    if why is not None:
        log.info("%s %s: %s", request.method, request.path, why)
        raise HttpError(403, why)
    return await handler(request)
