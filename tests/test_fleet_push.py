"""A gateway holding a patrol fleet: one announcement may name many units (the dispatcher's
batched PUBLISH), one reader pushes every socket's inbox, and the inbox stream stays the truth
(a unit that reconnects, or a gateway whose pub/sub dropped, misses nothing)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_patrol_api import inbox_frames, receive, socket_url

from gateway.heap import keep_young_small
from gateway.notify import Notifier
from gateway.tasks import running
from gateway.testing import gateway_client, store_poles
from polewatch import keys, wire


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


async def write(redis: aioredis.Redis, unit: str, incident: str) -> str:
    """A dispatch in the unit's inbox, not announced yet (the batch announces it)."""
    message = wire.Dispatch(
        incident=incident, unit=unit, priority=2, type="citizen_sos", lon=113.93, lat=22.52,
        ts=1.0, ack_by=31.0,
    )  # fmt: skip
    entry_id: Any = await redis.xadd(keys.unit_inbox(unit), wire.entry(message))  # type: ignore[arg-type]
    return str(entry_id.decode())


async def test_the_notifier_takes_one_id_or_a_space_separated_batch(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    notifier = Notifier(redis, (keys.UNIT_NOTIFY, keys.INCIDENT_NOTIFY))
    heard: list[str] = []
    four = asyncio.Event()

    def hear(unit: str) -> None:
        heard.append(unit)
        if len(heard) == 4:
            four.set()

    notifier.listen(keys.UNIT_NOTIFY, hear)
    async with running(notifier.run()):
        await asyncio.wait_for(notifier.ready.wait(), 10)
        heard.clear()  # the subscription's ANY
        with (
            notifier.watch(keys.INCIDENT_NOTIFY, "I1") as one,
            notifier.watch(keys.INCIDENT_NOTIFY, "I2") as two,
            notifier.watch(keys.INCIDENT_NOTIFY, "I3") as three,
        ):
            await redis.publish(keys.INCIDENT_NOTIFY, "I1 I2")
            await asyncio.wait_for(asyncio.gather(one.wait(), two.wait()), 10)
            await redis.publish(keys.INCIDENT_NOTIFY, "I3")
            await asyncio.wait_for(three.wait(), 10)
        await redis.publish(keys.UNIT_NOTIFY, "U1 U2 U3")
        await redis.publish(keys.UNIT_NOTIFY, "U4")
        await asyncio.wait_for(four.wait(), 10)
    assert heard == ["U1", "U2", "U3", "U4"]
    await redis.aclose()


IDS = st.lists(st.from_regex(r"[A-Za-z0-9_.:@#/-]{1,24}", fullmatch=True), min_size=1, max_size=8)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=IDS)
def test_any_batch_of_ids_wakes_exactly_those_ids_in_order(redis_url: str, ids: list[str]) -> None:
    async def announce() -> list[str]:
        redis = aioredis.Redis.from_url(redis_url)
        notifier = Notifier(redis, (keys.UNIT_NOTIFY,))
        heard: list[str] = []
        done = asyncio.Event()

        def hear(unit: str) -> None:
            if unit != "*":  # the subscription's ANY
                heard.append(unit)
            if len(heard) == len(ids):
                done.set()

        notifier.listen(keys.UNIT_NOTIFY, hear)
        async with running(notifier.run()):
            await asyncio.wait_for(notifier.ready.wait(), 10)
            await redis.publish(keys.UNIT_NOTIFY, " ".join(ids))
            await asyncio.wait_for(done.wait(), 10)
        await redis.aclose()
        return heard

    assert asyncio.run(announce()) == ids


async def test_one_batched_announcement_reaches_every_unit_named_and_only_them(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    units = [f"F{i}" for i in range(12)]
    sockets = {u: await client.ws_connect(socket_url(u)) for u in units}
    for ws in sockets.values():
        assert (await receive(ws))["type"] == "hello"
    phone, tablet = sockets["F0"], await client.ws_connect(socket_url("F0"))
    await receive(tablet)  # the same unit on a second device
    written = {u: await write(aredis, u, f"I-{u}") for u in units[:10]}
    await aredis.publish(keys.UNIT_NOTIFY, " ".join(units[:10]))
    for u, entry in written.items():
        (frame,) = await inbox_frames(sockets[u], 1)
        assert frame["id"] == entry and frame["message"]["incident"] == f"I-{u}"
    assert [f["id"] for f in await inbox_frames(tablet, 1)] == [written["F0"]]
    for ws in (sockets["F10"], sockets["F11"], phone):  # nothing for units not named, no repeat
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.receive_json(), 0.3)
    for ws in [*sockets.values(), tablet]:
        await ws.close()


async def test_nothing_is_missed_across_a_reconnect_or_a_lost_subscription(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    ws = await client.ws_connect(socket_url("R1"))
    await receive(ws)
    first = await write(aredis, "R1", "I1")
    await aredis.publish(keys.UNIT_NOTIFY, "R2 R1")
    assert [f["id"] for f in await inbox_frames(ws, 1)] == [first]
    await ws.close()

    missed = [await write(aredis, "R1", f"I{i}") for i in (2, 3)]
    await aredis.publish(keys.UNIT_NOTIFY, "R1 R3")  # nobody for R1 is listening now
    ws = await client.ws_connect(socket_url("R1", last=first))
    assert (await receive(ws))["last"] == first
    assert [f["id"] for f in await inbox_frames(ws, 2)] == missed

    # an entry whose announcement was lost (published while the gateway's pub/sub was down),
    # then the gateway's pub/sub connection drops: resubscribed, it reads every unit again
    unheard = await write(aredis, "R1", "I4")
    await aredis.client_kill_filter(_type="pubsub")
    assert [f["id"] for f in await inbox_frames(ws, 1)] == [unheard]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive_json(), 0.3)  # and not twice
    await ws.close()


async def test_an_unannounced_entry_is_found_while_other_announcements_keep_coming(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url, inbox_recheck_s=0.5) as client:
        sockets = [await client.ws_connect(socket_url(u)) for u in ("S1", "S2", "S3")]
        for ws in sockets:
            await receive(ws)
        ws = sockets[0]
        lost = await write(aredis, "S1", "I1")  # its announcement never came
        stop = asyncio.Event()

        async def busy() -> None:  # the rest of the fleet keeps the reader awake
            while not stop.is_set():
                await aredis.publish(keys.UNIT_NOTIFY, "S2 S3")
                await asyncio.sleep(0.01)  # a steady trickle of announcements (load), not a wait

        chatter = asyncio.ensure_future(busy())
        try:
            assert [f["id"] for f in await inbox_frames(ws, 1)] == [lost]
        finally:
            stop.set()
            await chatter
        for ws in sockets:
            await ws.close()


async def test_the_heap_is_frozen_while_the_gateway_runs_and_unfrozen_after() -> None:
    assert gc.get_freeze_count() == 0
    async with running(keep_young_small(0.01, 0.02)):
        # One turn of the loop, not time: the task's first step (gc.freeze) runs before its
        # first await, so it has run when this one resumes.
        await asyncio.sleep(0)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
