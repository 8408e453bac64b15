"""`polewatch demo` at the edge: cameras replaying video through the real video agent and door
controllers feeding the real door agent raise alarms on real poles; Ctrl-C leaves nothing."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from test_demo import alive, demo, stop, wait_for_line

from edge.door import config as door_config
from edge.door.agent import DoorAgent
from edge.video import config as video_config
from polewatch import keys, wire
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry
from simulators.doors import DoorControllers, plan_doors, write_doors
from simulators.edge import write_cameras

DEMO_PROCESSES = (
    "postgres", "dispatcher-1", "dispatcher-2", "gateway", "archiver", "video-agent",
    "door-agent",
)  # fmt: skip
"""The demo's children in this test: the incident archive's server, then the services."""


def _poles_exist(url: str, codes: set[str]) -> set[str]:
    """The codes among ``codes`` that the demo city's registry does not know."""

    async def missing() -> set[str]:
        client = aioredis.Redis.from_url(url)
        try:
            registry = PoleRegistry(client, "shenzhen")
            return {code for code in codes if await registry.get(code) is None}
        finally:
            await client.aclose()

    return asyncio.run(missing())


def _edge_seen(
    client: redis.Redis, expected: set[str], proc: subprocess.Popen[str], timeout_s: float
) -> tuple[set[str], list[wire.Alarm], list[wire.Alarm]]:
    """Cameras heard from, camera alarms and door alarms, once every expected camera is online
    and both kinds of alarm came: read as the streams grow (XREAD BLOCK wakes on each entry)."""
    cameras: set[str] = set()
    camera_alarms: list[wire.Alarm] = []
    door_alarms: list[wire.Alarm] = []
    after: dict[str, str] = {keys.HEARTBEATS: "0", keys.ALARMS: "0"}
    deadline = time.monotonic() + timeout_s
    while not (cameras == expected and camera_alarms and door_alarms):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, (cameras, camera_alarms, door_alarms)
        reply: Any = client.xread(after, block=1000)  # type: ignore[arg-type]
        for stream, entries in reply or []:
            name = stream.decode()
            after[name] = entries[-1][0].decode()
            for _, fields in entries:
                if name == keys.HEARTBEATS:
                    hb = wire.decode_entry(fields, wire.Heartbeat)
                    if hb.kind == "camera" and hb.status == "online":
                        cameras.add(hb.source.removeprefix("camera:"))
                    continue
                alarm = wire.decode_entry(fields, wire.Alarm)
                if alarm.source.startswith("camera:"):
                    camera_alarms.append(alarm)
                elif alarm.source.startswith("door:"):
                    door_alarms.append(alarm)
    return cameras, camera_alarms, door_alarms


def _still_alive(pids: list[int], timeout_s: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``timeout_s`` for each to exit
    (a pidfd turns readable when its process ends; they are not our children)."""
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.timeout(240)  # four video agents, PostgreSQL and the archiver share two cores
def test_the_demo_runs_cameras_and_doors_on_real_poles(tmp_path: Path, redis_url: str) -> None:
    # seed 15: the first door's first visit ends in a tamper alarm (the sequence of visits is
    # fixed by the seed; only how fast it plays depends on the machine)
    proc = demo(
        tmp_path, "--units", "5", "--rate", "0.2", "--cameras", "2", "--doors", "2",
        "--door-rate", "120", "--seed", "15", "--duration", "100", env={"REDIS_URL": redis_url},
    )  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        banner = "".join(wait_for_line(proc, "Ctrl-C stops everything", 120))
        configs = sorted((tmp_path / "cameras").glob("*.toml"))
        assert len(configs) == 2 and (tmp_path / "doors.toml").is_file()
        expected = {path.stem for path in configs}
        assert all(camera in banner for camera in expected), banner
        # the street's wrong-way car crosses the one-way line ~15 s into the video (25 s in
        # all on an idle machine; a loaded one needs more)
        cameras, camera_alarms, door_alarms = _edge_seen(client, expected, proc, 120)
        lines = (tmp_path / "demo.pids").read_text().splitlines()
        pids = [int(line.split()[0]) for line in lines]
        assert sorted(line.split()[1] for line in lines) == sorted(DEMO_PROCESSES), lines
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
        client.close()
    assert proc.returncode == 0, out
    poles = {a.pole for a in camera_alarms + door_alarms}
    assert None not in poles
    assert not _poles_exist(redis_url, {p for p in poles if p is not None})
    assert all(a.district and a.lon and a.lat for a in camera_alarms + door_alarms)
    assert {a.camera for a in camera_alarms} <= expected
    assert not _still_alive(pids, 10)


async def test_simulated_controllers_speak_the_door_agents_language(
    redis_url: str, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    poles = [
        Pole(code=f"44010{n:02d}", lon=114.0 + n / 100, lat=22.55, city="shenzhen",
             district=district, grid=f"G{n}")
        for n, district in enumerate(["Futian", "Luohu", "Nanshan", "Bao'an", "Futian"])
    ]  # fmt: skip
    await PoleRegistry(aredis, "shenzhen").store(poles)
    doors = plan_doors(poles, 4, seed=3)
    assert len({d.pole.district for d in doors}) == 4  # spread over districts
    assert [d.controller for d in doors] == ["ctl-1", "ctl-1", "ctl-2", "ctl-2"]
    conf = door_config.load(write_doors(tmp_path, doors, 0), redis_url=redis_url)
    stop = asyncio.Event()
    async with DoorAgent(conf) as agent:
        controllers = DoorControllers(f"http://127.0.0.1:{agent.http_port}", doors, 3, rate=4.0)
        task = asyncio.create_task(controllers.run(stop))
        enough = asyncio.create_task(controllers.until(lambda s: s.posted >= 20 and s.alarms > 0))
        await asyncio.wait((enough, task), timeout=45, return_when=asyncio.FIRST_COMPLETED)
        assert enough.done() and not task.done(), (controllers.stats, task)
        stop.set()
        await task
    stats = controllers.stats
    assert stats.failed == 0, stats  # every event was one the agent accepts
    assert stats.scenarios.get("pass", 0) > 0
    assert agent.rejected == 0
    entries: Any = await aredis.xrange(keys.ALARMS)
    alarms = [wire.decode_entry(f, wire.Alarm) for _, f in entries]
    assert len(alarms) == stats.alarms
    assert {a.pole for a in alarms} <= {d.pole.code for d in doors}


def test_without_shared_data_every_camera_is_synthetic_and_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poles = [
        Pole(code=f"55{n:05d}", lon=114.0 + n / 1000, lat=22.6, city="shenzhen",
             district=f"District-{n % 3}")
        for n in range(30)
    ]  # fmt: skip
    cameras = write_cameras(tmp_path, poles, 3, seed=7, data_dir=None)
    assert "only synthetic cameras" in capsys.readouterr().out
    assert [c.id for c in cameras] == ["traffic-1", "door-2", "plaza-3"]
    assert len({c.pole.district for c in cameras}) == 3
    rules = {
        "traffic-1": {"TripwireRule", "NoParkingRule", "ZoneRule"},
        "door-2": {"MotionRule", "LoiteringRule", "ZoneRule"},
        "plaza-3": {"TripwireRule", "CrowdRule", "LoiteringRule"},
    }
    for camera in cameras:
        config = video_config.load(camera.config)  # the agent's own strict loader
        assert config.pole == camera.pole.code and Path(config.source).is_file()
        assert {type(r).__name__ for r in config.rules} == rules[camera.id]
