"""Gateway faults against real processes: a gateway SIGKILLed while patrol units are connected
(they reconnect to another gateway and resume from their last id without missing or repeating
a dispatch), and a gateway whose Redis stalls (it answers 503 with a message once its write
queue is full, and stores every alarm it answered 202 for)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from typing import Any

import aiohttp
import redis
from test_faults import (
    SECRET,
    aof_redis,  # noqa: F401 (fixture)
    gateway,
    processes,  # noqa: F401 (fixture)
    service,
    store_city,
)
from waiting import until, until_notified

from dispatcher import scenario as sc
from polewatch import keys, wire
from polewatch.embedded import EmbeddedRedis

UNITS = 5


class Unit:
    """A patrol phone: holds the WebSocket, answers dispatches, resumes from its last id."""

    def __init__(
        self, name: str, lon: float, lat: float, gateways: list[str], pushed: asyncio.Condition
    ) -> None:
        from gateway.auth import mint

        self.name, self.lon, self.lat = name, lon, lat
        self.token = mint(SECRET, "unit", name, 3600)
        self.gateways = gateways
        self.last = "0"
        self.received: list[str] = []
        self.dispatches: list[str] = []
        self.connects: list[str] = []
        self.pushed = pushed  # notified after each dispatch this phone is pushed

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            base = self.gateways[0]
            url = f"{base.replace('http', 'ws', 1)}/api/patrol/ws"
            try:
                params = {"token": self.token, "last": self.last}
                async with session.ws_connect(url, params=params) as ws:
                    self.connects.append(base)
                    await ws.send_json({"type": "duty", "duty": "on_duty",
                                        "lon": self.lon, "lat": self.lat})  # fmt: skip
                    async for frame in ws:
                        await self._frame(ws, json.loads(frame.data))
            except (aiohttp.ClientError, OSError):
                pass
            if not stop.is_set():
                self.gateways.append(self.gateways.pop(0))  # the next gateway
                await asyncio.sleep(0.1)  # a phone's pause before it dials again, not a wait

    async def _frame(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        if frame["type"] != "inbox":
            return
        self.last = frame["id"]
        self.received.append(frame["id"])
        message = frame["message"]
        if message["k"] == "dispatch":
            self.dispatches.append(message["incident"])
            async with self.pushed:
                self.pushed.notify_all()
            for action in ("ack", "resolved"):
                body = {"type": "ack"} if action == "ack" else {"type": "status",
                                                                 "action": "resolved"}  # fmt: skip
                await ws.send_json({**body, "incident": message["incident"]})


def test_units_resume_on_another_gateway_without_missing_a_dispatch(
    redis_url: str,
    sync_redis: redis.Redis,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    store_city(redis_url, count=50)
    processes.append(service(redis_url, "dispatcher", "dispatcher", "--consumer", "d1"))
    first, second = gateway(redis_url, processes), gateway(redis_url, processes)
    doomed = processes[-2]
    # Units 5 km apart: each alarm below has exactly one nearest unit.
    pushed = asyncio.Condition()
    units = [
        Unit(f"gw-u{i}", 113.90 + 0.05 * i, 22.55, [first, second], pushed) for i in range(UNITS)
    ]

    def alarms(offset: float) -> list[str]:
        batch = [sc.alarm(u.lon, u.lat + offset) for u in units]
        sc.write(sync_redis, batch)
        return [a.id for a in batch]

    def dispatched(n: int) -> bool:
        return all(len(u.dispatches) >= n for u in units)

    def all_free() -> bool:
        return bool(sync_redis.zcard(keys.UNITS_FREE_GEO) == UNITS)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(u.run(session, stop)) for u in units]
            await until(all_free, "units on duty", 30)
            await asyncio.to_thread(alarms, 0.0)
            await until_notified(pushed, lambda: dispatched(1), "first dispatches", 30)
            await until(all_free, "first incidents resolved", 30)
            doomed.send_signal(signal.SIGKILL)  # no goodbye: the sockets just break
            await asyncio.to_thread(alarms, 0.005)  # while the units are reconnecting
            await until_notified(pushed, lambda: dispatched(2), "second dispatches", 30)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    for unit in units:
        stored = [i.decode() for i, _ in sync_redis.xrange(keys.unit_inbox(unit.name))]
        assert unit.received == stored, f"{unit.name}: a dispatch missed or repeated"
        assert len(set(unit.dispatches)) == 2
        assert unit.connects[0] == first and second in unit.connects[1:]


def test_a_gateway_with_a_stalled_redis_answers_503_once_its_queue_is_full(
    aof_redis: EmbeddedRedis,  # noqa: F811
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    url = aof_redis.url
    poles = store_city(url, count=50)
    base = gateway(url, processes, POLEWATCH_ALARM_QUEUE_MAX="20")
    answers: list[tuple[int, dict[str, Any]]] = []

    async def scenario() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def press(code: str) -> None:
                async with session.post(f"{base}/api/alarms", json={"pole": code}) as resp:
                    answers.append((resp.status, await resp.json()))

            def refused() -> bool:
                return any(status != 202 for status, _ in answers)

            assert aof_redis.process is not None
            aof_redis.process.send_signal(signal.SIGSTOP)  # Redis stops answering
            try:
                presses = [asyncio.create_task(press(code)) for code, _, _ in poles[:50] * 2]
                await until(refused, "a press refused once the queue was full", 30)
            finally:
                aof_redis.process.send_signal(signal.SIGCONT)
            await asyncio.gather(*presses)

    asyncio.run(scenario())
    accepted = [body["alarm"] for status, body in answers if status == 202]
    refused = [body for status, body in answers if status != 202]
    assert len(answers) == 100 and refused and accepted
    assert all("not accepted" in body["error"] and "retry" in body["error"] for body in refused)
    assert len(refused) == 100 - len(accepted)
    client = redis.Redis.from_url(url)
    stored = [wire.decode_entry(f, wire.Alarm).id for _, f in client.xrange(keys.ALARMS)]
    assert sorted(stored) == sorted(accepted), "a 202 without its alarm stored, or the reverse"
    client.close()
