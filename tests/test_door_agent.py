"""The door agent end to end: webhook and TCP events become door alarms on the alarm stream;
bad input is answered and counted, never fatal; doors are placed by their pole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis

from edge.door import config as door_config
from edge.door.agent import DoorAgent
from edge.testing import alarms, until
from polewatch import keys, settings, wire
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry

T0 = 1_700_000_000.0

CONFIG = """
city = "shenzhen"
[door_agent]
http_port = 0
tcp_port = 0
[[doors]]
id = "D1"
controller = "C1"
pole = "4401001"
held_open_s = 30
[[doors]]
id = "D2"
controller = "C1"
lon = 114.1
lat = 22.6
district = "Luohu"
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def agent(redis_url: str, aredis: aioredis.Redis, tmp_path: Path):
    pole = Pole(
        code="4401001", lon=114.05, lat=22.54, city="shenzhen", district="Futian", grid="G7"
    )
    await PoleRegistry(aredis, "shenzhen").store([pole])
    path = tmp_path / "doors.toml"
    path.write_text(CONFIG)
    conf = door_config.load(path, redis_url=redis_url, spool_dir=str(tmp_path / "spool"))
    clock = Clock()
    async with DoorAgent(conf, clock=clock, background=False) as running:
        running.clock_ref = clock  # type: ignore[attr-defined]
        yield running


async def post(agent: DoorAgent, body: Any, raw: bytes | None = None) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{agent.http_port}/events"
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as resp:
        return resp.status, await resp.json()


async def test_webhook_events_become_geolocated_alarms(agent: DoorAgent, sync_redis: redis.Redis):
    status, body = await post(
        agent,
        [
            {"controller": "C1", "door": "D1", "code": 102, "ts": T0 + 1},
            {"controller": "C1", "door": "D2", "event": "tamper"},
        ],
    )
    assert status == 200 and body["accepted"] == 2 and len(body["alarms"]) == 2
    forced, tamper = alarms(sync_redis)
    assert (forced.type, forced.pole, forced.lon, forced.lat) == (
        "door_forced",
        "4401001",
        114.05,
        22.54,
    )
    assert (forced.district, forced.grid, forced.source) == ("Futian", "G7", "door:D1")
    assert (tamper.type, tamper.lon, tamper.district, tamper.ts) == (
        "door_tamper",
        114.1,
        "Luohu",
        T0,
    )
    assert [forced.id, tamper.id] == body["alarms"]


async def test_tcp_lines_with_bad_lines_in_between(agent: DoorAgent, sync_redis: redis.Redis):
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.tcp_port)
    lines = [
        b'{"controller": "C1", "door": "D1", "event": "card_granted", "ts": 1700000000}',
        b"this is not json",
        b'{"controller": "C1", "door": "D1", "event": "door_opened", "ts": 1700000001}',
        b"",
        b'{"controller": "C1", "door": "D1", "event": "nope"}',
    ]
    writer.write(b"\n".join(lines) + b"\n")
    await writer.drain()
    answers = [json.loads(await reader.readline()) for _ in range(4)]  # the blank line: no answer
    assert answers[0] == {"ok": True, "alarms": []}
    assert answers[1]["ok"] is False and "not JSON" in answers[1]["error"]
    assert answers[2] == {"ok": True, "alarms": []}  # granted, so not forced
    assert answers[3]["ok"] is False and "invalid event" in answers[3]["error"]
    # the door stays open: the tick at +31 s raises door_held
    agent.clock_ref.now = T0 + 31  # type: ignore[attr-defined]
    (held,) = await agent.tick()
    assert held.type == "door_held" and [a.id for a in alarms(sync_redis)] == [held.id]
    # an over-long line is refused and ends that connection only
    writer.write(b"x" * 70_000 + b"\n")
    await writer.drain()
    assert "longer than" in json.loads(await reader.readline())["error"]
    assert await reader.read() == b""
    writer.close()
    assert agent.status()["rejected"] == 3


async def test_bad_webhook_bodies_are_400_with_the_reason(
    agent: DoorAgent, sync_redis: redis.Redis
):
    status, body = await post(agent, None, raw=b"{broken")
    assert status == 400 and "not JSON" in body["error"]
    status, body = await post(agent, [{"controller": "C1", "door": "D1", "event": "tamper"}, {}])
    assert status == 400 and "$[1]" in body["error"]
    assert alarms(sync_redis) == []  # nothing of a bad body is used
    status_url = f"http://127.0.0.1:{agent.http_port}/status"
    async with aiohttp.ClientSession() as http, http.get(status_url) as resp:
        assert (await resp.json())["rejected"] == 2


async def test_tailgating_from_posted_crossings(agent: DoorAgent, sync_redis: redis.Redis):
    def e(event: str, dt: float, **kw: Any) -> dict[str, Any]:
        return {"controller": "C1", "door": "D2", "event": event, "ts": T0 + dt, **kw}

    await post(agent, [e("card_granted", 0, card="1", direction="in"), e("door_opened", 1)])
    await post(
        agent, [e("person_crossed", 2, direction="in"), e("person_crossed", 2.4, direction="in")]
    )
    await post(agent, [e("door_closed", 5)])
    agent.clock_ref.now = T0 + 9  # type: ignore[attr-defined]
    await agent.tick()
    (alarm,) = alarms(sync_redis)
    assert alarm.type == "tailgating" and alarm.extra["people"] == 2 and alarm.extra["cards"] == 1


async def test_controller_offline_after_silence(agent: DoorAgent, sync_redis: redis.Redis):
    await post(agent, {"controller": "C1", "event": "heartbeat"})
    agent.clock_ref.now = T0 + 59  # type: ignore[attr-defined]
    assert await agent.tick() == []
    agent.clock_ref.now = T0 + 61  # type: ignore[attr-defined]
    (alarm,) = await agent.tick()
    assert alarm.type == "controller_offline" and alarm.source == "controller:C1"
    await until(lambda: len(alarms(sync_redis)) == 1)
    await agent.heartbeat()
    await agent.publisher.drained(5)
    beats = [wire.decode_entry(f, wire.Heartbeat) for _, f in sync_redis.xrange(keys.HEARTBEATS)]
    assert [(b.source, b.status) for b in beats] == [
        ("door-agent", "online"),
        ("controller:C1", "offline"),
    ]


async def test_unknown_pole_fails_at_start_naming_the_door(redis_url: str, tmp_path: Path):
    path = tmp_path / "doors.toml"
    path.write_text(CONFIG)
    conf = door_config.load(path, redis_url=redis_url)
    with pytest.raises(settings.SettingsError, match="door 'D1': pole '4401001'"):
        async with DoorAgent(conf, background=False):
            pass


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[door_agent]\n", r"no \[\[doors\]\]"),
        ('[[doors]]\nid = "D1"\ncontroller = "C"\n', r"needs 'pole' or 'lon'\+'lat'"),
        (
            '[[doors]]\nid = "D1"\ncontroller = "C"\nlon = 1.0\nlat = 2.0\nheld_open_s = -1\n',
            "doors",
        ),
        (
            '[[doors]]\nid = "D1"\ncontroller = "C"\nlon=1.0\nlat=2.0\n' * 2,
            "twice",
        ),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "doors.toml"
    path.write_text(text)
    with pytest.raises(settings.SettingsError, match=message):
        door_config.load(path)


async def test_cli_runs_the_agent_until_sigterm(redis_url: str, sync_redis: redis.Redis, tmp_path):
    import os
    import signal
    import sys

    from polewatch.embedded import free_port

    http_port, tcp_port = free_port(), free_port()
    path = tmp_path / "doors.toml"
    path.write_text(
        f'[door_agent]\nhttp_port = {http_port}\ntcp_port = {tcp_port}\nlog_level = "WARNING"\n'
        '[[doors]]\nid = "D7"\ncontroller = "C7"\nlon = 114.0\nlat = 22.5\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "polewatch.cli", "edge", "door", "--config", str(path),
        "--redis-url", redis_url, "--spool-dir", str(tmp_path / "spool"), env={**os.environ},
    )  # fmt: skip

    async def send() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        except OSError:
            return False
        writer.write(b'{"controller": "C7", "door": "D7", "event": "tamper"}\n')
        answer = json.loads(await reader.readline())
        writer.close()
        return bool(answer["ok"])

    await until(send, within_s=30)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    (alarm,) = alarms(sync_redis)
    assert (alarm.type, alarm.source) == ("door_tamper", "door:D7")


async def test_crossings_reported_by_the_door_camera(agent: DoorAgent, sync_redis: redis.Redis):
    from edge.door.crossings import CrossingReporter

    url = f"http://127.0.0.1:{agent.http_port}"
    d2 = {"controller": "C1", "door": "D2"}
    await post(
        agent,
        [{**d2, "event": "card_granted", "ts": T0}, {**d2, "event": "door_opened", "ts": T0 + 1}],
    )
    async with CrossingReporter(url, controller="C1", door="D2") as camera:
        assert await camera.person_crossed(T0 + 2, "in")
        assert await camera.person_crossed(T0 + 2.5, "in")
    async with CrossingReporter(url, controller="C1", door="nope!") as bad:
        assert not await bad.person_crossed(T0 + 2, "in") and bad.failed == 1
    await post(agent, {**d2, "event": "door_closed", "ts": T0 + 4})
    agent.clock_ref.now = T0 + 8  # type: ignore[attr-defined]
    (alarm,) = await agent.tick()
    assert alarm.type == "tailgating" and (alarm.extra["people"], alarm.extra["cards"]) == (2, 1)
