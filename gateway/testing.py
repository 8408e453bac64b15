"""Helpers for tests and simulators: tokens without the CLI, and a gateway on a real socket."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.auth import mint
from gateway.settings import GatewaySettings
from polewatch import keys, wire
from polewatch.connection import connect
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry

TEST_SECRET = "polewatch-test-secret-0123456789"


def unit_token(unit: str, *, secret: str = TEST_SECRET, ttl_s: float = 3600.0) -> str:
    """A token for patrol unit ``unit``."""
    return mint(secret, "unit", unit, ttl_s)


def operator_token(
    login: str, *, role: str = "operator", secret: str = TEST_SECRET, ttl_s: float = 3600.0
) -> str:
    """A token for an operator (or, with ``role="supervisor"``, a supervisor)."""
    return mint(secret, role, login, ttl_s)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def gateway_client(redis_url: str, **settings: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A started gateway on a free loopback port and an HTTP client for it."""
    values: dict[str, Any] = {"redis_url": redis_url, "secret": TEST_SECRET, "city": TEST_CITY}
    values.update(settings)
    app = create_app(GatewaySettings(**values))
    async with TestClient(TestServer(app)) as client:
        yield client


@contextlib.asynccontextmanager
async def served_gateway(redis_url: str, **settings: Any) -> AsyncIterator[tuple[str, int]]:
    """A started gateway served as ``polewatch gateway`` serves it (a request handler is not
    cancelled when its client goes away, unlike under :class:`TestServer`); (host, port)."""
    values: dict[str, Any] = {"redis_url": redis_url, "secret": TEST_SECRET, "city": TEST_CITY}
    values.update(settings)
    runner = web.AppRunner(create_app(GatewaySettings(**values)), handler_cancellation=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield str(host), int(port)
    finally:
        await runner.cleanup()


TEST_CITY = "testcity"
TEST_POLES: tuple[Pole, ...] = (
    Pole(code="3101201", lon=113.9300, lat=22.5200, city=TEST_CITY, road="Keyuan Rd",
         district="Nanshan", grid="NS-0101", side="odd"),
    Pole(code="3101203", lon=113.9302, lat=22.5215, city=TEST_CITY, road="Keyuan Rd",
         district="Nanshan", grid="NS-0101", side="odd"),
    Pole(code="3101221", lon=113.9400, lat=22.5300, city=TEST_CITY, road="Keyuan Rd",
         district="Nanshan", grid="NS-0102", side="odd"),
    Pole(code="1204402", lon=114.0600, lat=22.5400, city=TEST_CITY,
         road='<script>alert("x")</script>', district="Futian & Co", grid="FT-0003"),
)  # fmt: skip
"""A few poles; one with markup in its road name, to prove pages escape it."""


async def store_poles(
    redis_url: str, poles: tuple[Pole, ...] = TEST_POLES, *, cluster: bool = False
) -> None:
    """Write ``poles`` to the registry of :data:`TEST_CITY` through the real registry (on a
    Redis Cluster with ``cluster``)."""
    client = connect(redis_url, name="test-poles", cluster=cluster)
    try:
        await PoleRegistry(client, TEST_CITY).store(poles)
    finally:
        await client.aclose()


async def write_incident(
    redis: aioredis.Redis,
    alarm_id: str,
    state: str,
    *,
    units: str = "",
    iid: str = "I7",
    pole: Pole = TEST_POLES[0],
) -> None:
    """Stand in for the dispatcher (see :mod:`polewatch.records`): the alarm's record, the
    incident hash with the ``t_<state>`` of the transition, and the notification."""
    now = time.time()
    await redis.set(keys.alarm(alarm_id), iid)
    await redis.hset(
        keys.incident(iid),
        mapping={
            "id": iid, "state": state, "priority": 1, "type": "citizen_sos",
            "group": "citizen_sos", "lon": pole.lon, "lat": pole.lat, "created": now,
            "reports": 1, "pole": pole.code, "district": pole.district or "", "units": units,
            "wanted": 1, "first_alarm": alarm_id, f"t_{state}": now,
        },
    )  # fmt: skip
    await redis.publish(keys.INCIDENT_NOTIFY, iid)


async def stream_alarms(redis: aioredis.Redis, stream: str = keys.ALARMS) -> list[wire.Alarm]:
    """The alarms in ``stream`` (the unzoned alarm stream by default), oldest first."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))
    return [wire.decode_entry(fields, wire.Alarm) for _, fields in entries]
