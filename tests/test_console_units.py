"""The command centre's unit board shows each unit as the dispatcher left it: a unit going on
duty reaches a listening console as available even when the console's live feed reads the duty
entry before the dispatcher applies it, and the units an operator's cancel releases come back
as free. Real gateway, real dispatcher, real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis
from test_console import dispatch_round, sse_event

from gateway.testing import TEST_POLES, bearer, gateway_client, operator_token, store_poles
from polewatch import keys, records, wire

POLE = TEST_POLES[0]
OPERATOR = bearer(operator_token("ada"))


async def units_until(
    live: aiohttp.ClientResponse, wanted: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first unit of a ``units`` event that ``wanted`` accepts, and every unit sent until
    then (10 s at most)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            for unit in await sse_event(live, "units"):
                seen.append(unit)
                if wanted(unit):
                    return unit, seen


async def duty(redis: aioredis.Redis, unit: str, state: wire.UnitDuty, lon: float) -> None:
    message = wire.PatrolDuty(unit=unit, duty=state, lon=lon, lat=POLE.lat, ts=time.time())
    await redis.xadd(keys.PATROL_EVENTS, wire.entry(message))  # type: ignore[arg-type]


async def record(redis: aioredis.Redis, unit: str) -> records.Unit:
    found = records.unit_from_hash(await redis.hgetall(keys.unit(unit)))
    assert found is not None
    return found


def as_sent(unit: records.Unit) -> dict[str, Any]:
    """A unit record as the feed's JSON carries it."""
    sent: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(unit))
    return sent


async def test_a_unit_going_on_duty_reaches_the_console_as_the_dispatcher_applied_it(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    await duty(aredis, "U1", "off_duty", POLE.lon)
    await duty(aredis, "U2", "on_duty", POLE.lon + 0.001)
    await dispatch_round(redis_url)
    async with gateway_client(redis_url) as client:
        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(live, "picture")
        assert {u["id"]: u["status"] for u in picture["units"]} == {
            "U1": "off_duty", "U2": "available"}  # fmt: skip

        # The duty entry, then a position of U2's: once U2's position is on the console, the
        # feed has read the duty entry too (one stream, read in order), and no dispatcher has.
        await duty(aredis, "U1", "on_duty", POLE.lon + 0.002)
        moved = wire.PatrolPosition(unit="U2", lon=POLE.lon + 0.003, lat=POLE.lat, ts=time.time())
        await aredis.xadd(keys.PATROL_EVENTS, wire.entry(moved))  # type: ignore[arg-type]
        _, before = await units_until(live, lambda u: u["id"] == "U2" and u["lon"] == moved.lon)
        assert not [u for u in before if u["id"] == "U1" and u["status"] == "available"]
        assert (await record(aredis, "U1")).status == "off_duty"  # not applied yet

        await dispatch_round(redis_url)
        applied = await record(aredis, "U1")
        assert applied.duty == "on_duty" and applied.status == "available"
        shown, _ = await units_until(live, lambda u: u["id"] == "U1" and u["duty"] == "on_duty")
        assert shown == as_sent(applied)
        live.close()


async def test_units_an_operator_cancel_releases_come_back_free_on_the_console(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    await duty(aredis, "U1", "on_duty", POLE.lon + 0.001)
    await dispatch_round(redis_url)
    async with gateway_client(redis_url) as client:
        raised = await client.post("/api/alarms", json={"pole": POLE.code})
        assert raised.status == 202
        await dispatch_round(redis_url)
        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(live, "picture")
        (incident,) = picture["incidents"]
        assert [(u["id"], u["status"]) for u in picture["units"]] == [("U1", "dispatched")]

        # The cancel's audit entry names no unit: the release is heard from the dispatcher.
        cancelled = await client.post(f"/api/incidents/{incident['id']}/cancel",
                                      json={"reason": "prank"}, headers=OPERATOR)  # fmt: skip
        assert cancelled.status == 202
        await dispatch_round(redis_url)
        shown, _ = await units_until(live, lambda u: u["id"] == "U1" and u["incident"] is None)
        assert shown["status"] == "available"
        assert shown == as_sent(await record(aredis, "U1"))
        live.close()


async def test_after_a_lost_subscription_the_feed_reads_every_unit_again(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    await duty(aredis, "U1", "on_duty", POLE.lon + 0.001)
    await duty(aredis, "U2", "on_duty", POLE.lon + 0.002)
    await dispatch_round(redis_url)
    async with gateway_client(redis_url) as client:
        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(live, "picture")
        assert {u["id"] for u in picture["units"]} == {"U1", "U2"}
        # A change whose announcement nobody heard (made while the gateway's pub/sub was
        # down), then the subscription drops: once it is back, every unit is read again.
        await aredis.hset(keys.unit("U2"), "grid", "NS-0102")
        assert await aredis.client_kill_filter(_type="pubsub") >= 1
        shown, _ = await units_until(live, lambda u: u["id"] == "U2" and u["grid"] == "NS-0102")
        assert shown == as_sent(await record(aredis, "U2"))
        live.close()
