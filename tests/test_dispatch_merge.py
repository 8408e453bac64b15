"""Reports of one event join one incident: same merge group, within the radius and the window
(measured with the alarms' own times); duplicates change nothing."""

from __future__ import annotations

import time

import pytest
import redis

from dispatcher import scenario as sc
from polewatch import keys, records

LON, LAT = 114.05, 22.55


def incident_id(client: redis.Redis, alarm_id: str) -> str:
    value = records.alarm_incident(client.get(keys.alarm(alarm_id)))
    assert value is not None
    return value


def incident(client: redis.Redis, iid: str) -> records.Incident:
    inc = records.incident_from_hash(client.hgetall(keys.incident(iid)))
    assert inc is not None
    return inc


@pytest.mark.parametrize(
    ("east_m", "dt_s", "merged"),
    [
        (70.0, 0.0, True),  # just inside the 80 m radius
        (90.0, 0.0, False),  # just outside
        (0.0, 590.0, True),  # just inside the 600 s window
        (0.0, 610.0, False),  # just outside
        (60.0, -590.0, True),  # reports may arrive out of order
    ],
)
async def test_merge_radius_and_window_edges(
    redis_url: str, sync_redis: redis.Redis, east_m: float, dt_s: float, merged: bool
) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", LON, LAT + 0.01), sc.on_duty("u2", LON, LAT + 0.02)])
    t0 = time.time()
    first = sc.alarm(LON, LAT, type="intrusion", ts=t0)
    second = sc.alarm(*sc.shifted(LON, LAT, east_m=east_m), type="tripwire", ts=t0 + dt_s)
    sc.write(sync_redis, [first])
    await sc.drain(redis_url)
    sc.write(sync_redis, [second])
    totals = await sc.drain(redis_url)
    a, b = incident_id(sync_redis, first.id), incident_id(sync_redis, second.id)
    assert (a == b) is merged
    assert totals["merged"] == int(merged)
    if merged:
        inc = incident(sync_redis, a)
        assert inc.reports == 2 and inc.units == ["u1"]
        alarms = sync_redis.lrange(keys.incident_alarms(a), 0, -1)
        assert alarms == [first.id.encode(), second.id.encode()]
    else:
        assert incident(sync_redis, b).reports == 1


async def test_other_merge_group_does_not_merge(redis_url: str, sync_redis: redis.Redis) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", LON, LAT + 0.01)])
    a, b = sc.alarm(LON, LAT, type="intrusion"), sc.alarm(LON, LAT, type="door_forced")
    sc.write(sync_redis, [a, b])
    await sc.drain(redis_url)
    assert incident_id(sync_redis, a.id) != incident_id(sync_redis, b.id)


async def test_duplicate_alarm_changes_nothing(redis_url: str, sync_redis: redis.Redis) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", LON, LAT + 0.01), sc.on_duty("u2", LON, LAT)])
    a = sc.alarm(LON, LAT)
    sc.write(sync_redis, [a])
    await sc.drain(redis_url)
    before = sync_redis.hgetall(keys.incident("1"))
    audit = sync_redis.xlen(keys.AUDIT)
    sc.write(sync_redis, [a, a])
    totals = await sc.drain(redis_url)
    assert totals["duplicates"] == 2 and totals["incidents"] == 0
    assert sync_redis.hgetall(keys.incident("1")) == before
    assert sync_redis.xlen(keys.AUDIT) == audit
    assert sync_redis.get(keys.INCIDENT_SEQ) == b"1"
    assert sync_redis.ttl(keys.alarm(a.id)) > 0


async def test_merge_keeps_the_highest_priority_and_adds_units(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", LON, LAT + 0.001), sc.on_duty("u2", LON, LAT + 0.01)])
    low, high = sc.alarm(LON, LAT, type="intrusion"), sc.alarm(LON, LAT, type="tripwire")
    sc.write(sync_redis, [low])
    await sc.drain(redis_url)
    sc.write(sync_redis, [high])
    await sc.drain(redis_url, types={"tripwire": {"priority": 1, "units": 2}})
    inc = incident(sync_redis, incident_id(sync_redis, high.id))
    assert inc.priority == 1 and inc.wanted == 2 and inc.reports == 2
    assert inc.units == ["u1", "u2"]
    # Back to a lower-priority report: the incident stays P1.
    sc.write(sync_redis, [sc.alarm(LON, LAT, type="intrusion")])
    await sc.drain(redis_url)
    inc = incident(sync_redis, inc.id)
    assert inc.priority == 1 and inc.reports == 3
