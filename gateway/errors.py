"""Errors as JSON: every failure the gateway answers is ``{"error": message}`` with a 4xx/5xx."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from aiohttp import ClientConnectionResetError, web

from polewatch import details
from polewatch.connection import RETRY_ERRORS

log = logging.getLogger(__name__)

REDIS_DOWN = tuple(RETRY_ERRORS)
"""Errors that mean Redis is down or restarting (after the client's own retries): 503."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


CLIENT_GONE: Final = 499
"""Status recorded (never sent: nobody is listening) when the client hung up mid-answer."""
RETRY_AFTER_S: Final = 1
"""What a 503 tells the client to wait, unless its raiser knows better."""


class HttpError(Exception):
    """An answer other than success: a status, a message, optional headers and extra fields
    of the JSON body."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    """A JSON answer encoded with msgspec (structs, dicts and lists alike)."""
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json", **kwargs
    )


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """``{"error": message, **extra}`` with ``status``; a 503 always says when to retry
    (``Retry-After``), as the document promises. A message of one of the dispatcher's forms
    (:mod:`polewatch.details`) also carries its ``error_key`` and ``error_args``."""
    found = details.parse(message)
    if found is not None:
        extra = {"error_key": found.key, "error_args": found.args, **extra}
    if status == 503 and "Retry-After" not in (headers or {}):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_S)}
    return json_response({"error": message, **extra}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; an unexpected one is logged and answered 500."""
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(exc.status, exc.message, exc.headers, **exc.extra)
    except ClientConnectionResetError as exc:  # before REDIS_DOWN: it is a ConnectionResetError
        # the client went away mid-answer (a stream, a socket): a normal end, not an outage
        log.debug("client went away during %s %s: %s", request.method, request.path, exc)
        return error_response(CLIENT_GONE, "client closed the connection")
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"request body too large: {exc.text}")
    except REDIS_DOWN as exc:
        log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "the store is unavailable; retry")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, reason, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
