"""`polewatch demo` at the edge: cameras replaying video through the real video agent and door
controllers feeding the real door agent raise alarms on real poles; Ctrl-C leaves nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from test_demo import alive, demo, wait_for_line

from polewatch import keys, wire
from polewatch.poles.registry import PoleRegistry


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


def _edge_seen(client: redis.Redis) -> tuple[set[str], list[wire.Alarm], list[wire.Alarm]]:
    """Cameras heard from, camera alarms and door alarms so far."""
    cameras = set()
    for _, fields in client.xrange(keys.HEARTBEATS):
        hb = wire.decode_entry(fields, wire.Heartbeat)
        if hb.kind == "camera" and hb.status == "online":
            cameras.add(hb.source.removeprefix("camera:"))
    alarms = [wire.decode_entry(f, wire.Alarm) for _, f in client.xrange(keys.ALARMS)]
    camera_alarms = [a for a in alarms if a.source.startswith("camera:")]
    door_alarms = [a for a in alarms if a.source.startswith("door:")]
    return cameras, camera_alarms, door_alarms


def test_the_demo_runs_cameras_and_doors_on_real_poles(tmp_path: Path, redis_url: str) -> None:
    proc = demo(
        tmp_path, "--units", "5", "--rate", "0.2", "--cameras", "2", "--doors", "2",
        "--door-rate", "120", "--duration", "100", env={"REDIS_URL": redis_url},
    )  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        banner = "".join(wait_for_line(proc, "Ctrl-C stops everything", 120))
        configs = sorted((tmp_path / "cameras").glob("*.toml"))
        assert len(configs) == 2 and (tmp_path / "doors.toml").is_file()
        expected = {path.stem for path in configs}
        assert all(camera in banner for camera in expected), banner
        # the synthetic scene's first walker crosses the tripwire ~10 s into the video
        deadline = time.monotonic() + 60
        while True:
            cameras, camera_alarms, door_alarms = _edge_seen(client)
            if cameras == expected and camera_alarms and door_alarms:
                break
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, (cameras, camera_alarms, door_alarms)
            time.sleep(0.5)
        pids = [int(line.split()[0]) for line in (tmp_path / "demo.pids").read_text().split("\n")
                if line]  # fmt: skip
        assert len(pids) == 5  # dispatchers, gateway, video agent, door agent
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
    assert proc.returncode == 0, out
    poles = {a.pole for a in camera_alarms + door_alarms}
    assert None not in poles
    assert not _poles_exist(redis_url, {p for p in poles if p is not None})
    assert all(a.district and a.lon and a.lat for a in camera_alarms + door_alarms)
    assert {a.camera for a in camera_alarms} <= expected
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]
