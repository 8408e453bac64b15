"""The gateway's shared state: one :class:`Gateway` per app, reached through :data:`GATEWAY`."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import TypeVar

import redis.asyncio as aioredis
from aiohttp import web

from gateway.errors import HttpError
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.settings import GatewaySettings
from gateway.writer import StreamWriter
from polewatch.poles.index import PoleIndex


@dataclass
class Gateway:
    """What handlers share: settings, the Redis client, the writer, the listener, the index."""

    settings: GatewaySettings
    metrics: Metrics
    redis: aioredis.Redis | None = None
    writer: StreamWriter | None = None
    notifier: Notifier | None = None
    poles: PoleIndex | None = None
    streams: weakref.WeakSet[web.StreamResponse] = field(default_factory=weakref.WeakSet)
    """Open WebSockets and event streams, closed at shutdown."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def need_redis(self) -> aioredis.Redis:
        return _started(self.redis)

    def need_writer(self) -> StreamWriter:
        return _started(self.writer)

    def need_notifier(self) -> Notifier:
        return _started(self.notifier)

    def need_poles(self) -> PoleIndex:
        return _started(self.poles, "the pole registry is not loaded yet")


T = TypeVar("T")


def _started(resource: T | None, why: str = "the gateway is starting") -> T:
    if resource is None:
        raise HttpError(503, why)
    return resource


GATEWAY = web.AppKey("gateway", Gateway)
