"""The video agent on a real RTSP stream: VLC serves vtest.avi on loopback, the agent analyses
it, the server goes away and comes back, and the agent reports the outage (offline) and
recovers (online again) on its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from edge import testing
from edge.video import agent
from edge.video import config as cfg
from polewatch import keys, wire

pytestmark = pytest.mark.skipif(
    shutil.which("cvlc") is None, reason="VLC is missing: apt-get install vlc-bin vlc-plugin-base"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class VlcServer:
    """``cvlc`` streaming a file over RTSP (H.264, a keyframe a second), as an unprivileged
    user when we are root (VLC refuses to run as root)."""

    def __init__(self, video: Path, port: int) -> None:
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        sout = (
            "#transcode{vcodec=h264,venc=x264{preset=ultrafast,tune=zerolatency,keyint=10}}"
            f":rtp{{sdp={self.url}}}"
        )
        command = ["cvlc", "--quiet", str(video), "--loop", "--sout", sout]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", "env", "HOME=/tmp", *command]
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group we started, nothing else
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        self.proc = None


@pytest.fixture
def vlc(data_dir: Path) -> Iterator[VlcServer]:
    server = VlcServer(data_dir / "video" / "vtest.avi", free_port())
    server.start()
    yield server
    server.stop()


def statuses(client: redis.Redis) -> list[str]:
    entries = client.xrange(keys.HEARTBEATS)
    beats = [wire.decode_entry(f, wire.Heartbeat) for _, f in entries]  # type: ignore[union-attr,arg-type]
    return [h.status for h in beats if h.source == "camera:street-1"]


@pytest.mark.timeout(150)
async def test_agent_follows_an_rtsp_camera_through_an_outage(
    vlc: VlcServer, redis_url: str, sync_redis: redis.Redis
) -> None:
    camera = cfg.parse(
        {
            "id": "street-1",
            "source": vlc.url,
            "lon": 114.05,
            "lat": 22.54,
            "analysis": {"person_min_height": 64, "person_max_height": 240},
            "rules": [{"type": "offline", "after": 1}],
        }
    )
    conf = agent.VideoSettings(
        redis_url=redis_url, heartbeat_s=1.0, frame_s=0.5, read_timeout_s=2.0, reconnect_max_s=2.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve([camera], conf, stop))
    try:
        await testing.until(lambda: "online" in statuses(sync_redis), within_s=40)
        sync_redis.delete(keys.camera_frame("street-1"))
        frame = await testing.until(lambda: sync_redis.get(keys.camera_frame("street-1")), 20)
        assert frame[:2] == b"\xff\xd8"  # frames are analysed and reach the camera wall

        vlc.stop()
        await testing.until(lambda: "offline" in statuses(sync_redis), within_s=40)
        alarms = await testing.until(lambda: testing.alarms(sync_redis), within_s=20)
        assert alarms[0].type == "camera_offline" and alarms[0].camera == "street-1"

        vlc.start()

        def back_online() -> bool:
            seen = statuses(sync_redis)
            return "online" in seen[seen.index("offline") :]

        await testing.until(back_online, within_s=60)
        sync_redis.delete(keys.camera_frame("street-1"))
        await testing.until(lambda: sync_redis.get(keys.camera_frame("street-1")), 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
