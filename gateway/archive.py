"""The gateway's connections to the incident archive (``database_url``): one pool per process,
opened with the app and closed at shutdown, and the one answer an archive that does not answer
gets (503 naming it, after at most ``database_timeout_s``).

The pool keeps one connection open, grows to ``database_pool_size`` while requests wait, checks
a connection before lending it (one left broken by a restarted server is replaced) and keeps
reconnecting with backoff while the server is down; see docs/archive.md."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from analytics.archive import Incidents
from gateway.errors import HttpError
from gateway.state import GATEWAY, Gateway

log = logging.getLogger(__name__)

ARCHIVE_DOWN: Final = "The incident archive (database_url) does not answer"
RECONNECT_S: Final = 10.0
"""How long one reconnection keeps retrying (with backoff) before the next request starts a
fresh one: bounds how long after the server is back the pool still waits to try."""


async def archive_pool(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the archive's pool, when ``database_url`` is set. Opening does not wait
    for the server: the gateway starts (and serves Redis) while the archive is down."""
    gw = app[GATEWAY]
    s = gw.settings
    if not s.database_url:
        yield
        return
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        s.database_url, min_size=1, max_size=s.database_pool_size, open=False,
        timeout=s.database_timeout_s, reconnect_timeout=RECONNECT_S,
        check=AsyncConnectionPool.check_connection, name="polewatch-gateway-archive",
        kwargs={"connect_timeout": max(1, round(s.database_timeout_s)),
                "application_name": "polewatch-gateway"},
    )  # fmt: skip
    await pool.open(wait=False)
    gw.archive = pool
    try:
        yield
    finally:
        gw.archive = None
        await pool.close()


@contextlib.asynccontextmanager
async def searching(gw: Gateway) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An archive connection for one search of the history, in a transaction without parallel
    query. The search reads few rows through its indexes; starting parallel workers cost more
    than the rest of it for a text found nowhere (28-43 ms against 11-14 ms at 200,000
    incidents, docs/console-history.md). The quarterly figures, which read many rows, keep
    them: the setting ends with the transaction."""
    if gw.archive is None:
        raise ValueError("the history searches the archive only when there is one")
    async with gw.archive.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield conn


def incidents(gw: Gateway) -> Incidents:
    """Where the console reads incidents: Redis, and the archive's pool when there is one."""
    return Incidents(gw.need_redis(), zones=gw.zones, pool=gw.archive)


@contextlib.asynccontextmanager
async def answering() -> AsyncIterator[None]:
    """A database error of the archive (down, restarting, no connection within
    ``database_timeout_s``) becomes a 503 naming it."""
    try:
        yield
    except psycopg.Error as exc:
        log.warning("incident archive: %s", exc)
        raise HttpError(503, f"the incident archive does not answer: {exc}") from None
