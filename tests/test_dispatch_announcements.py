"""Announcements: a dispatcher batch is announced once per channel (its unit ids, its incident
ids, separated by spaces), and the inbox stream stays the truth: a gateway whose pub/sub
connection is cut while batches are dispatched still pushes every dispatch to every unit's
WebSocket, once and in order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from waiting import until, until_notified

from dispatcher import scenario as sc
from gateway.testing import gateway_client, store_poles, unit_token
from polewatch import keys

LON, LAT = 114.05, 22.55
UNITS = [f"u{i}" for i in range(6)]
PLACES = {u: sc.shifted(LON, LAT, east_m=3_000.0 * i) for i, u in enumerate(UNITS)}
"""Each unit 3 km from the next: every alarm below is its own incident for its own unit."""
SENTINEL = "end-of-test-batch"


def alarms_at_every_unit() -> list[Any]:
    return [sc.alarm(*PLACES[u]) for u in UNITS]


def announced_until_sentinel(pubsub: Any, client: redis.Redis) -> list[tuple[str, str]]:
    """What was published on the two channels before the test's own sentinel (one connection
    delivers in order, so the sentinel closes the batch's announcements)."""
    client.publish(keys.UNIT_NOTIFY, SENTINEL)
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)  # None: nothing, or a subscription reply
        if message is None:
            continue
        if message["data"] == SENTINEL.encode():
            return got
        got.append((message["channel"].decode(), message["data"].decode()))
    raise AssertionError(f"no sentinel within 10 s; got {got}")


async def test_a_batch_is_announced_once_per_channel(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await sc.step(redis_url, sync_redis, *(sc.on_duty(u, *PLACES[u]) for u in UNITS))
    pubsub = sync_redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(keys.UNIT_NOTIFY, keys.INCIDENT_NOTIFY)
    try:
        totals = await sc.step(redis_url, sync_redis, *alarms_at_every_unit())
        got = announced_until_sentinel(pubsub, sync_redis)
    finally:
        pubsub.close()
    assert totals["dispatched"] == len(UNITS)
    by_channel = {channel: payload for channel, payload in got}
    assert len(got) == 2 and len(by_channel) == 2, got  # one message per channel
    assert sorted(by_channel[keys.UNIT_NOTIFY].split(" ")) == UNITS
    incidents = by_channel[keys.INCIDENT_NOTIFY].split(" ")
    assert sorted(incidents, key=int) == [str(i) for i in range(1, len(UNITS) + 1)]
    assert {sc.incident(sync_redis, i).units[0] for i in incidents} == set(UNITS)


class Phone:
    """A unit's WebSocket: keeps every inbox frame it is pushed."""

    def __init__(self, unit: str, pushed: asyncio.Condition) -> None:
        self.unit = unit
        self.ids: list[str] = []
        self.pushed = pushed

    async def run(self, client: TestClient[Any, Any], connected: asyncio.Event) -> None:
        async with client.ws_connect(f"/api/patrol/ws?token={unit_token(self.unit)}") as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["type"] == "hello"
            connected.set()
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(frame.data)
                if data["type"] == "inbox":
                    self.ids.append(data["id"])
                    async with self.pushed:
                        self.pushed.notify_all()


async def test_a_gateway_whose_subscription_was_cut_misses_no_dispatch(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    await sc.step(redis_url, sync_redis, *(sc.on_duty(u, *PLACES[u]) for u in UNITS))
    pushed = asyncio.Condition()
    phones = [Phone(u, pushed) for u in UNITS]

    async def inboxes_pushed(what: str) -> None:
        """Every phone was pushed its whole inbox (final: the burst dispatcher has drained), in
        order; within 10 s, well within the gateway's own periodic re-read of an inbox (15 s),
        so a push that comes in time came from an announcement (or the reconnect)."""
        stored: dict[str, list[str]] = {}
        for phone in phones:
            entries: Any = await aredis.xrange(keys.unit_inbox(phone.unit))
            stored[phone.unit] = [entry_id.decode() for entry_id, _ in entries]

        def all_pushed() -> bool:
            for phone in phones:
                got, want = phone.ids, stored[phone.unit]
                assert got == want[: len(got)], (phone.unit, got, want)
            return all(phone.ids == stored[phone.unit] for phone in phones)

        await until_notified(pushed, all_pushed, what, 10)

    async def subscribed() -> bool:
        numsub: Any = await aredis.pubsub_numsub(keys.UNIT_NOTIFY)
        return bool(numsub[0][1])

    async def resolve_all() -> None:
        answers = [sc.status(u, sc.unit(sync_redis, u).incident, "resolved") for u in UNITS]
        await sc.step(redis_url, sync_redis, *answers)

    async with gateway_client(redis_url) as client:
        connected = [asyncio.Event() for _ in phones]
        pairs = zip(phones, connected, strict=True)
        tasks = [asyncio.create_task(phone.run(client, c)) for phone, c in pairs]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 20)
            # Live: one announcement naming six units wakes all six sockets.
            await sc.step(redis_url, sync_redis, *alarms_at_every_unit())
            await inboxes_pushed("the first batch on every socket")
            # The gateway's subscription is cut; a batch is dispatched while it is down.
            await resolve_all()
            assert await aredis.client_kill_filter(_type="pubsub") >= 1
            await sc.step(redis_url, sync_redis, *alarms_at_every_unit())
            await until(subscribed, "the gateway subscribed again", 10)
            await inboxes_pushed("the batch dispatched while the subscription was cut")
            # And live again after the reconnect.
            await resolve_all()
            await sc.step(redis_url, sync_redis, *alarms_at_every_unit())
            await inboxes_pushed("the batch after the reconnect")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    for phone in phones:
        assert len(phone.ids) == 3 and len(set(phone.ids)) == 3, (phone.unit, phone.ids)
