"""Prometheus metrics of one gateway app (its own registry, so tests can build many apps).

A group of processes (``polewatch gateway --processes N``) answers with the figures of all of
them, whichever process takes the scrape: the supervisor gives its children a shared folder
(``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's multiprocess mode), each child writes its
counters there and :meth:`Metrics.handle` sums them (gauges of open sockets: the sum over the
live processes).

``/metrics`` is not for anyone: with the setting ``metrics_token`` it wants that bearer token
(Prometheus' ``authorization``); without one it answers clients on the loopback interface
only, and never a request a proxy forwarded.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.errors import Handler, HttpError
from polewatch.operations import StateCollector

FORWARDED: Final = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
"""Headers a reverse proxy adds: such a request came from elsewhere, whatever its peer."""
METRICS_ANSWERS: Final[dict[int, str]] = {
    401: "Without the bearer token of the setting 'metrics_token'",
    403: "No 'metrics_token' is set and the client is not on the loopback interface",
}
NEED_TOKEN: Final = "/metrics wants the bearer token of the setting 'metrics_token'"
LOOPBACK_ONLY: Final = (
    "/metrics answers loopback clients only; set 'metrics_token' to let Prometheus scrape "
    "from elsewhere"
)


class Metrics:
    """The gateway's counters, gauges and histograms."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        """The bearer token ``/metrics`` wants (empty: loopback clients only)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "polewatch_gateway_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "polewatch_gateway_request_seconds",
            "Time to answer a request (streams: until the stream opens)",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.alarms = Counter(
            "polewatch_gateway_alarms_accepted",
            "Alarms written to the alarm stream, by channel",
            ["channel"],
            registry=r,
        )
        self.alarms_by = {c: self.alarms.labels(c) for c in ("citizen", "operator")}
        """The per-channel series, looked up once (``labels()`` costs microseconds)."""
        self.unknown_poles = Counter(
            "polewatch_gateway_unknown_pole_codes",
            "Alarm requests with an unknown pole code",
            registry=r,
        )
        self.ws_clients = Gauge(
            "polewatch_gateway_websocket_clients",
            "Patrol WebSockets open",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.sse_clients = Gauge(
            "polewatch_gateway_sse_clients",
            "Alarm status event streams open",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pushed = Counter(
            "polewatch_gateway_inbox_pushed", "Inbox entries pushed over WebSockets", registry=r
        )
        self.batch = Histogram(
            "polewatch_gateway_write_batch_size",
            "Stream entries written per pipelined round trip",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.pole_index_loads = Counter(
            "polewatch_gateway_pole_index_loads", "Pole index (re)loads", registry=r
        )
        self.state = StateCollector()
        """The deployment's operational state (:mod:`polewatch.operations`), read per scrape."""
        self.answer = r
        """What a scrape shows: this registry, or every process' files of a group's folder."""
        if values.ValueClass is not values.MutexValue:  # the metrics live in a group's files
            self.answer = CollectorRegistry()
            MultiProcessCollector(self.answer)  # type: ignore[no-untyped-call]
            self.answer.register(self.state)
        else:
            r.register(self.state)

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            route = _route(request)
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                key = (route, request.method, status)
                child = children.get(key)
                if child is None:  # labels() costs microseconds: look each series up once
                    child = children[key] = (
                        self.requests.labels(route, request.method, str(status)),
                        self.latency.labels(route),
                    )
                child[0].inc()
                child[1].observe(time.perf_counter() - started)

        return count

    def check_access(self, request: web.Request) -> None:
        """Refuse a scrape without the token (401) or, with no token set, from anywhere but
        the loopback interface (403)."""
        refused = refusal(request.remote, request.headers, self.token)
        if refused == NEED_TOKEN:
            raise HttpError(401, refused, headers={"WWW-Authenticate": "Bearer"})
        if refused:
            raise HttpError(403, refused)

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the Prometheus text exposition."""
        return web.Response(
            body=generate_latest(self.answer), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def refusal(remote: str | None, headers: Mapping[str, str], token: str) -> str | None:
    """Why a scrape from ``remote`` with ``headers`` is refused (None: it is not)."""
    if token:
        scheme, _, given = headers.get("Authorization", "").partition(" ")
        good = scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
        return None if good else NEED_TOKEN
    if any(name in headers for name in FORWARDED):
        return LOOPBACK_ONLY
    try:
        loopback = remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:  # a Unix socket's peer, or none
        loopback = False
    return None if loopback else LOOPBACK_ONLY


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
