"""Prometheus metrics of one gateway app (its own registry, so tests can build many apps)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway.errors import Handler
from polewatch.operations import StateCollector


class Metrics:
    """The gateway's counters, gauges and histograms."""

    def __init__(self) -> None:
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
            "polewatch_gateway_websocket_clients", "Patrol WebSockets open", registry=r
        )
        self.sse_clients = Gauge(
            "polewatch_gateway_sse_clients", "Alarm status event streams open", registry=r
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

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the Prometheus text exposition."""
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
