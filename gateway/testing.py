"""Helpers for tests and simulators: tokens without the CLI, and a gateway on a real socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.auth import mint
from gateway.settings import GatewaySettings

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
    values: dict[str, Any] = {"redis_url": redis_url, "secret": TEST_SECRET, "city": "testcity"}
    values.update(settings)
    app = create_app(GatewaySettings(**values))
    async with TestClient(TestServer(app)) as client:
        yield client
