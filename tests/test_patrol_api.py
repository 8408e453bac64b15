"""Patrol units: dispatches pushed over the WebSocket as they land, resumed from the last id
after a dropped connection (nothing missed, nothing twice); answers and reports become patrol
events; a unit's token speaks for that unit only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.auth import mint
from gateway.testing import (
    TEST_SECRET,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
)
from polewatch import keys, wire


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url, ws_backlog=20) as client:
        yield client


async def dispatch(redis: aioredis.Redis, unit: str, incident: str) -> str:
    """What the dispatcher does: an entry in the unit's inbox, then the notification."""
    now = time.time()
    message = wire.Dispatch(
        incident=incident, unit=unit, priority=2, type="citizen_sos", lon=113.93, lat=22.52,
        ts=now, ack_by=now + 30, pole="3101201",
    )  # fmt: skip
    entry_id = await redis.xadd(keys.unit_inbox(unit), wire.entry(message))  # type: ignore[arg-type]
    await redis.publish(keys.UNIT_NOTIFY, unit)
    return str(entry_id.decode())


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    frame: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
    return frame


async def inbox_frames(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    frames = [await receive(ws) for _ in range(count)]
    assert all(f["type"] == "inbox" for f in frames), frames
    return frames


def socket_url(unit: str, last: str | None = None) -> str:
    url = f"/api/patrol/ws?token={unit_token(unit)}"
    return url if last is None else f"{url}&last={last}"


async def test_dispatches_are_pushed_and_resumed_after_a_dropped_connection(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    early = [await dispatch(aredis, "U1", f"I{i}") for i in range(2)]
    await dispatch(aredis, "U2", "other-unit")  # never shown to U1

    ws = await client.ws_connect(socket_url("U1"))
    hello = await receive(ws)
    assert hello == {"type": "hello", "unit": "U1", "last": "0"}
    backlog = await inbox_frames(ws, 2)
    assert [f["id"] for f in backlog] == early
    assert backlog[0]["message"]["k"] == "dispatch"
    assert backlog[0]["message"]["incident"] == "I0"
    assert backlog[0]["message"]["unit"] == "U1"

    live = await dispatch(aredis, "U1", "I2")
    (pushed,) = await inbox_frames(ws, 1)
    assert pushed["id"] == live and pushed["message"]["incident"] == "I2"

    await ws.close()  # the phone loses its connection ...
    missed = [await dispatch(aredis, "U1", f"I{i}") for i in (3, 4)]
    cancel = wire.DispatchCancel(incident="I3", unit="U1", reason="reassigned", ts=time.time())
    missed.append(
        (await aredis.xadd(keys.unit_inbox("U1"), wire.entry(cancel))).decode()  # type: ignore[arg-type]
    )

    ws = await client.ws_connect(socket_url("U1", last=pushed["id"]))  # ... and comes back
    assert (await receive(ws))["last"] == pushed["id"]
    resumed = await inbox_frames(ws, 3)
    assert [f["id"] for f in resumed] == missed  # nothing missed, nothing sent twice
    assert resumed[2]["message"] == {**wire.to_builtins(cancel)}
    after = await dispatch(aredis, "U1", "I5")
    (next_frame,) = await inbox_frames(ws, 1)
    assert next_frame["id"] == after
    await ws.close()


async def test_a_burst_of_dispatches_arrives_complete_and_in_order(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    ws = await client.ws_connect(socket_url("U7"))
    await receive(ws)
    sent = []
    for i in range(60):  # notifications racing the gateway's reads
        sent.append(await dispatch(aredis, "U7", f"B{i}"))
    got = [f["id"] for f in await inbox_frames(ws, 60)]
    assert got == sent
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive_json(), 0.3)  # and no duplicates after them
    await ws.close()


async def test_frames_from_the_unit_become_patrol_events(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    ws = await client.ws_connect(socket_url("U3"))
    await receive(ws)
    frames = [
        {"type": "duty", "duty": "on_duty", "grid": "NS-0101", "capabilities": ["car"],
         "lon": 113.93, "lat": 22.52, "ref": 1},
        {"type": "position", "lon": 113.931, "lat": 22.521, "speed_mps": 7.5, "heading": 90,
         "ref": 2},
        {"type": "ack", "incident": "I1", "ref": 3},
        {"type": "status", "incident": "I1", "action": "on_scene", "ref": "four"},
        {"type": "decline", "incident": "I2", "detail": "flat tyre", "ref": 5},
        {"type": "duty", "duty": "off_duty", "ref": 6},
    ]  # fmt: skip
    entries = []
    for frame in frames:
        await ws.send_json(frame)
        reply = await receive(ws)
        assert reply["type"] == "ok" and reply["ref"] == frame["ref"], reply
        entries.append(reply["entry"])
    stored = await aredis.xrange(keys.PATROL_EVENTS)
    assert [e[0].decode() for e in stored] == entries
    events = [wire.decode_entry(e[1], wire.PatrolEvent) for e in stored]
    assert all(e.unit == "U3" for e in events)
    duty, pos, ack, scene, decline, off = events
    assert isinstance(duty, wire.PatrolDuty)
    assert (duty.duty, duty.grid, duty.capabilities) == ("on_duty", "NS-0101", ["car"])
    assert isinstance(pos, wire.PatrolPosition) and (pos.lon, pos.speed_mps) == (113.931, 7.5)
    assert isinstance(ack, wire.PatrolStatus) and ack.action == "acknowledged"
    assert isinstance(scene, wire.PatrolStatus) and scene.action == "on_scene"
    assert isinstance(decline, wire.PatrolStatus)
    assert (decline.action, decline.detail) == ("declined", "flat tyre")
    assert isinstance(off, wire.PatrolDuty) and off.duty == "off_duty"
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"type": "teleport"}',
        '{"type": "position", "lon": 0, "lat": 0}',
        '{"type": "position", "lon": 200, "lat": 22}',
        '{"type": "ack"}',
        '{"type": "ack", "incident": "I1", "unit": "U9"}',
        '{"type": "status", "incident": "I1", "action": "closed"}',
        '{"type": "duty", "duty": "napping"}',
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    client: TestClient[Any, Any], aredis: aioredis.Redis, frame: str
) -> None:
    ws = await client.ws_connect(socket_url("U4"))
    await receive(ws)
    await ws.send_str(frame)
    reply = await receive(ws)
    assert reply["type"] == "error" and reply["error"]
    await ws.send_json({"type": "ack", "incident": "I1", "ref": "after"})
    assert (await receive(ws))["ref"] == "after"
    assert await aredis.xlen(keys.PATROL_EVENTS) == 1
    await ws.close()


async def test_rest_reports_become_patrol_events_for_the_tokens_unit(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    auth = bearer(unit_token("U5"))
    calls = [
        ("/api/patrol/duty", {"duty": "on_duty", "grid": "G1", "lon": 113.9, "lat": 22.5}),
        ("/api/patrol/position", {"lon": 113.91, "lat": 22.51}),
        ("/api/patrol/incidents/I9/status", {"action": "en_route", "detail": "2 min"}),
        ("/api/patrol/duty", {"duty": "off_duty"}),
    ]
    for path, body in calls:
        resp = await client.post(path, json=body, headers=auth)
        assert resp.status == 202, await resp.text()
    events = [wire.decode_entry(e[1], wire.PatrolEvent) for e in await aredis.xrange(
        keys.PATROL_EVENTS)]  # fmt: skip
    assert [type(e).__name__ for e in events] == [
        "PatrolDuty", "PatrolPosition", "PatrolStatus", "PatrolDuty"
    ]  # fmt: skip
    assert all(e.unit == "U5" for e in events)
    status = events[2]
    assert isinstance(status, wire.PatrolStatus)
    assert (status.incident, status.action, status.detail) == ("I9", "en_route", "2 min")
    # a unit cannot report for another one: there is no field for it
    resp = await client.post(
        "/api/patrol/position", json={"unit": "U6", "lon": 113.9, "lat": 22.5}, headers=auth
    )
    assert resp.status == 422 and "unit" in (await resp.json())["error"]


async def test_tokens_and_roles_guard_every_door(client: TestClient[Any, Any]) -> None:
    position = {"lon": 113.9, "lat": 22.5}
    expired = mint(TEST_SECRET, "unit", "U1", ttl_s=-1)
    forged = mint("another-secret-0123456789", "unit", "U1", ttl_s=60)
    cases = [
        (None, 401, "missing token"),
        ("garbage", 401, "invalid token"),
        (expired, 401, "expired"),
        (forged, 401, "invalid token"),
        (operator_token("alice"), 403, "role 'operator'"),
    ]
    for token, status, message in cases:
        headers = bearer(token) if token else {}
        resp = await client.post("/api/patrol/position", json=position, headers=headers)
        assert resp.status == status
        assert message in (await resp.json())["error"]
        resp = await client.get(f"/api/patrol/ws?token={token or ''}")
        assert resp.status == status  # refused before any upgrade
    for path in ("/api/units", "/api/incidents", "/api/poles/3101201"):
        resp = await client.get(path, headers=bearer(unit_token("U1")))
        assert resp.status == 403
        resp = await client.get(path, headers=bearer(operator_token("bob", role="supervisor")))
        assert resp.status in (200, 404)
    resp = await client.get(socket_url("U1", last="yesterday"))
    assert resp.status == 400 and "last" in (await resp.json())["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/api/patrol/ws")
