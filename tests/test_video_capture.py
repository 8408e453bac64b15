"""Capture from an HTTP MJPEG camera (served by aiohttp on loopback, as many IP cameras do):
frames arrive with a measured rate, a dropped server is reported and reconnected to."""

from __future__ import annotations

import asyncio
import threading

import cv2
from aiohttp import web

from edge import testing
from edge.video import synthetic
from edge.video.capture import Capture

BOUNDARY = "frame"


async def start_mjpeg_server(port: int = 0) -> tuple[web.AppRunner, int]:
    scene = synthetic.scene([synthetic.walk((40, 150), (280, 150), 40)], lead=5)
    jpegs = [cv2.imencode(".jpg", img)[1].tobytes() for img in scene]

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        i = 0
        while True:
            data = jpegs[i % len(jpegs)]
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            await response.write(head.encode() + data + b"\r\n")
            i += 1
            await asyncio.sleep(0.04)  # time is the subject: a 25 fps camera's frame interval

    app = web.Application()
    app.router.add_get("/video.mjpg", stream)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound


async def test_mjpeg_camera_frames_outage_and_reconnect() -> None:
    runner, port = await start_mjpeg_server()
    stop = threading.Event()
    statuses: list[str] = []
    capture = Capture(
        f"http://127.0.0.1:{port}/video.mjpg",
        stop=stop,
        on_status=lambda status, fps, detail: statuses.append(status),
        read_timeout_s=1.0,
        open_timeout_s=2.0,
        backoff_s=(0.2, 1.0),
    ).start()
    try:
        grabbed = await asyncio.to_thread(capture.latest, 10.0)
        assert grabbed is not None and grabbed.image.shape == (240, 320, 3)
        await testing.until(lambda: capture.fps > 10, within_s=10)
        assert statuses == ["online"]

        await runner.cleanup()
        await testing.until(lambda: "offline" in statuses, within_s=20)
        assert capture.fps == 0.0 or capture.status != "online"

        runner, _ = await start_mjpeg_server(port)
        await testing.until(lambda: statuses[-1] == "online" and len(statuses) >= 3, 20)
        again = await asyncio.to_thread(capture.latest, 10.0)
        assert again is not None and again.index > grabbed.index
        assert capture.reconnects >= 1
    finally:
        stop.set()
        await asyncio.to_thread(capture.join, 10.0)
        await runner.cleanup()
    assert not capture.is_alive()
