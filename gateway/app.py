"""The gateway application: ``create_app(settings)`` wires the doors, the shared resources
(Redis client, batched stream writer, pub/sub listener, pole index) and their lifetimes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import msgspec
from aiohttp import WSCloseCode, web

from gateway import citizen, history, incidents, patrol, ratelimit, routes
from gateway.archive import archive_pool
from gateway.console.site import install as install_console
from gateway.errors import error_middleware
from gateway.heap import keep_young_small
from gateway.inboxes import Inboxes
from gateway.metrics import METRICS_ANSWERS, Metrics
from gateway.notify import Notifier
from gateway.openapi import api, document
from gateway.origin import same_origin_only
from gateway.refusals import Refusals
from gateway.settings import GatewaySettings, check
from gateway.state import GATEWAY, Gateway
from gateway.tasks import running
from gateway.writer import StreamWriter
from polewatch import keys
from polewatch.connection import connect, wait_ready
from polewatch.poles.registry import PoleRegistry

log = logging.getLogger(__name__)

TITLE = "polewatch gateway"
VERSION = "1"
OPENAPI = web.AppKey("openapi", bytes)

Context = Callable[[web.Application], AsyncIterator[None]]


def create_app(settings: GatewaySettings) -> web.Application:
    """The gateway as an aiohttp application (not yet started)."""
    check(settings)
    metrics = Metrics(token=settings.metrics_token)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[metrics.middleware(), error_middleware, same_origin_only],
        handler_args={"max_field_size": 8190},
    )
    ratelimit.install(app)  # citizen-door limits, from the [ratelimit] settings
    gw = Gateway(settings=settings, metrics=metrics, zones=settings.zone_map())
    app[GATEWAY] = gw
    app.add_routes(citizen.routes)
    app.add_routes(patrol.routes)
    app.add_routes(incidents.routes)
    app.add_routes(history.routes)
    app.add_routes(routes.routes)
    app.router.add_get("/api/openapi.json", openapi_json, allow_head=False)
    app.router.add_get("/metrics", metrics_text, allow_head=False)
    app.cleanup_ctx.extend([_redis, _notifier, _writer, _poles, _heap, archive_pool])
    app.on_shutdown.append(_close_streams)
    install_console(app)
    app[OPENAPI] = msgspec.json.encode(document(app, title=TITLE, version=VERSION))
    return app


@api(tag="system", store=False)
async def openapi_json(request: web.Request) -> web.Response:
    """This document: the gateway's HTTP API as OpenAPI 3.1."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


@api(tag="system", content="text/plain", store=False, answers=METRICS_ANSWERS)
async def metrics_text(request: web.Request) -> web.Response:
    """Prometheus metrics: requests, alarms accepted, WebSocket clients, write batch sizes;
    every process of a group summed. Needs the ``metrics_token`` bearer token; without that
    setting, loopback clients only."""
    gw = request.app[GATEWAY]
    gw.metrics.check_access(request)
    if gw.redis is not None:  # the deployment's state too (polewatch.operations)
        await gw.metrics.state.refresh(gw.redis, gw.zones.all_keys())
    return await gw.metrics.handle(request)


async def _redis(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    gw.redis = connect(
        gw.settings.redis_url,
        name="polewatch-gateway",
        retries=gw.settings.redis_retries,
        cluster=gw.settings.redis_cluster,
    )
    await wait_ready(gw.redis)
    yield
    await gw.redis.aclose()


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    assert gw.redis is not None
    # the console's live feed (gateway.console.live) listens to each zone's unit changes
    unit_changes = tuple(zone.unit_changes for zone in gw.zones.all_keys())
    gw.notifier = Notifier(gw.redis, (keys.UNIT_NOTIFY, keys.INCIDENT_NOTIFY, *unit_changes))
    # one reader pushes every connected unit's inbox, woken by the unit ids announced
    gw.inboxes = Inboxes(
        gw.redis, gw.zones, cluster=gw.settings.redis_cluster,
        recheck_s=gw.settings.inbox_recheck_s,
    )  # fmt: skip
    gw.notifier.listen(keys.UNIT_NOTIFY, gw.inboxes.wake)
    # and one follows the dead letters for the answers the dispatcher refused
    gw.refusals = Refusals(
        gw.redis, gw.inboxes, gw.zones.all_keys(), cluster=gw.settings.redis_cluster
    )
    async with (
        running(gw.notifier.run()),
        running(gw.inboxes.run()),
        running(gw.refusals.run()),
    ):
        await asyncio.wait_for(gw.notifier.ready.wait(), 30)
        await asyncio.wait_for(gw.refusals.ready.wait(), 30)
        yield


async def _writer(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    assert gw.redis is not None
    gw.writer = StreamWriter(
        gw.redis,
        batch_max=gw.settings.alarm_batch_max,
        queue_max=gw.settings.alarm_queue_max,
        on_batch=gw.metrics.batch.observe,
    )
    gw.positions = StreamWriter(
        gw.redis,
        batch_max=gw.settings.alarm_batch_max,
        queue_max=gw.settings.alarm_queue_max,
        on_batch=gw.metrics.batch.observe,
        linger_s=gw.settings.position_linger_ms / 1000,
    )
    async with running(gw.writer.run()), running(gw.positions.run()):
        yield
        # Requests still running at shutdown may have queued writes: store them first.
        drained = asyncio.gather(gw.writer.drain(), gw.positions.drain())
        await asyncio.wait_for(drained, gw.settings.shutdown_grace_s)


async def _poles(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    assert gw.redis is not None
    gw.poles = await PoleRegistry(gw.redis, gw.settings.city).load_index()
    gw.metrics.pole_index_loads.inc()
    log.info("pole index of %s: %d poles", gw.settings.city, len(gw.poles))
    async with running(gw.poles.follow(poll_s=gw.settings.pole_refresh_s)):
        yield


async def _heap(app: web.Application) -> AsyncIterator[None]:
    settings = app[GATEWAY].settings
    async with running(keep_young_small(settings.gc_freeze_s, settings.gc_full_s)):
        yield


async def _close_streams(app: web.Application) -> None:
    """Shutdown: end event streams and close WebSockets (clients reconnect elsewhere)."""
    gw = app[GATEWAY]
    gw.closing.set()
    if gw.notifier is not None:
        gw.notifier.wake_all()
    for stream in list(gw.streams):
        if isinstance(stream, web.WebSocketResponse):
            await stream.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")
