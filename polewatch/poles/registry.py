"""A city's pole registry in Redis, shared by every replica.

Keys (:mod:`polewatch.keys`): ``poles(city)`` hash code -> MessagePack :class:`Pole`,
``poles_geo(city)`` GEO set of codes, ``poles_version(city)`` change counter, the ``CITIES``
set, and the ``POLES_NOTIFY`` channel.

How the copies stay consistent:

* Every write bumps ``poles_version`` in the same ``MULTI``/``EXEC`` as the data it writes
  (small writes), or right after the last chunk of a bulk write (large ones are chunked so
  Redis never stalls on one huge transaction; the bump still comes only once all of the data
  is there). A full replacement is written to staging keys and made live by ``RENAME`` in the
  transaction that bumps the version, so readers never see half a city.
* After the bump the registry ``PUBLISH``-es the city name on ``POLES_NOTIFY`` (and adds it
  to ``CITIES`` at the same time).
* A city's keys share the hash tag ``{city}``, so each transaction (and each ``RENAME``) stays
  on one shard of a Redis Cluster; ``CITIES`` and the channel are global, so they are written
  outside the transactions.
* An in-process :class:`~polewatch.poles.index.PoleIndex` remembers the version it was built
  from; :meth:`PoleIndex.refresh_if_changed` compares it with Redis and reloads on change,
  :meth:`PoleIndex.follow` does so on every notification (and by polling as a safety net,
  since pub/sub messages can be missed during a reconnect). A load reads the version and the
  hash in one transaction, so the index's version always describes its content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from polewatch import keys
from polewatch.connection import stopping
from polewatch.poles.index import PoleIndex
from polewatch.poles.model import Pole

log = logging.getLogger(__name__)

CHUNK = 5000
"""Poles per pipelined round trip of a bulk write."""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Pole).decode


class PoleRegistry:
    """One city's registry in Redis (asyncio client ``redis``)."""

    def __init__(self, redis: aioredis.Redis, city: str) -> None:
        self.redis = redis
        self.city = city

    async def store(self, poles: Iterable[Pole], *, replace: bool = False) -> int:
        """Write ``poles`` (insert or overwrite by code); with ``replace`` the city holds
        exactly these afterwards. Returns the new registry version."""
        batch = list(poles)
        for pole in batch:
            if pole.city != self.city:
                raise ValueError(f"pole {pole.code!r} belongs to {pole.city!r}, not {self.city!r}")
        hash_key, geo_key = keys.poles(self.city), keys.poles_geo(self.city)
        if replace:
            hash_key, geo_key = keys.poles_staging(self.city), keys.poles_geo_staging(self.city)
            await self.redis.delete(hash_key, geo_key)
        small = len(batch) <= CHUNK and not replace
        async with self.redis.pipeline(transaction=small) as pipe:
            for start in range(0, len(batch), CHUNK):
                chunk = batch[start : start + CHUNK]
                pipe.hset(hash_key, mapping={p.code: _encode(p) for p in chunk})
                geo: list[float | str] = []
                for p in chunk:
                    geo += [p.lon, p.lat, p.code]
                pipe.geoadd(geo_key, geo)
                if not small:
                    await pipe.execute()
            if small:
                pipe.incr(keys.poles_version(self.city))
                results = await pipe.execute()
        if not small:
            async with self.redis.pipeline(transaction=True) as pipe:
                if replace:
                    live = (keys.poles(self.city), keys.poles_geo(self.city))
                    if batch:
                        # a cluster client's pipe.rename() is refused outright, yet RENAME
                        # within one hash tag is fine in a transaction
                        pipe.execute_command("RENAME", hash_key, live[0])
                        pipe.execute_command("RENAME", geo_key, live[1])
                    else:
                        pipe.delete(*live)
                pipe.incr(keys.poles_version(self.city))
                results = await pipe.execute()
        version = int(results[-1])
        await self._announce()
        return version

    async def _announce(self) -> None:
        # side by side, not pipelined: a cluster client refuses PUBLISH in a pipeline
        await asyncio.gather(
            self.redis.sadd(keys.CITIES, self.city),
            self.redis.publish(keys.POLES_NOTIFY, self.city),
        )

    async def remove(self, codes: Sequence[str]) -> int:
        """Delete poles by exact code; returns how many existed."""
        if not codes:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.poles(self.city), *codes)
            pipe.zrem(keys.poles_geo(self.city), *codes)
            pipe.incr(keys.poles_version(self.city))
            removed, _, _ = await pipe.execute()
        await self.redis.publish(keys.POLES_NOTIFY, self.city)
        return int(removed)

    async def get(self, code: str) -> Pole | None:
        """The pole with exactly this code (one HGET), or ``None``."""
        raw = await self.redis.hget(keys.poles(self.city), code)
        return None if raw is None else _decode(raw.encode() if isinstance(raw, str) else raw)

    async def count(self) -> int:
        """How many poles the city has."""
        return int(await self.redis.hlen(keys.poles(self.city)))

    async def version(self) -> int:
        """The change counter (0 for a city never written)."""
        raw = await self.redis.get(keys.poles_version(self.city))
        return int(raw or 0)

    async def load(self) -> tuple[int, list[Pole]]:
        """The version and every pole, read in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.poles_version(self.city))
            pipe.hvals(keys.poles(self.city))
            version, values = await pipe.execute()
        return int(version or 0), [_decode(raw) for raw in values]

    async def load_index(self) -> PoleIndex:
        """A :class:`PoleIndex` of the city that can refresh itself from this registry."""
        version, poles = await self.load()
        index = await asyncio.to_thread(PoleIndex, poles, version=version, source=self)
        return index

    async def follow(
        self,
        on_change: Callable[[], Awaitable[object]],
        *,
        poll_s: float = 30.0,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Call ``on_change`` whenever this city's registry may have changed: on each
        ``POLES_NOTIFY`` message naming it, once after (re)subscribing, and every ``poll_s``
        seconds. Runs until cancelled; survives Redis restarts."""
        # The loops test for a pending cancellation themselves: redis-py's cluster pub/sub can
        # swallow one that lands during a read and go on reading.
        delay = 0.1
        while not stopping():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                if isinstance(self.redis, RedisCluster):
                    await self.redis.initialize()  # its pub/sub needs the slot map first
                await pubsub.subscribe(keys.POLES_NOTIFY)
                if ready is not None:
                    ready.set()
                await on_change()  # whatever changed before the subscription took effect
                delay = 0.1
                while not stopping():
                    message = await pubsub.get_message(timeout=poll_s)
                    if message is None or message.get("data") in (self.city.encode(), self.city):
                        await on_change()
            except (RedisConnectionError, RedisTimeoutError, OSError, ClusterError,
                    RedisClusterException) as exc:  # fmt: skip
                if stopping():
                    break
                log.warning(
                    "pole registry %s: lost the change channel (%s); retrying", self.city, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        raise asyncio.CancelledError

    @staticmethod
    async def cities(redis: aioredis.Redis) -> list[str]:
        """Names of every city with a registry."""
        members = await redis.smembers(keys.CITIES)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
