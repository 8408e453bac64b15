"""The gateway when things go wrong around it: Redis going away (503, then service again once
it is back) and a graceful shutdown (WebSockets told to go elsewhere, event streams ended)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientSession, WSCloseCode, WSMsgType
from waiting import until

from gateway.testing import (
    bearer,
    gateway_client,
    operator_token,
    served_gateway,
    store_poles,
    unit_token,
)
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

        async def accepted() -> bool:  # the client reconnects on its own, and says nothing
            resp = await client.post("/api/alarms", json={"pole": "3101201"})
            assert resp.status in (202, 503), resp.status
            return resp.status == 202

        await until(accepted, "an alarm accepted again after Redis came back", 20)

        # the unit's socket survived the outage and still gets what lands in its inbox
        redis = aioredis.Redis.from_url(server.url)
        cancel = wire.DispatchCancel(incident="I1", unit="U1", reason="test", ts=1.0)
        added: Any = await redis.xadd(keys.unit_inbox("U1"), wire.entry(cancel))  # type: ignore[arg-type]
        entry = added.decode()
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


async def _raw_socket(host: str, port: int, path: str) -> Any:
    """A WebSocket opened by hand (so the test can hang up the way a phone does: mid-talk,
    without the closing handshake); the stream pair, after the server's hello."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    first, size = await asyncio.wait_for(reader.readexactly(2), 10)
    size = int.from_bytes(await reader.readexactly(2)) if size == 126 else size
    hello = json.loads(await reader.readexactly(size))
    assert first == 0x81 and hello["type"] == "hello"
    return reader, writer


def _masked_text(text: str) -> bytes:
    """A client's text frame (clients must mask; a zero mask keeps the payload as is)."""
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data


async def _writes_held(redis: aioredis.Redis) -> bool:
    """Whether the gateway has a write waiting in Redis (held by ``CLIENT PAUSE WRITE``)."""
    clients: Any = await redis.client_list()
    return any(
        c["name"] == "polewatch-gateway" and "b" in c["flags"] and c["cmd"] == "evalsha"
        for c in clients
    )


async def test_a_unit_hanging_up_is_a_normal_end_not_a_redis_outage(
    redis_url: str, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with served_gateway(redis_url) as (host, port):
        path = f"/api/patrol/ws?token={unit_token('U1')}"
        _, writer = await _raw_socket(host, port, path)
        await aredis.client_pause(20000, all=False)  # writes wait: a slow store ...
        try:
            position = {"type": "position", "lon": 113.93, "lat": 22.52, "ref": 1}
            writer.write(_masked_text(json.dumps(position)))
            await until(lambda: _writes_held(aredis), "the report held by the paused Redis", 20)
            writer.transport.abort()  # ... and the phone loses coverage before the "ok"
        finally:
            await aredis.client_unpause()

        async def ended() -> bool:
            return any("went away" in r.getMessage() for r in caplog.records)

        await until(ended, "the gateway logging that the unit went away", 20)
        assert all(r.levelno == logging.DEBUG for r in caplog.records if "went away" in r.message)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no outage
        async with ClientSession() as http:
            metrics = await (await http.get(f"http://{host}:{port}/metrics")).text()
        assert 'route="/api/patrol/ws",status="101"} 1.0' in metrics
        assert "polewatch_gateway_websocket_clients 0.0" in metrics
    kept = await aredis.xlen(keys.PATROL_EVENTS)
    assert kept == 1  # what the unit said before hanging up is kept
