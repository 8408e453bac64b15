"""How a dispatcher replica recovers from what it did not cause: the entries a dead replica
left pending, and a Redis that went away or lost its setup.

* :func:`idle_entries`: the entries of a zone's streams idle longer than ``claim_idle_ms`` in
  another consumer, taken over (XAUTOCLAIM) a batch at a time for this one to process.
* :func:`resiliently`: a zone's loop, started again after a back-off when Redis is unreachable
  (restart, failover, a cluster node that died) or answers that the functions or the consumer
  groups are gone (a restart without persistence); the setup is loaded again first. What the
  failed loop had read and not done stays pending, for the loop started again or another
  replica. In burst mode an unreachable Redis is an error, not a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ClusterError, RedisClusterException, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher import intake
from polewatch import connection, groups, keys

log = logging.getLogger("polewatch.dispatcher")

_LOST_STATE = re.compile(r"NOGROUP|Function not found|NOTYPES")


async def idle_entries(
    client: aioredis.Redis, zone: keys.Zone, consumer: str, idle_ms: int, count: int
) -> AsyncGenerator[list[intake.Entry], None]:
    """The zone's entries idle ``idle_ms`` or longer in other consumers, given to ``consumer``
    ``count`` at a time (the next are taken once the caller asks for them)."""
    for stream in zone.streams:
        start: Any = "0-0"
        while True:
            nxt, items, *_ = await client.xautoclaim(
                stream, keys.DISPATCH_GROUP, consumer, idle_ms, start_id=start, count=count
            )
            entries = intake.flatten([(stream, items)])
            if entries:
                log.info("claimed %d idle entries of %s", len(entries), stream)
                yield entries
            if nxt in (b"0-0", "0-0"):
                break
            start = nxt


async def forget_gone(client: aioredis.Redis, zone: keys.Zone, consumer: str, idle_ms: int) -> None:
    """Delete from the zone's streams' ``dispatchers`` group the consumers that are gone (a
    replica stopped, or restarted under a new name) and hold nothing: idle ``idle_ms``."""
    for stream in zone.streams:
        await groups.forget_gone(client, stream, keys.DISPATCH_GROUP, consumer, idle_ms)


async def resiliently(
    consume: Callable[[], Awaitable[None]],
    prepare: Callable[[], Awaitable[None]],
    *,
    zone: str,
    burst: bool,
    stopping: asyncio.Event,
) -> None:
    """Run ``consume`` (zone ``zone``'s loop) until it returns or ``stopping`` is set; ride out
    Redis restarts (and a Redis that lost the functions or groups: ``prepare`` again)."""
    delay = 0.1
    while True:
        try:
            await consume()
            return
        except (RedisConnectionError, RedisTimeoutError, OSError, ClusterError,
                RedisClusterException) as exc:  # fmt: skip
            if burst:
                raise
            log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
        except ResponseError as exc:
            if not _LOST_STATE.search(str(exc)):
                raise
            log.warning("Redis lost the dispatcher's setup (%s); loading it again", exc)
        except Exception:
            # Anything else (seen: redis-py's cluster client failing inside a connection
            # that a dying node closed): a batch is atomic, so starting the zone's loop
            # again is safe; what was read and not done stays pending and is claimed.
            if burst:
                raise
            log.exception("zone %r: unexpected error; its loop starts again", zone)
        if stopping.is_set():
            return
        if connection.stopping():  # cancelled, the cancel surfacing as a Redis error
            raise asyncio.CancelledError
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await prepare()
            delay = 0.1
