"""The gateway's shared state: one :class:`Gateway` per app, reached through :data:`GATEWAY`."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from gateway.errors import HttpError
from gateway.inboxes import Inboxes
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.refusals import Refusals
from gateway.settings import GatewaySettings
from gateway.writer import StreamWriter
from polewatch import keys, records
from polewatch.poles.index import PoleIndex
from polewatch.zones import ZoneMap


@dataclass
class Gateway:
    """What handlers share: settings, the dispatch zones, the Redis client, the writer, the
    listener, the index."""

    settings: GatewaySettings
    metrics: Metrics
    zones: ZoneMap = field(default_factory=ZoneMap.single)
    """The deployment's dispatch zones (one, the default zone, without a ``zones`` file)."""
    redis: aioredis.Redis | None = None
    writer: StreamWriter | None = None
    positions: StreamWriter | None = None
    """The writer of units' positions (its batches linger: see ``position_linger_ms``)."""
    notifier: Notifier | None = None
    inboxes: Inboxes | None = None
    """Reads every connected unit's inbox for the patrol WebSockets."""
    refusals: Refusals | None = None
    """Pushes the dispatcher's refusals of units' answers to their WebSockets."""
    poles: PoleIndex | None = None
    archive: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
    """The incident archive's connections (``database_url``; see :mod:`gateway.archive`)."""
    streams: weakref.WeakSet[web.StreamResponse] = field(default_factory=weakref.WeakSet)
    """Open WebSockets and event streams, closed at shutdown."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def need_redis(self) -> aioredis.Redis:
        return _started(self.redis)

    def need_writer(self) -> StreamWriter:
        return _started(self.writer)

    def need_positions(self) -> StreamWriter:
        return _started(self.positions)

    def need_notifier(self) -> Notifier:
        return _started(self.notifier)

    def need_inboxes(self) -> Inboxes:
        return _started(self.inboxes)

    def need_poles(self) -> PoleIndex:
        return _started(self.poles, "the pole registry is not loaded yet")

    def incident_zone(self, incident_id: str) -> keys.Zone:
        """The zone holding an incident (its id names it); 404 for an id that names no zone
        of this deployment, as no such incident can exist."""
        zone = incident_zone(self.zones, incident_id)
        if zone is None:
            raise HttpError(404, f"no incident {incident_id!r} (its id names no dispatch zone)")
        return zone


def incident_zone(zones: ZoneMap, incident_id: str) -> keys.Zone | None:
    """The zone of ``incident_id`` (:func:`polewatch.records.incident_zone`); ``None`` when
    its id names no zone of the deployment."""
    zone = records.incident_zone(incident_id, zones)
    return zone if not zones.zoned or zone.name in zones.names else None


T = TypeVar("T")


def _started(resource: T | None, why: str = "the gateway is starting") -> T:
    if resource is None:
        raise HttpError(503, why)
    return resource


GATEWAY = web.AppKey("gateway", Gateway)
