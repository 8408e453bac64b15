"""The gateway when things go wrong around it: Redis going away (503, then service again once
it is back) and a graceful shutdown (WebSockets told to go elsewhere, event streams ended)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import WSCloseCode, WSMsgType

from gateway.testing import bearer, gateway_client, operator_token, store_poles, unit_token
from polewatch import keys, wire
from polewatch.embedded import EmbeddedRedis


async def test_redis_down_is_a_503_and_service_resumes_when_it_is_back(
    tmp_path: Path, make_redis: Any
) -> None:
    server: EmbeddedRedis = make_redis(tmp_path / "r1", appendonly=False).start()
    await store_poles(server.url)
    async with gateway_client(server.url, redis_retries=1) as client:
        assert (await client.post("/api/alarms", json={"pole": "3101201"})).status == 202
        ws = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
        assert (await ws.receive_json())["type"] == "hello"
        server.stop()
        resp = await client.post("/api/alarms", json={"pole": "3101201"})
        assert resp.status == 503 and "retry" in (await resp.json())["error"]
        assert resp.headers["Retry-After"] == "1"
        resp = await client.get("/api/units", headers=bearer(operator_token("alice")))
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert (await client.get("/api/openapi.json")).status == 200  # still serving

        make_redis(tmp_path / "r2", port=server.port, appendonly=False).start()
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # the client reconnects on its own
            resp = await client.post("/api/alarms", json={"pole": "3101201"})
            if resp.status == 202:
                break
            assert resp.status == 503
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)

        # the unit's socket survived the outage and still gets what lands in its inbox
        redis = aioredis.Redis.from_url(server.url)
        cancel = wire.DispatchCancel(incident="I1", unit="U1", reason="test", ts=1.0)
        entry = (await redis.xadd(keys.unit_inbox("U1"), wire.entry(cancel))).decode()  # type: ignore[arg-type]
        await redis.publish(keys.UNIT_NOTIFY, "U1")
        await redis.aclose()
        pushed = await asyncio.wait_for(ws.receive_json(), 20)
        assert pushed["id"] == entry and pushed["message"]["k"] == "cancel"
        await ws.close()


async def test_shutdown_closes_sockets_with_going_away_and_ends_event_streams(
    redis_url: str,
) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        ws = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
        assert (await ws.receive_json())["type"] == "hello"
        answer = await (await client.post("/api/alarms", json={"pole": "3101201"})).json()
        events = await client.get(answer["events_url"])
        line = b""
        while not line.startswith(b"data: "):
            line = await asyncio.wait_for(events.content.readline(), 10)
        assert b'"status":"received"' in line
        await asyncio.wait_for(client.server.close(), 30)
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type == WSMsgType.CLOSE and message.data == WSCloseCode.GOING_AWAY
        assert (await asyncio.wait_for(events.content.read(), 10)).strip() == b""  # ended
