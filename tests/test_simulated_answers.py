"""Dead letters hold only real faults: a late acknowledgement of a dispatch the unit is already
working is not one, and the simulated patrol phones answer only the dispatches they still
hold (not one whose time is up, not one withdrawn), as a real phone does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from dispatcher import scenario as sc
from gateway.testing import served_gateway, unit_token
from polewatch import keys, wire
from simulators.patrols import PatrolBehaviour, PatrolFleet, SimUnit, make_units


def dead_reasons(client: redis.Redis) -> list[str]:
    entries: Any = client.xrange(keys.DEADLETTER)
    return [fields[b"reason"].decode() for _, fields in entries]


async def test_an_ack_that_arrives_after_the_units_progress_is_no_fault(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await sc.step(redis_url, sync_redis, sc.on_duty("u1", 114.0, 22.5), sc.alarm(114.0, 22.5))
    assert sc.unit(sync_redis, "u1").incident == "1"
    # Two replicas took the unit's "ack" and "en route": the later one was carried out first.
    await sc.step(redis_url, sync_redis, sc.status("u1", "1", "en_route"))
    await sc.step(redis_url, sync_redis, sc.status("u1", "1", "acknowledged"))
    assert dead_reasons(sync_redis) == []
    assert sc.incident(sync_redis).state == "en_route"
    assert sc.unit(sync_redis, "u1").status == "busy"
    # A real fault is still one: a unit answering for a dispatch that is not its own.
    await sc.step(redis_url, sync_redis, sc.on_duty("u2", 114.3, 22.7),
                  sc.status("u2", "1", "acknowledged"))  # fmt: skip
    assert dead_reasons(sync_redis) == ["unit u2 is not assigned to incident 1"]


def inbox(client: redis.Redis, unit: str, *messages: wire.Message) -> None:
    for message in messages:
        fields: Any = wire.entry(message)
        client.xadd(keys.unit_inbox(unit), fields)


def dispatch(unit: str, incident: str, ack_by: float) -> wire.Dispatch:
    return wire.Dispatch(incident=incident, unit=unit, priority=2, type="intrusion",
                         lon=114.0, lat=22.5, ts=time.time(), ack_by=ack_by)  # fmt: skip


async def answers_of(aclient: aioredis.Redis, after: str, incident: str) -> list[Any]:
    """Wait (blocking read, with a deadline) for the first answer about ``incident``; every
    unit status written up to it."""
    seen: list[Any] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply: Any = await aclient.xread({keys.PATROL_EVENTS: after}, block=1000)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                after = entry_id
                message = wire.decode_entry(fields)
                if isinstance(message, wire.PatrolStatus):
                    seen.append(message)
                    if message.incident == incident:
                        return seen
    raise AssertionError(f"no answer about incident {incident} within 30 s: {seen}")


async def test_a_simulated_phone_answers_only_the_dispatches_it_still_holds(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    unit: SimUnit = make_units(1, [(114.0, 22.5, None)], seed=1)[0]
    now = time.time()
    # What the unit's inbox replays when its phone connects: one dispatch whose time ran out,
    # one withdrawn since, and the one it still holds.
    inbox(sync_redis, unit.id,
          dispatch(unit.id, "9", ack_by=now - 5),
          dispatch(unit.id, "8", ack_by=now + 60),
          wire.DispatchCancel(incident="8", unit=unit.id, reason="reassigned", ts=now),
          dispatch(unit.id, "7", ack_by=now + 60))  # fmt: skip
    behaviour = PatrolBehaviour(ack_delay_s=(0.0, 0.0), decline_probability=0.0,
                                time_scale=50.0)  # fmt: skip
    stop = asyncio.Event()
    async with served_gateway(redis_url) as (host, port):
        fleet = PatrolFleet(f"http://{host}:{port}", [unit], unit_token, behaviour)
        running = asyncio.create_task(fleet.run(stop))
        try:
            answers = await answers_of(aredis, "0", "7")
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
    assert [(a.incident, a.action) for a in answers] == [("7", "acknowledged")]
    assert unit.stats["expired"] == 1
