"""``polewatch edge video`` against a real redis-server: a camera (a looping video file) sees a
figure cross its tripwire, and the alarm lands on the alarm stream with the pole's place and a
JPEG snapshot; heartbeats and the camera-wall frame are there; stopping is graceful."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from edge import testing
from edge.video import agent, synthetic
from edge.video import config as cfg
from polewatch import keys, wire
from polewatch.cli import main
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry


def heartbeats(client: redis.Redis, source: str) -> list[wire.Heartbeat]:
    entries = client.xrange(keys.HEARTBEATS)
    decoded = [wire.decode_entry(f, wire.Heartbeat) for _, f in entries]  # type: ignore[union-attr,arg-type]
    return [h for h in decoded if h.source == source]


async def test_agent_publishes_alarm_with_place_snapshot_heartbeats_and_frames(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, aredis: object
) -> None:
    frames = synthetic.scene([synthetic.walk((40, 150), (280, 150), 30)], lead=40)
    video = synthetic.write(tmp_path / "yard.avi", frames, fps=50)
    await PoleRegistry(aredis, "shenzhen").store(  # type: ignore[arg-type]
        [
            Pole(
                code="1012034",
                lon=114.061,
                lat=22.541,
                city="shenzhen",
                district="Futian",
                grid="FT-07",
            )
        ]
    )
    camera = cfg.parse(
        {
            "id": "yard-1",
            "source": str(video),
            "pole": "1012034",
            "analysis": {"fps": 50, "person_min_height": 20, "sweep": 0},
            "detector": {"kind": "motion"},
            "rules": [
                {
                    "type": "tripwire",
                    "name": "fence",
                    "line": [[160, 40], [160, 230]],
                    "direction": "b_to_a",
                    "cooldown": 0,
                }
            ],
        }
    )
    conf = agent.VideoSettings(
        redis_url=redis_url, heartbeat_s=0.5, frame_s=0.2, spool_dir=str(tmp_path / "spool")
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve([camera], conf, stop))
    try:
        found = await testing.until(lambda: testing.alarms(sync_redis), within_s=30)
        alarm = found[0]
        assert (alarm.type, alarm.rule, alarm.camera, alarm.source) == (
            "tripwire",
            "fence",
            "yard-1",
            "camera:yard-1",
        )
        assert (alarm.pole, alarm.lon, alarm.lat, alarm.district, alarm.grid) == (
            "1012034",
            114.061,
            22.541,
            "Futian",
            "FT-07",
        )
        assert alarm.track is not None and alarm.extra["direction"] == "b_to_a"
        assert alarm.snapshot == alarm.id
        snapshot = sync_redis.get(keys.snapshot(alarm.id))
        assert isinstance(snapshot, bytes) and snapshot[:2] == b"\xff\xd8"
        assert int(sync_redis.ttl(keys.snapshot(alarm.id))) > 0
        frame = await testing.until(lambda: sync_redis.get(keys.camera_frame("yard-1")))
        assert frame[:2] == b"\xff\xd8"
        online = await testing.until(
            lambda: [h for h in heartbeats(sync_redis, "camera:yard-1") if h.status == "online"]
        )
        assert online[0].kind == "camera" and online[0].pole == "1012034"
        await testing.until(
            lambda: any((h.fps or 0) > 5 for h in heartbeats(sync_redis, "camera:yard-1"))
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert heartbeats(sync_redis, "camera:yard-1")[-1].status == "stopping"


async def test_a_camera_with_an_unknown_pole_and_no_coordinates_fails_at_start(
    redis_url: str,
) -> None:
    camera = cfg.parse({"id": "c", "source": "0", "pole": "9999999"})
    conf = agent.VideoSettings(redis_url=redis_url)
    try:
        await asyncio.wait_for(agent.serve([camera], conf, asyncio.Event()), 10)
    except cfg.ConfigError as exc:
        assert "9999999" in str(exc)
    else:
        raise AssertionError("serve() accepted a camera it cannot place")


async def test_unreachable_source_reports_offline_and_the_offline_rule_fires(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    camera = cfg.parse(
        {
            "id": "dead",
            "source": str(tmp_path / "no-such-file.avi"),
            "lon": 114.0,
            "lat": 22.5,
            "rules": [{"type": "offline", "after": 1}],
        }
    )
    conf = agent.VideoSettings(redis_url=redis_url, heartbeat_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve([camera], conf, stop))
    try:
        alarms = await testing.until(lambda: testing.alarms(sync_redis), within_s=20)
        assert alarms[0].type == "camera_offline" and alarms[0].camera == "dead"
        assert any(h.status == "offline" for h in heartbeats(sync_redis, "camera:dead"))
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def test_cli_rejects_a_bad_camera_config_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "cam.toml"
    bad.write_text(
        'id = "c"\nsource = "0"\nlon = 1\nlat = 2\n[[rules]]\ntype = "zone"\n'
        "polygon = [[0, 0], [1, 1]]\n"
    )
    assert main(["edge", "video", "--camera", str(bad)]) == 2
    assert "rules[0].polygon: a polygon needs at least three points" in capsys.readouterr().err
