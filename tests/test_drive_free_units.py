"""The replica's copy of a zone's free units (dispatcher/freeunits.py), which the road
shortlists search instead of GEOSEARCH: its positions are Redis' own (GEOPOS), its searches
answer what GEOSEARCH answers on the same set, and a copy older than the set is safe: a unit
claimed by another replica since the read is skipped by the Function, one the Function says it
took leaves the lists (even those made before it said so), a unit freed since is listed after
the next read.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_dispatch_drive import LAT, LON, at, dispatched, store_town, units

from dispatcher import drive, freeunits, intake, library
from dispatcher import scenario as sc
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire

KEY = keys.DEFAULT.units_free_geo
PLACES = st.lists(
    st.tuples(st.floats(-180, 180), st.floats(-85.05112878, 85.05112878)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(places=PLACES)
def test_positions_decode_as_geopos_answers(sync_redis: redis.Redis, places: list[Any]) -> None:
    sync_redis.delete(KEY)
    members = [f"u{i}" for i in range(len(places))]
    sync_redis.geoadd(KEY, [v for (lon, lat), m in zip(places, members, strict=True)
                            for v in (lon, lat, m)])  # fmt: skip
    pairs: Any = sync_redis.zrange(KEY, 0, -1, withscores=True)
    lon, lat = freeunits.decode(np.array([score for _, score in pairs]))
    answer: Any = sync_redis.geopos(KEY, *(m for m, _ in pairs))
    # GEOPOS prints 17 decimals: equal to 1e-12 degrees (a geohash cell is 5e-6 wide).
    assert np.array(answer, dtype=np.float64) == pytest.approx(np.stack([lon, lat], 1), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 150),
    count=st.integers(1, 20),
    taken=st.lists(st.integers(0, 160), max_size=150),  # (past 64 the tree is built again)
    radius=st.sampled_from([3e5, 2e7]),
)
def test_a_masked_copy_searches_like_a_copy_without_those_units(
    seed: int, size: int, count: int, taken: list[int], radius: float
) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 2**52, size=size).astype(np.float64)  # anywhere on Earth
    names = [f"u{i}" for i in range(size)]
    copy = freeunits.FreeUnits([n.encode() for n in names], scores, 0.0)
    gone = sorted({f"u{i}" for i in taken})  # (some not in the copy: ignored)
    places = rng.uniform([-180, -85], [180, 85], size=(6, 2))
    first = copy.take(gone[: len(gone) // 2])
    copy.nearest(places, count, radius)  # (a search in between: the tree may be built again)
    second = copy.take([g.encode() for g in gone])  # each unit masked once, as text or bytes
    assert first + second == len([g for g in gone if g in names])
    kept = [i for i, n in enumerate(names) if n not in gone]
    without = freeunits.FreeUnits([names[i] for i in kept], scores[kept], 0.0)
    masked, plain = copy.nearest(places, count, radius), without.nearest(places, count, radius)
    for row in range(len(places)):
        listed = [copy.name(i) for i in masked.member[row].tolist() if i < len(copy)]
        assert listed == [without.name(i) for i in plain.member[row].tolist() if i < len(kept)]
        assert masked.air_m[row][: len(listed)].tolist() == plain.air_m[row][: len(listed)].tolist()


async def test_searches_answer_what_geosearch_answers(
    sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    rng = np.random.default_rng(3)
    spots = rng.uniform([113.95, 22.50], [114.15, 22.62], size=(800, 2))
    sync_redis.geoadd(KEY, [v for i, (lon, lat) in enumerate(spots.tolist())
                            for v in (lon, lat, f"unit{i}")])  # fmt: skip
    copy = await freeunits.read(aredis, keys.DEFAULT)
    assert len(copy) == 800
    places = rng.uniform([113.93, 22.48], [114.17, 22.64], size=(60, 2))
    for count, radius in ((12, 30_000.0), (5, 800.0), (64, 3_000.0), (1, 150.0)):
        found = copy.nearest(places, count, radius)
        for row, (lon, lat) in enumerate(places.tolist()):
            answer: Any = sync_redis.geosearch(KEY, longitude=lon, latitude=lat, radius=radius,
                                               unit="m", sort="ASC", count=count,
                                               withdist=True)  # fmt: skip
            listed = [copy.name(i) for i in found.member[row].tolist() if i < len(copy)]
            assert listed == [m.decode() for m, _ in answer]
            metres = found.air_m[row][: len(listed)]
            assert metres.tolist() == pytest.approx([d for _, d in answer], abs=1e-3)


def _units_of(packed: bytes) -> list[str]:
    ranked: dict[str, Any] = msgspec.msgpack.decode(packed)
    return list(ranked["u"])


async def test_a_stale_copy_is_safe_and_the_next_read_lists_units_freed_since(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    await store_town(redis_url)
    units(sync_redis)
    await sc.drain(redis_url)  # on duty: in the free set
    conf = DispatcherSettings(redis_url=redis_url, consumer="t", free_units_refresh_ms=600_000)
    ranker = drive.Ranker(conf)
    await ranker.refresh(aredis)
    (first,) = await ranker.rank(aredis, keys.DEFAULT, [(LON, LAT)]) or []
    assert _units_of(first) == ["B", "C", "A"]  # the copy is read: B is fastest by road

    await sc.step(redis_url, sync_redis, sc.alarm(LON, LAT))  # another replica claims B
    assert sc.incident(sync_redis).units == ["B"]
    late = sc.alarm(LON, LAT, type="late")
    args = intake.arguments([(intake.Entry(keys.ALARMS, b"", {}), wire.encode(late))])
    args = await ranker.arguments(aredis, keys.DEFAULT, args)
    assert _units_of(args[2])[0] == "B"  # the copy still lists B: not read again
    await aredis.fcall(library.BATCH, 1, keys.ALARMS, library.settings_arg(conf, "t"), *args)
    assert sc.incident(sync_redis, "2").units == ["C"]  # B is skipped, by road still
    (event,) = dispatched(sync_redis, "2")
    assert event.route == "road"

    sc.write(sync_redis, [sc.on_duty("D", *at(0, -400))])
    await sc.drain(redis_url)  # D is free since the read
    (stale,) = await ranker.rank(aredis, keys.DEFAULT, [(LON, LAT)]) or []
    assert "D" not in _units_of(stale)
    fresh_ranker = drive.Ranker(conf)  # (its first list reads the set)
    await fresh_ranker.refresh(aredis)
    (fresh,) = await fresh_ranker.rank(aredis, keys.DEFAULT, [(LON, LAT)]) or []
    assert _units_of(fresh) == ["D"]  # B and C are taken; D is 400 m down the road


async def test_units_the_function_took_leave_the_lists_made_before_and_after(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    await store_town(redis_url)
    sc.write(sync_redis, [sc.on_duty(f"s{i}", *at(0, -100 * i)) for i in range(1, 9)])
    await sc.drain(redis_url)
    conf = DispatcherSettings(redis_url=redis_url, consumer="t", shortlist=3,
                              free_units_refresh_ms=600_000)  # fmt: skip
    ranker = drive.Ranker(conf)
    await ranker.refresh(aredis)
    (plain,) = await ranker.rank(aredis, keys.DEFAULT, [(LON, LAT)]) or []
    assert _units_of(plain) == ["s1", "s2", "s3"]
    before = await ranker.shortlists(aredis, keys.DEFAULT, [(LON, LAT)])
    assert before is not None and before.packed() == [plain]
    # A call's reply names the units it took (here s1 claimed, s2 gone off duty) ...
    args = library.alarm_triples(wire.encode(sc.alarm(LON, LAT))) + [
        library.PATROL, b"", wire.encode(sc.off_duty("s2"))]  # fmt: skip
    reply = await aredis.fcall(library.BATCH, 1, keys.ALARMS, library.settings_arg(conf, "t"),
                               *drive.interleave(args, [plain]))  # fmt: skip
    assert library.left_free(reply) == [b"s1", b"s2"]
    ranker.claimed(keys.DEFAULT.name, library.left_free(reply))
    # ... the list made before leaves them out when it is sent, still three units long and
    # proven up to the third; lists made after never find them (the copy is not read again).
    (sent,) = before.packed()
    assert _units_of(sent) == ["s3", "s4", "s5"]
    (after,) = await ranker.rank(aredis, keys.DEFAULT, [(LON, LAT)]) or []
    assert after == sent
    ranked: dict[str, Any] = msgspec.msgpack.decode(sent)
    assert ranked["b"] == ranked["t"][-1]
