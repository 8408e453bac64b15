"""The Redis connection every service uses: retries with backoff on connection errors and
timeouts, so a restarted Redis is a pause, not a crash."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, cast
from urllib.parse import quote

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRY_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ConnectionResetError,
)


def connect(
    url: str,
    *,
    name: str,
    retries: int = 8,
    max_connections: int = 512,
    wait_for_connection_s: float = 10.0,
    cluster: bool = False,
    **kwargs: object,
) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` that retries failed commands with backoff.

    ``name`` becomes the CLIENT SETNAME, so ``CLIENT LIST`` shows which service is which.
    The pool blocks for a free connection (up to ``wait_for_connection_s``) instead of failing
    when ``max_connections`` are busy: a burst of clients queues rather than erroring.
    With ``cluster``, ``url`` is any node of a Redis Cluster and the client follows the slots
    (the same commands; multi-key commands must stay within one hash tag).
    """
    from redis.asyncio.retry import Retry as AsyncRetry

    if cluster:
        client: Any = _cluster_class().from_url(
            url,
            client_name=client_name(name),
            retry=AsyncRetry(ExponentialBackoff(cap=2.0, base=0.05), retries),
            retry_on_error=list(RETRY_ERRORS),
            max_connections=max_connections,
            socket_keepalive=True,
            **kwargs,
        )
        return cast(aioredis.Redis, client)

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_for_connection_s,
        client_name=client_name(name),
        retry=AsyncRetry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=list(RETRY_ERRORS),
        health_check_interval=15,
        socket_keepalive=True,
        **kwargs,
    )
    return aioredis.Redis.from_pool(pool)


def connect_sync(
    url: str, *, name: str, retries: int = 8, cluster: bool = False, **kwargs: object
) -> redis.Redis:
    """The blocking twin of :func:`connect`, for the CLI and locust (gevent) users."""
    from redis.retry import Retry

    if cluster:
        client: Any = _sync_cluster_class().from_url(
            url,
            client_name=client_name(name),
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
            retry_on_error=list(RETRY_ERRORS),
            **kwargs,
        )
        return cast(redis.Redis, client)

    return redis.Redis.from_url(
        url,
        client_name=client_name(name),
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=list(RETRY_ERRORS),
        health_check_interval=15,
        **kwargs,
    )


def client_name(name: str) -> str:
    """``name`` as Redis takes it for CLIENT SETNAME (printable ASCII, no spaces): other
    characters percent-encoded, so a button at pole ``가락지하차도-01`` can still connect."""
    return "".join(c if "!" <= c <= "~" and c != "%" else quote(c, safe="") for c in name)


UNREACHABLE: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""What a Redis (or Redis Cluster) that refuses or cannot be reached raises: a Redis Cluster
client with no reachable node raises ``RedisClusterException``, which is no ``RedisError``."""


def stopping() -> bool:
    """True in a task asked to stop: a loop that retries on Redis errors checks it, since an
    interrupted read may surface as the library's own error rather than as the cancellation
    (redis-py's cluster client can swallow a cancellation)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def close_sync(client: redis.Redis) -> None:
    """Close a blocking client for good: a ``RedisCluster``'s ``close()`` leaves its nodes'
    pooled sockets to the garbage collector (a ResourceWarning)."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()


async def wait_ready(client: aioredis.Redis, within_s: float = 30.0) -> None:
    """Wait until Redis answers PING (it may still be starting or loading its AOF)."""
    deadline = time.monotonic() + within_s
    delay = 0.05
    while True:
        try:
            await client.ping()
            return
        except RETRY_ERRORS as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis not ready after {within_s:.0f} s: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


# redis-py finds the slot of an FCALL by asking a node (COMMAND GETKEYS, one more round trip
# with every argument) where it parses EVAL's numkeys itself; these do the same for FCALL.
# XREAD / XREADGROUP too: the asyncio cluster client's COMMAND GETKEYS breaks its connection
# when several tasks ask at once ("Connection closed by server"; the archiver's zone tasks).
def _fcall_slot(client: Any, command: str, args: tuple[Any, ...]) -> int | None:
    name = command.upper()
    if name in ("FCALL", "FCALL_RO") and len(args) >= 3 and int(args[1]) > 0:
        return int(client.keyslot(args[2]))
    if name in ("XREAD", "XREADGROUP"):
        words = [a.upper() if isinstance(a, str) else a for a in args]
        for marker in ("STREAMS", b"STREAMS"):
            if marker in words and words.index(marker) + 1 < len(args):
                return int(client.keyslot(args[words.index(marker) + 1]))
    return None


@functools.cache
def _cluster_class() -> Any:
    from redis.asyncio.cluster import RedisCluster

    class Cluster(RedisCluster):
        async def _determine_slot(self, command: str, *args: Any) -> int:
            slot = _fcall_slot(self, command, args)
            return slot if slot is not None else await super()._determine_slot(command, *args)

    return Cluster


@functools.cache
def _sync_cluster_class() -> Any:
    from redis.cluster import RedisCluster

    class Cluster(RedisCluster):
        def _determine_slot(self, *args: Any) -> int:
            slot = _fcall_slot(self, args[0], args[1:]) if args else None
            parent: Any = super()
            return slot if slot is not None else int(parent._determine_slot(*args))

    return Cluster
