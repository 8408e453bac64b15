"""The nearest free unit gets the job (checked against a brute-force oracle), with the grid
preference, capabilities, off-duty and stale units taken into account."""

from __future__ import annotations

import random
import time

import pytest
import redis

from dispatcher import scenario as sc
from polewatch import keys, records, wire
from polewatch.geo import haversine_m

BBOX = (113.90, 22.50, 114.10, 22.65)  # about 20 x 16 km of Shenzhen
TOLERANCE_M = 1.0  # GEO positions are 52-bit geohashes: well under a metre off


def incident_of(client: redis.Redis, alarm_id: str) -> records.Incident:
    incident_id = records.alarm_incident(client.get(keys.alarm(alarm_id)))
    assert incident_id is not None, f"alarm {alarm_id} went nowhere"
    inc = records.incident_from_hash(client.hgetall(keys.incident(incident_id)))
    assert inc is not None
    return inc


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_nearest_free_unit_matches_brute_force(
    redis_url: str, sync_redis: redis.Redis, seed: int
) -> None:
    rng = random.Random(seed)
    units = {f"u{i}": p for i, p in enumerate(sc.random_points(80, rng, BBOX))}
    sc.write(sync_redis, [sc.on_duty(u, lon, lat) for u, (lon, lat) in units.items()])
    await sc.drain(redis_url)
    # Alarms of distinct types (no merging), with units going off duty in between. Order across
    # streams within one millisecond is not defined, so each off-duty change is drained first.
    script: list[wire.Message] = []
    for i, (lon, lat) in enumerate(sc.random_points(60, rng, BBOX)):
        if i % 7 == 3:
            await sc.drain(redis_url, grid_preference_m=0)
            free_now = sorted(m.decode() for m in sync_redis.zrange(keys.UNITS_FREE_GEO, 0, -1))
            script.append(sc.off_duty(rng.choice(free_now)))
            sc.write(sync_redis, script[-1:])
            await sc.drain(redis_url, grid_preference_m=0)
        script.append(sc.alarm(lon, lat, type=f"kind{i}"))
        sc.write(sync_redis, script[-1:])
    await sc.drain(redis_url, grid_preference_m=0)

    free = set(units)
    dispatched = 0
    for message in script:
        if isinstance(message, wire.PatrolDuty):
            free.discard(message.unit)
            continue
        assert isinstance(message, wire.Alarm)
        inc = incident_of(sync_redis, message.id)
        if not free:
            assert inc.state == "escalated"
            continue
        best = min(free, key=lambda u: haversine_m(message.lon, message.lat, *units[u]))
        assert inc.state == "dispatched" and len(inc.units) == 1
        got = inc.units[0]
        d_got = haversine_m(message.lon, message.lat, *units[got])
        d_best = haversine_m(message.lon, message.lat, *units[best])
        assert got in free, f"{got} was not free"
        assert d_got <= d_best + TOLERANCE_M, (got, d_got, best, d_best)
        free.discard(got)
        dispatched += 1
    assert dispatched >= 40


def _east(lon: float, metres: float) -> float:
    return sc.shifted(lon, 22.55, east_m=metres)[0]


@pytest.mark.parametrize(
    ("pref", "grid_unit_at", "winner"),
    [(300.0, 300.0, "ingrid"), (300.0, 450.0, "near"), (0.0, 300.0, "near")],
)
async def test_grid_preference(
    redis_url: str, sync_redis: redis.Redis, pref: float, grid_unit_at: float, winner: str
) -> None:
    lon, lat = 114.0, 22.55
    sc.write(sync_redis, [
        sc.on_duty("near", _east(lon, 100), lat, grid="G2"),
        sc.on_duty("ingrid", _east(lon, grid_unit_at), lat, grid="G1"),
    ])  # fmt: skip
    a = sc.alarm(lon, lat, grid="G1")
    sc.write(sync_redis, [a])
    await sc.drain(redis_url, grid_preference_m=pref)
    assert incident_of(sync_redis, a.id).units == [winner]


async def test_required_capability(redis_url: str, sync_redis: redis.Redis) -> None:
    lon, lat = 114.0, 22.55
    sc.write(sync_redis, [
        sc.on_duty("plain", _east(lon, 50), lat, capabilities=["foot"]),
        sc.on_duty("medic", _east(lon, 2000), lat, capabilities=["car", "medic"]),
    ])  # fmt: skip
    a = sc.alarm(lon, lat, type="collapse")
    b = sc.alarm(lon, lat + 0.05, type="intrusion")
    sc.write(sync_redis, [a, b])
    types = {"collapse": {"priority": 1, "capability": "medic"}}
    await sc.drain(redis_url, types=types)
    assert incident_of(sync_redis, a.id).units == ["medic"]
    assert incident_of(sync_redis, b.id).units == ["plain"]


async def test_off_duty_and_stale_units_are_skipped(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    lon, lat = 114.0, 22.55
    sc.write(sync_redis, [
        sc.on_duty("stale", _east(lon, 20), lat, ts=time.time() - 600),
        sc.on_duty("gone", _east(lon, 40), lat),
        sc.on_duty("fresh", _east(lon, 900), lat),
        sc.off_duty("gone"),
    ])  # fmt: skip
    a = sc.alarm(lon, lat)
    sc.write(sync_redis, [a])
    await sc.drain(redis_url, stale_after_s=120)
    assert incident_of(sync_redis, a.id).units == ["fresh"]
    assert sync_redis.zscore(keys.UNITS_FREE_GEO, "gone") is None
    unit = records.unit_from_hash(sync_redis.hgetall(keys.unit("gone")))
    assert unit is not None and unit.duty == "off_duty"
    # A fresh position brings the stale unit back into play.
    sc.write(sync_redis, [wire.PatrolPosition(unit="stale", lon=_east(lon, 20), lat=lat,
                                              ts=time.time())])  # fmt: skip
    b = sc.alarm(lon, lat + 0.001, type="door_forced")
    sc.write(sync_redis, [b])
    await sc.drain(redis_url)
    assert incident_of(sync_redis, b.id).units == ["stale"]
