"""The pole alarm button: a press is one P1 citizen alarm at the pole, and the citizen sees
the real dispatcher's answer (received, dispatched, on scene)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis

from dispatcher import scenario as sc
from edge.button import ButtonAgent, ButtonSettings, Feedback, SimulatedInput
from edge.testing import alarms, until
from polewatch import settings
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry

POLE = Pole(code="4403217", lon=114.0579, lat=22.5431, city="shenzhen", district="Futian",
            grid="FT-07")  # fmt: skip


@pytest.fixture
async def registry(aredis: aioredis.Redis) -> None:
    await PoleRegistry(aredis, "shenzhen").store([POLE])


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_press_raises_citizen_sos_and_follows_the_dispatch(
    redis_url: str, sync_redis: redis.Redis, registry: None
):
    seen: list[str] = []
    conf = ButtonSettings(redis_url=redis_url, pole=POLE.code, http_port=0, poll_s=0.2)
    sc.write(sync_redis, [sc.on_duty("u1", 114.058, 22.544), sc.on_duty("u2", 114.059, 22.545)])
    await sc.drain(redis_url)
    async with ButtonAgent(conf, on_feedback=lambda fb: seen.append(fb.stage)) as button:
        base = f"http://127.0.0.1:{button.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/press") as resp:
                assert resp.status == 200 and (await resp.json())["stage"] == "sent"
            (alarm,) = alarms(sync_redis)
            assert (alarm.type, alarm.source, alarm.pole) == (
                "citizen_sos",
                "button:4403217",
                "4403217",
            )
            assert (alarm.lon, alarm.lat, alarm.district, alarm.grid) == (
                POLE.lon,
                POLE.lat,
                "Futian",
                "FT-07",
            )
            await sc.drain(redis_url)  # the real dispatcher, burst mode
            fb: Feedback = await until(
                lambda: button.feedback if button.feedback.stage == "dispatched" else None
            )
            assert fb.alarm == alarm.id and fb.incident and sorted(fb.units) == ["u1", "u2"]
            async with http.get(f"{base}/status") as resp:
                assert (await resp.json())["stage"] == "dispatched"
            for unit in ("u1", "u2"):
                sc.write(sync_redis, [sc.status(unit, fb.incident, "acknowledged")])
            sc.write(sync_redis, [sc.status("u1", fb.incident, "on_scene")])
            await sc.drain(redis_url)
            await until(lambda: button.feedback.stage == "on_scene")
    assert seen[0] == "sent" and "dispatched" in seen and seen[-1] == "on_scene"
    assert len(alarms(sync_redis)) == 1


async def test_presses_are_debounced(redis_url: str, sync_redis: redis.Redis):
    clock = Clock()
    conf = ButtonSettings(redis_url=redis_url, pole="P-1", lon=114.0, lat=22.5, debounce_s=5)
    source = SimulatedInput()
    async with ButtonAgent(conf, inputs=[source], clock=clock) as button:
        for _ in range(4):  # a panicked citizen pressing again and again
            await button.press()
        clock.now += 4.9
        await button.press()
        assert (button.feedback.presses, button.feedback.debounced) == (5, 4)
        clock.now += 0.2  # 5.1 s after the alarm: a new one
        source.press()
        await until(lambda: button.feedback.presses == 6)
        await button.publisher.drained(5)
    ids = [a.id for a in alarms(sync_redis)]
    assert len(ids) == 2 and ids[0] != ids[1]


async def test_without_redis_the_press_is_queued_then_sent(
    make_redis, tmp_path: Path, registry: None
):
    from polewatch.embedded import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    conf = ButtonSettings(redis_url=url, pole="P-2", lon=114.0, lat=22.5, poll_s=0.1,
                          spool_dir=str(tmp_path / "spool"))  # fmt: skip
    async with ButtonAgent(conf) as button:
        assert (await button.press()).stage == "queued"
        server = make_redis(tmp_path / "r", port=port).start()
        await until(lambda: button.feedback.stage == "sent", within_s=20)
    client = redis.Redis.from_url(server.url)
    try:
        assert [a.source for a in alarms(client)] == ["button:P-2"]
    finally:
        client.close()


async def test_unknown_pole_without_coordinates_fails_at_start(redis_url: str):
    conf = ButtonSettings(redis_url=redis_url, pole="9999999")
    with pytest.raises(settings.SettingsError, match="'9999999' is not in the shenzhen registry"):
        async with ButtonAgent(conf):
            pass


async def test_cli_stdin_press(
    redis_url: str, sync_redis: redis.Redis, registry: None, tmp_path: Path
):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "polewatch.cli", "edge", "button", "--pole", POLE.code,
        "--redis-url", redis_url, "--stdin", "--spool-dir", str(tmp_path / "spool"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "POLEWATCH_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    proc.stdin.write(b"\n")
    await proc.stdin.drain()
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert json.loads(line)["stage"] == "sent"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    (alarm,) = alarms(sync_redis)
    assert alarm.pole == POLE.code and alarm.type == "citizen_sos"
