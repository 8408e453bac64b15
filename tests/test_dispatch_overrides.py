"""Command-centre overrides: reassign (to a named unit or the next nearest), add a unit, cancel,
close with an evaluation, merge two incidents, split an alarm out."""

from __future__ import annotations

import redis

from dispatcher import scenario as sc
from dispatcher.scenario import incident, step, timeline, unit
from polewatch import keys, records, wire

LON, LAT = 114.05, 22.55


def three_units(client: redis.Redis) -> None:
    sc.units_east(client, LON, LAT, {"near": 200, "next": 600, "far": 5000})


async def start(url: str, client: redis.Redis) -> None:
    three_units(client)
    await step(url, client, sc.alarm(LON, LAT))
    assert incident(client).units == ["near"]


async def test_reassign_to_the_next_nearest(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    await step(redis_url, sync_redis, sc.status("near", "1", "acknowledged"))
    await step(redis_url, sync_redis, sc.command("reassign", "1", actor="op1"))
    inc = incident(sync_redis)
    assert inc.units == ["next"] and inc.state == "dispatched"
    cancel = sc.inbox(sync_redis, "near")[-1]
    assert isinstance(cancel, wire.DispatchCancel) and "reassigned by op1" in cancel.reason
    assert unit(sync_redis, "near").status == "available"
    assert [e.event for e in timeline(sync_redis)][-2:] == ["reassigned", "dispatched"]


async def test_reassign_to_a_named_unit(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    await step(redis_url, sync_redis, sc.command("reassign", "1", unit="far"))
    assert incident(sync_redis).units == ["far"]
    dispatch = sc.inbox(sync_redis, "far")[-1]
    assert isinstance(dispatch, wire.Dispatch) and 4900 < (dispatch.distance_m or 0) < 5100
    # A busy unit cannot be named: the command is dead-lettered and nothing changes.
    totals = await step(redis_url, sync_redis, sc.command("reassign", "1", unit="far"))
    assert totals["deadletter"] == 1 and incident(sync_redis).units == ["far"]


async def test_add_unit(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    await step(redis_url, sync_redis, sc.command("add_unit", "1"))
    await step(redis_url, sync_redis, sc.command("add_unit", "1", unit="far"))
    inc = incident(sync_redis)
    assert inc.units == ["near", "next", "far"] and inc.wanted == 3


async def test_cancel_frees_every_unit(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    await step(redis_url, sync_redis, sc.command("add_unit", "1"))
    await step(redis_url, sync_redis, sc.command("cancel", "1", detail="false alarm"))
    inc = incident(sync_redis)
    assert inc.state == "cancelled" and "cancelled" in inc.times
    for u in ("near", "next"):
        assert unit(sync_redis, u).status == "available"
        assert isinstance(sc.inbox(sync_redis, u)[-1], wire.DispatchCancel)
    assert sync_redis.zcard(keys.ACK_DEADLINES) == 0 and sync_redis.zcard(keys.INCIDENTS_OPEN) == 0


async def test_close_with_evaluation_from_an_open_state(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await start(redis_url, sync_redis)
    await step(redis_url, sync_redis, sc.command("close", "1", evaluation=2, actor="chief"))
    inc = incident(sync_redis)
    assert inc.state == "closed" and inc.evaluation == 2
    assert unit(sync_redis, "near").status == "available"


async def test_merge_two_incidents(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    far_alarm = sc.alarm(*sc.shifted(LON, LAT, north_m=3000), type="citizen_sos")
    await step(redis_url, sync_redis, far_alarm)
    assert incident(sync_redis, "2").units
    await step(redis_url, sync_redis, sc.command("merge", "1", other="2"))
    target, gone = incident(sync_redis, "1"), incident(sync_redis, "2")
    assert gone.state == "merged" and gone.merged_into == "1"
    assert target.reports == 2 and target.priority == 1
    assert records.alarm_incident(sync_redis.get(keys.alarm(far_alarm.id))) == "1"
    for u in ("next", "far"):
        assert unit(sync_redis, u).status == "available"
    # A repeat of the merged alarm still changes nothing.
    totals = await step(redis_url, sync_redis, far_alarm)
    assert totals["duplicates"] == 1


async def test_split_an_alarm_out(redis_url: str, sync_redis: redis.Redis) -> None:
    await start(redis_url, sync_redis)
    second = sc.alarm(*sc.shifted(LON, LAT, east_m=30), type="tripwire")
    await step(redis_url, sync_redis, second)
    assert incident(sync_redis).reports == 2
    await step(redis_url, sync_redis, sc.command("split", "1", other=second.id))
    assert incident(sync_redis).reports == 1
    new = incident(sync_redis, "2")
    assert new.first_alarm == second.id and new.units == ["next"] and new.type == "tripwire"
    assert records.alarm_incident(sync_redis.get(keys.alarm(second.id))) == "2"
    # The only alarm of an incident cannot be split out.
    totals = await step(redis_url, sync_redis, sc.command("split", "2", other=second.id))
    assert totals["deadletter"] == 1
