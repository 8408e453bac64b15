"""An incident's life: dispatched, acknowledged, en route, on scene, resolved, closed, with a
timestamp per transition in the hash, the timeline and the audit stream; ack timeouts, declines
and escalation hand it to the next nearest unit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from dispatcher import scenario as sc
from dispatcher.scenario import incident, step, timeline, unit
from polewatch import keys, wire

LON, LAT = 114.05, 22.55


def audit(client: redis.Redis, iid: str = "1") -> list[wire.IncidentEvent]:
    events = [wire.decode_entry(f, wire.IncidentEvent) for _, f in client.xrange(keys.AUDIT)]
    return [e for e in events if e.incident == iid]


def three_units(client: redis.Redis) -> None:
    sc.units_east(client, LON, LAT, {"near": 200, "next": 600, "far": 5000})


async def test_full_lifecycle_is_recorded(redis_url: str, sync_redis: redis.Redis) -> None:
    three_units(sync_redis)
    await step(redis_url, sync_redis, sc.alarm(LON, LAT))
    assert incident(sync_redis).units == ["near"]
    (dispatch,) = sc.inbox(sync_redis, "near")
    assert isinstance(dispatch, wire.Dispatch) and dispatch.incident == "1"
    assert abs(dispatch.ack_by - dispatch.ts - 30.0) < 1e-3
    assert 150 < (dispatch.distance_m or 0) < 250
    assert unit(sync_redis, "near").status == "dispatched"
    for action in ("acknowledged", "en_route", "on_scene", "resolved"):
        await step(redis_url, sync_redis, sc.status("near", "1", action))
        if action == "acknowledged":
            assert unit(sync_redis, "near").status == "busy"
            assert sync_redis.zcard(keys.ACK_DEADLINES) == 0
    assert unit(sync_redis, "near").status == "available"
    assert sync_redis.zscore(keys.UNITS_FREE_GEO, "near") is not None
    # Resolved: no longer open, waiting for an operator to close it, since it was resolved.
    assert sync_redis.zscore(keys.INCIDENTS_OPEN, "1") is None
    assert sync_redis.zscore(keys.RESOLVED, "1") == incident(sync_redis).times["resolved"]
    await step(redis_url, sync_redis, sc.command("close", "1", evaluation=4, actor="op7"))
    assert sync_redis.zcard(keys.RESOLVED) == 0

    inc = incident(sync_redis)
    states = ["new", "dispatched", "acknowledged", "en_route", "on_scene", "resolved", "closed"]
    assert inc.state == "closed" and inc.evaluation == 4
    assert list(inc.times) and set(inc.times) == set(states)
    assert [inc.times[s] for s in states] == sorted(inc.times[s] for s in states)
    assert [e.event for e in timeline(sync_redis)] == states
    assert [e.event for e in audit(sync_redis)] == states
    assert timeline(sync_redis)[-1].actor == "op7"
    assert sync_redis.zcard(keys.INCIDENTS_OPEN) == 0
    # A late report on a closed incident is dead-lettered with the reason.
    totals = await step(redis_url, sync_redis, sc.status("near", "1", "on_scene"))
    assert totals["deadletter"] == 1
    (_, dead), *_ = sync_redis.xrevrange(keys.DEADLETTER, count=1)
    assert b"is closed" in dead[b"reason"]


async def wait_expired(url: str, **kw: Any) -> Any:
    """Run the dispatcher once the earliest ack deadline (Redis server time) has passed.

    What is tested is a timeout, so the one thing to wait for is that moment: read it from
    Redis and wait exactly until it, rather than polling."""
    client = redis.Redis.from_url(url)
    try:
        ((_, deadline),) = client.zrange(keys.ACK_DEADLINES, 0, 0, withscores=True)
        seconds, micros = client.time()
    finally:
        client.close()
    # Time is the subject: the ack deadline (ack_timeout_s) passing, by the server's clock.
    await asyncio.sleep(max(0.0, deadline - (seconds + micros / 1e6)) + 0.01)
    totals = await sc.drain(url, **kw)
    assert totals["expired"], "the ack deadline had passed but nothing expired"
    return totals


async def test_ack_timeout_goes_to_the_next_nearest(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    three_units(sync_redis)
    await step(redis_url, sync_redis, sc.alarm(LON, LAT), ack_timeout_s=0.3)
    assert incident(sync_redis).units == ["near"]
    await wait_expired(redis_url, ack_timeout_s=0.3)
    inc = incident(sync_redis)
    assert inc.units == ["next"] and inc.state == "dispatched"
    cancel = sc.inbox(sync_redis, "near")[-1]
    assert isinstance(cancel, wire.DispatchCancel) and "acknowledgement" in cancel.reason
    assert unit(sync_redis, "near").status == "available"
    assert sync_redis.sismember(keys.incident_tried("1"), "near")
    events = [(e.event, e.unit) for e in timeline(sync_redis)]
    assert events[-2:] == [("timeout", "near"), ("dispatched", "next")]
    # The unit that timed out can no longer acknowledge; the new one can.
    totals = await step(redis_url, sync_redis, sc.status("near", "1", "acknowledged"),
                        sc.status("next", "1", "acknowledged"))  # fmt: skip
    assert totals["deadletter"] == 1
    assert incident(sync_redis).state == "acknowledged"


async def test_decline_goes_to_the_next_nearest(redis_url: str, sync_redis: redis.Redis) -> None:
    three_units(sync_redis)
    await step(redis_url, sync_redis, sc.alarm(LON, LAT))
    await step(redis_url, sync_redis, sc.status("near", "1", "declined", detail="flat tyre"))
    assert incident(sync_redis).units == ["next"]
    await step(redis_url, sync_redis, sc.status("next", "1", "declined"))
    assert incident(sync_redis).units == ["far"]
    await step(redis_url, sync_redis, sc.status("far", "1", "declined"))
    inc = incident(sync_redis)
    assert inc.state == "escalated" and inc.units == []
    assert sync_redis.zscore(keys.ESCALATED, "1") is not None
    assert [unit(sync_redis, u).status for u in ("near", "next", "far")] == ["available"] * 3
    declined = [e for e in timeline(sync_redis) if e.event == "declined"]
    assert declined[0].detail == "flat tyre" and declined[0].actor == "near"


async def test_escalation_then_dispatch_when_a_unit_comes_free(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sc.write(sync_redis, [sc.on_duty("only", LON, LAT + 0.01)])
    await step(redis_url, sync_redis, sc.alarm(LON, LAT, type="door_forced"))
    await step(redis_url, sync_redis, sc.alarm(LON + 0.05, LAT, type="intrusion"))
    assert incident(sync_redis, "1").units == ["only"]
    second = incident(sync_redis, "2")
    assert second.state == "escalated" and "escalated" in second.times
    # The unit finishes its job: the waiting incident gets it at once.
    await step(redis_url, sync_redis, sc.status("only", "1", "resolved"))
    second = incident(sync_redis, "2")
    assert second.state == "dispatched" and second.units == ["only"]
    assert second.times["escalated"] <= second.times["dispatched"]
    assert sync_redis.zcard(keys.ESCALATED) == 0
    # And a unit coming on duty serves an escalated incident too.
    await step(redis_url, sync_redis, sc.alarm(LON - 0.05, LAT, type="crowd"))
    assert incident(sync_redis, "3").state == "escalated"
    await step(redis_url, sync_redis, sc.on_duty("fresh", LON - 0.05, LAT + 0.01))
    assert incident(sync_redis, "3").units == ["fresh"]


async def test_p1_wants_two_units_and_waits_for_the_second(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sc.write(sync_redis, [sc.on_duty("a", LON, LAT + 0.01)])
    await step(redis_url, sync_redis, sc.alarm(LON, LAT, type="citizen_sos"))
    inc = incident(sync_redis)
    assert inc.priority == 1 and inc.wanted == 2 and inc.units == ["a"]
    assert inc.state == "dispatched" and sync_redis.zscore(keys.ESCALATED, "1") is not None
    await step(redis_url, sync_redis, sc.on_duty("b", LON, LAT + 0.02))
    assert incident(sync_redis).units == ["a", "b"]
    assert sync_redis.zcard(keys.ESCALATED) == 0


async def test_off_duty_unit_releases_its_incident(redis_url: str, sync_redis: redis.Redis) -> None:
    three_units(sync_redis)
    await step(redis_url, sync_redis, sc.alarm(LON, LAT))
    await step(redis_url, sync_redis, sc.status("near", "1", "acknowledged"))
    await step(redis_url, sync_redis, sc.off_duty("near"))
    assert incident(sync_redis).units == ["next"]
    u = unit(sync_redis, "near")
    assert (u.duty, u.status, u.incident) == ("off_duty", "off_duty", None)
    assert sync_redis.zscore(keys.UNITS_GEO, "near") is None
    assert "released" in [e.event for e in timeline(sync_redis)]


async def test_units_and_watchers_are_told(redis_url: str, sync_redis: redis.Redis) -> None:
    pubsub = sync_redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.UNIT_NOTIFY, keys.INCIDENT_NOTIFY)
    try:
        three_units(sync_redis)
        await step(redis_url, sync_redis, sc.alarm(LON, LAT))
        got: set[tuple[bytes, bytes]] = set()
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message:
                got.add((message["channel"], message["data"]))
    finally:
        pubsub.close()
    assert got == {(keys.UNIT_NOTIFY.encode(), b"near"), (keys.INCIDENT_NOTIFY.encode(), b"1")}
    version = sync_redis.fcall("pw_version", 0)
    assert isinstance(version, bytes) and len(version) == 12
