"""A city's road network in Redis, versioned like the pole registry, shared by every service.

Keys (:mod:`polewatch.keys`): ``roads_graph(city)`` the graph blob
(:meth:`RoadNetwork.to_bytes`), ``roads_features(city)`` the roads as GeoJSON (the street
map's source), ``roads_version(city)`` a counter, and the ``ROADS_NOTIFY`` channel.

A replacement is written to staging keys, then made live by ``RENAME`` in the transaction
that bumps the version, so a reader never sees a graph from one import with the features of
another; the city name is then published on ``ROADS_NOTIFY``. A load reads the version and the
graph in one transaction. The city's keys share the hash tag ``{city}``: on a Redis Cluster
the whole graph of a city lives on one shard and every zone's services read it from there (a
graph is read once per version, so that shard carries no routing load; routing itself runs in
each process).

:func:`load_roads` (asyncio) and :func:`load_roads_sync` keep one network per client and city
and rebuild it only when the version changed: calling them per alarm costs one ``GET``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis

from polewatch import keys
from polewatch.roads.network import RoadNetwork

_cache: dict[tuple[int, str], tuple[weakref.ref[Any], RoadNetwork]] = {}


class RoadStore:
    """One city's road network in Redis (asyncio client)."""

    def __init__(self, redis: aioredis.Redis, city: str) -> None:
        self.redis = redis
        self.city = city

    async def store(self, network: RoadNetwork, geojson: bytes) -> int:
        """Replace the city's graph and features; returns the new version."""
        graph, features = keys.roads_graph(self.city), keys.roads_features(self.city)
        await self.redis.set(keys.roads_staging(graph), network.to_bytes())
        await self.redis.set(keys.roads_staging(features), geojson)
        async with self.redis.pipeline(transaction=True) as pipe:
            # a cluster client refuses pipe.rename(), yet RENAME within one hash tag is fine
            pipe.execute_command("RENAME", keys.roads_staging(graph), graph)
            pipe.execute_command("RENAME", keys.roads_staging(features), features)
            pipe.incr(keys.roads_version(self.city))
            *_, version = await pipe.execute()
        await self.redis.publish(keys.ROADS_NOTIFY, self.city)
        return int(version)

    async def version(self) -> int:
        """The change counter (0: no graph stored)."""
        return int(await self.redis.get(keys.roads_version(self.city)) or 0)

    async def features(self) -> bytes | None:
        """The stored roads as GeoJSON bytes, or ``None``."""
        raw = await self.redis.get(keys.roads_features(self.city))
        return None if raw is None else _bytes(raw)

    async def load(self) -> RoadNetwork | None:
        """The stored network (built in a thread), or ``None`` when there is none."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.roads_version(self.city))
            pipe.get(keys.roads_graph(self.city))
            version, blob = await pipe.execute()
        if blob is None:
            return None
        return await asyncio.to_thread(
            RoadNetwork.from_bytes, _bytes(blob), city=self.city, version=int(version or 0)
        )


async def load_roads(client: aioredis.Redis, city: str) -> RoadNetwork | None:
    """The city's network, cached per client and version (one ``GET`` when unchanged)."""
    version = int(await client.get(keys.roads_version(city)) or 0)
    cached = _cached(client, city, version)
    if cached is not None or version == 0:
        return cached
    network = await RoadStore(client, city).load()
    return _remember(client, city, network)


def load_roads_sync(client: redis.Redis, city: str) -> RoadNetwork | None:
    """:func:`load_roads` for a synchronous client."""
    version = int(client.get(keys.roads_version(city)) or 0)
    cached = _cached(client, city, version)
    if cached is not None or version == 0:
        return cached
    with client.pipeline(transaction=True) as pipe:
        pipe.get(keys.roads_version(city))
        pipe.get(keys.roads_graph(city))
        stored, blob = pipe.execute()
    if blob is None:
        return None
    network = RoadNetwork.from_bytes(_bytes(blob), city=city, version=int(stored or 0))
    return _remember(client, city, network)


def _cached(client: Any, city: str, version: int) -> RoadNetwork | None:
    entry = _cache.get((id(client), city))
    if entry is None or entry[0]() is not client or entry[1].version != version:
        return None
    return entry[1]


def _remember(client: Any, city: str, network: RoadNetwork | None) -> RoadNetwork | None:
    if network is not None:
        for key in [k for k, (ref, _) in _cache.items() if ref() is None]:
            del _cache[key]  # closed clients' networks
        _cache[(id(client), city)] = (weakref.ref(client), network)
    return network


def _bytes(raw: Any) -> bytes:
    return raw if isinstance(raw, bytes) else str(raw).encode()
