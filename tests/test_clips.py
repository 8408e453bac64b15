"""Event clips: each video alarm names a clip from a few seconds before to a few after, stored
as H.264 MP4 in Redis with an expiry and a per-camera size budget, served to operators, and
played by Chromium itself in the console's incident detail."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import redis
from browser import CHROMIUM, launch

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from edge import testing
from edge.video import agent, clips, synthetic
from edge.video import config as cfg
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import bearer, gateway_client, operator_token
from polewatch import keys

HAS_CHROMIUM = CHROMIUM.exists()
OPERATOR = bearer(operator_token("ada"))
PASSWORD = "clips-of-the-night-2026"
CONSOLE = ConsoleSettings(users={"ada": Account(role="operator", password=hash_password(PASSWORD))})


def frame(i: int) -> np.ndarray[Any, Any]:
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, (i * 3) % 160] = 255  # a moving bar, so every frame differs
    return image


def h264(mp4: bytes) -> tuple[str, int]:
    """Codec and frame count of an MP4, read back by FFmpeg."""
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, len(list(container.decode(stream)))


def test_a_clip_spans_from_before_the_alarm_to_after_it_and_a_burst_shares_one() -> None:
    recorder = clips.ClipRecorder(pre_s=2.0, post_s=3.0, max_s=6.0)
    done: list[tuple[str, list[clips.Still]]] = []
    first = second = third = ""
    for i in range(150):  # 10 fps for 15 s
        ts = 100.0 + i / 10
        done += recorder.push(frame(i), ts)
        if i == 50:
            first = recorder.start("alarm-1", ts)
        if i == 60:  # still recording: the same clip, running longer
            second = recorder.start("alarm-2", ts)
        if i == 120:
            third = recorder.start("alarm-3", ts)
    assert (first, second, third) == ("alarm-1", "alarm-1", "alarm-3")
    assert [clip_id for clip_id, _ in done] == ["alarm-1"]  # alarm-3's is still recording
    times = [ts for ts, _ in done[0][1]]
    assert times[0] == pytest.approx(103.0) and times[-1] == pytest.approx(109.0)
    assert len(times) == 61


def test_a_clip_is_h264_mp4() -> None:
    stills = []
    recorder = clips.ClipRecorder(pre_s=1.0)
    for i in range(25):
        recorder.push(frame(i), i / 10)
    recorder.start("a", 2.4)
    stills = recorder._open.frames if recorder._open else []  # noqa: SLF001
    mp4 = clips.encode(stills)
    assert mp4[4:8] == b"ftyp"
    assert h264(mp4) == ("h264", len(stills))
    with pytest.raises(ValueError):
        clips.encode([])


async def test_a_camera_keeps_its_clips_within_its_budget_and_they_expire(aredis: Any) -> None:
    for n in range(4):
        await clips.store(aredis, "cam", f"c{n}", b"x" * 400, ttl_s=60, budget_bytes=1000)
    assert [await aredis.exists(keys.clip(f"c{n}")) for n in range(4)] == [0, 0, 1, 1]
    assert 0 < await aredis.ttl(keys.clip("c3")) <= 60
    assert await aredis.zcard(keys.camera_clips("cam")) == 2
    # a clip larger than the whole budget is still kept (it is the newest)
    dropped = await clips.store(aredis, "cam", "big", b"x" * 5000, ttl_s=60, budget_bytes=1000)
    assert dropped == ["c2", "c3"] and await aredis.exists(keys.clip("big"))


async def test_an_alarm_carries_a_clip_that_the_incident_detail_plays(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis
) -> None:
    frames = synthetic.scene([synthetic.walk((30, 200), (290, 200), 30)], lead=30)
    video = synthetic.write(tmp_path / "yard.avi", frames, fps=20)
    camera = cfg.parse({
        "id": "yard", "source": str(video), "lon": 114.0, "lat": 22.5,
        "analysis": {"fps": 20, "person_min_height": 20, "sweep": 0},
        "detector": {"kind": "motion"},
        "rules": [{"type": "tripwire", "name": "fence", "line": [[160, 100], [160, 239]],
                   "cooldown": 0}],
    })  # fmt: skip
    conf = agent.VideoSettings(redis_url=redis_url, clip_pre_s=1.0, clip_post_s=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve([camera], conf, stop))
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, block_ms=100))
    dispatching = asyncio.create_task(dispatcher.run())
    try:
        alarm = (await testing.until(lambda: testing.alarms(sync_redis), within_s=30))[0]
        assert alarm.clip is not None
        async with gateway_client(redis_url, console=CONSOLE) as client:
            url = f"/api/console/clips/{alarm.clip}"
            mp4 = await testing.until(lambda: sync_redis.get(keys.clip(alarm.clip)), within_s=20)
            codec, count = h264(mp4)
            assert codec == "h264" and count >= 20  # about 2 s at 20 fps
            served = await client.get(url, headers=OPERATOR)
            assert served.status == 200 and served.content_type == "video/mp4"
            assert await served.read() == mp4
            assert (await client.get("/api/console/clips/none", headers=OPERATOR)).status == 404
            assert (await client.get(url)).status == 401
            if HAS_CHROMIUM:
                await _incident_detail_plays(str(client.make_url("/console/")), alarm.clip)
    finally:
        dispatcher.stop()
        stop.set()
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(dispatching, 10)


async def _incident_detail_plays(console: str, clip: str) -> None:
    """An operator opens the incident in the console; its detail plays the alarm's clip."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as p:
        browser = await launch(p)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(console)
            await page.fill("#login-name", "ada")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
            await page.click("#queue li.q")
            video = page.locator(f'#alarms .clip video[src*="/clips/{clip}?"]')
            await video.wait_for()
            played = await video.evaluate(
                """v => new Promise((resolve) => {
                  const done = () => resolve([v.videoWidth, v.duration]);
                  if (v.readyState >= 2) done(); else v.addEventListener("loadeddata", done);
                  v.addEventListener("error", () => resolve(["error", v.error && v.error.code]));
                  v.play();
                })"""
            )
            assert played[0] == 320 and played[1] > 1.0, played  # the camera's own width
        finally:
            await browser.close()
