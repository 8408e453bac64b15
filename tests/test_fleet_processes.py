"""Several gateway processes behind one port (``polewatch gateway --processes 2``, SO_REUSEPORT):
the kernel spreads the units' sockets over both, each pushes its own units' dispatches, and
SIGTERM stops the whole group."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import psutil
import redis.asyncio as aioredis
from waiting import until

from gateway.testing import TEST_CITY, TEST_SECRET, unit_token
from polewatch import keys, wire
from polewatch.embedded import free_port


async def test_two_processes_share_the_port_and_each_pushes_to_its_units(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    port = free_port()
    env = dict(os.environ, POLEWATCH_REDIS_URL=redis_url, POLEWATCH_SECRET=TEST_SECRET,
               POLEWATCH_CITY=TEST_CITY)  # fmt: skip
    cmd = [sys.executable, "-m", "polewatch.cli", "gateway", "--port", str(port)]
    group = await asyncio.create_subprocess_exec(*cmd, "--processes", "2", env=env)
    try:
        children = await _listening(group, port, 2)
        async with aiohttp.ClientSession() as session:
            sockets = [await _connect(session, port, f"P{i}") for i in range(24)]
            held = [
                sum(1 for c in child.net_connections("tcp")
                    if c.laddr.port == port and c.status == "ESTABLISHED")
                for child in children
            ]  # fmt: skip
            assert sum(held) == 24 and min(held) > 0, held  # both took some of the fleet

            now = time.time()
            for i in range(24):
                message = wire.Dispatch(
                    incident=f"I{i}", unit=f"P{i}", priority=2, type="citizen_sos",
                    lon=113.93, lat=22.52, ts=now, ack_by=now + 30,
                )  # fmt: skip
                await aredis.xadd(keys.unit_inbox(f"P{i}"), wire.entry(message))  # type: ignore[arg-type]
            await aredis.publish(keys.UNIT_NOTIFY, " ".join(f"P{i}" for i in range(24)))
            for i, ws in enumerate(sockets):
                frame = await asyncio.wait_for(ws.receive_json(), 10)
                assert frame["type"] == "inbox" and frame["message"]["incident"] == f"I{i}"
                await ws.close()
    finally:
        if group.returncode is None:
            group.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(group.wait(), 30) == 0
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                   for child in children)  # fmt: skip


async def _listening(group: asyncio.subprocess.Process, port: int, n: int) -> list[psutil.Process]:
    """The group's children once ``n`` of them listen on ``port`` (nothing announces a listen)."""

    def listening() -> list[psutil.Process] | None:
        assert group.returncode is None, "the gateway group exited"
        found = [
            child for child in psutil.Process(group.pid).children()
            if any(c.laddr.port == port and c.status == "LISTEN"
                   for c in child.net_connections("tcp"))
        ]  # fmt: skip
        return found if len(found) == n else None

    found: list[psutil.Process] = await until(
        listening, f"{n} gateway processes listening", 60, every_s=0.1
    )
    return found


async def _connect(
    session: aiohttp.ClientSession, port: int, unit: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/patrol/ws?token={unit_token(unit)}")
    hello = await asyncio.wait_for(ws.receive_json(), 10)
    assert hello["type"] == "hello" and hello["unit"] == unit
    return ws
