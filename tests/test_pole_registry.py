"""The registry in Redis: every replica sees the same poles; indexes follow changes."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from polewatch import keys
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry


def pole(code: str, lon: float = 114.05, lat: float = 22.55, city: str = "sz") -> Pole:
    return Pole(code=code, lon=lon, lat=lat, city=city, district="Futian", grid="g")


async def test_store_get_count_and_version(aredis: aioredis.Redis) -> None:
    registry = PoleRegistry(aredis, "sz")
    assert await registry.version() == 0 and await registry.count() == 0
    assert await registry.store([pole("1001001"), pole("1001002", lon=114.06)]) == 1
    assert await registry.count() == 2
    assert await registry.get("1001002") == pole("1001002", lon=114.06)
    assert await registry.get("1001003") is None
    assert await registry.store([pole("1001001", lat=22.56)]) == 2  # overwrite by code
    assert (await registry.get("1001001")).lat == 22.56  # type: ignore[union-attr]
    near = await aredis.geosearch(
        keys.poles_geo("sz"), longitude=114.05, latitude=22.56, radius=100, unit="m"
    )
    assert near == [b"1001001"]
    assert await PoleRegistry.cities(aredis) == ["sz"]
    assert await registry.remove(["1001001", "nope"]) == 1
    assert await registry.count() == 1 and await registry.version() == 3


async def test_replace_leaves_exactly_the_new_poles(aredis: aioredis.Redis) -> None:
    registry = PoleRegistry(aredis, "sz")
    await registry.store([pole("A"), pole("B")])
    await registry.store([pole("B"), pole("C")], replace=True)
    index = await registry.load_index()
    assert sorted(p.code for p in index.poles()) == ["B", "C"]
    assert await aredis.zcard(keys.poles_geo("sz")) == 2
    assert await aredis.exists(keys.poles_staging("sz")) == 0
    await registry.store([], replace=True)
    assert await registry.count() == 0


async def test_pole_of_another_city_is_refused(aredis: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="belongs to"):
        await PoleRegistry(aredis, "sz").store([pole("A", city="dc")])


async def test_second_index_sees_a_change_after_refresh(aredis: aioredis.Redis) -> None:
    writer, reader = PoleRegistry(aredis, "sz"), PoleRegistry(aredis, "sz")
    await writer.store([pole("1001001")])
    index = await reader.load_index()
    assert index.version == 1 and index.get("1001003") is None
    assert await index.refresh_if_changed() is False
    await writer.store([pole("1001003")])
    assert await index.refresh_if_changed() is True
    assert index.version == 2 and index.get("1001003") is not None
    assert [c.pole.code for c in index.resolve("10010O3").candidates] == ["1001003"]


async def test_index_follows_the_change_channel(aredis: aioredis.Redis) -> None:
    registry = PoleRegistry(aredis, "sz")
    await registry.store([pole("1001001")])
    index = await registry.load_index()
    # Observe the index's own refreshes (follow() calls this attribute on each change).
    refreshed = asyncio.Event()
    refresh = index.refresh_if_changed

    async def observed() -> bool:
        changed = await refresh()
        if index.get("2001001") is not None:
            refreshed.set()
        return changed

    index.refresh_if_changed = observed  # type: ignore[method-assign]
    ready = asyncio.Event()
    follower = asyncio.create_task(index.follow(poll_s=60, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await PoleRegistry(aredis, "other").store([pole("X", city="other")])
        await registry.store([pole("2001001")])
        await asyncio.wait_for(refreshed.wait(), 5)
        assert index.get("X") is None  # another city's change is not ours
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_100k_city_round_trips(aredis: aioredis.Redis, shenzhen_poles: list[Pole]) -> None:
    registry = PoleRegistry(aredis, "shenzhen")
    version = await registry.store(shenzhen_poles, replace=True)
    assert await registry.count() == len(shenzhen_poles)
    assert await aredis.zcard(keys.poles_geo("shenzhen")) == len(shenzhen_poles)
    index = await registry.load_index()
    assert index.version == version and len(index) == len(shenzhen_poles)
    for sample in shenzhen_poles[::9973]:
        assert index.get(sample.code) == sample
