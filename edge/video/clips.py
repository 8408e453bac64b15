"""Event clips: a few seconds before and after each video alarm, as H.264 MP4 (Chromium plays
it natively), kept in Redis beside the snapshot with an expiry and a size budget per camera.

:class:`ClipRecorder` keeps the last ``pre_s`` seconds of analysed frames (JPEG, small) in a
ring; an alarm opens a clip (or joins the one still recording, so a burst of alarms shares
one clip) that closes ``post_s`` seconds later. The agent names the clip on the alarm at once
(``Alarm.clip``) and stores it when it closes; until then the console says it is recording.
:func:`encode` writes the MP4 with PyAV's FFmpeg/x264 (see :class:`annotate.VideoWriter`);
:func:`store` keeps a camera's clips under ``budget_bytes``, dropping the oldest.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import redis.asyncio as aioredis

from edge.video.annotate import VideoWriter
from edge.video.motion import Frame
from polewatch import keys

log = logging.getLogger(__name__)

Still = tuple[float, bytes]
"""One recorded frame: its time and its JPEG."""


@dataclass
class _Open:
    id: str
    end: float
    stop_by: float
    frames: list[Still] = field(default_factory=list)


class ClipRecorder:
    """The ring of recent frames and the clips being recorded, for one camera (one thread)."""

    def __init__(
        self, pre_s: float = 5.0, post_s: float = 10.0, width: int = 640, max_s: float = 30.0
    ) -> None:
        self.pre_s, self.post_s, self.width, self.max_s = pre_s, post_s, width, max_s
        self._ring: collections.deque[Still] = collections.deque()
        self._open: _Open | None = None

    def push(self, image: Frame, ts: float) -> list[tuple[str, list[Still]]]:
        """Record one frame; returns the clips it completes (id and frames)."""
        h, w = image.shape[:2]
        if w > self.width:
            size = (self.width, round(h * self.width / w))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return []
        still = (ts, bytes(buf))
        self._ring.append(still)
        while self._ring and self._ring[0][0] < ts - self.pre_s:
            self._ring.popleft()
        done = []
        if self._open is not None:
            self._open.frames.append(still)
            if ts >= self._open.end:
                done.append((self._open.id, self._open.frames))
                self._open = None
        return done

    def start(self, clip_id: str, ts: float) -> str:
        """An alarm at ``ts``: the id of the clip that will show it (a clip still recording is
        extended, up to ``max_s`` long, rather than a second one started)."""
        if self._open is not None:
            self._open.end = min(max(self._open.end, ts + self.post_s), self._open.stop_by)
            return self._open.id
        first = self._ring[0][0] if self._ring else ts
        self._open = _Open(clip_id, ts + self.post_s, first + self.max_s, list(self._ring))
        return clip_id


def encode(frames: list[Still]) -> bytes:
    """The frames as an H.264 MP4 (a frame rate measured from their times)."""
    if not frames:
        raise ValueError("a clip needs at least one frame")
    span = frames[-1][0] - frames[0][0]
    fps = min(60.0, max(1.0, (len(frames) - 1) / span)) if span > 0 else 10.0
    decoded = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for _, jpeg in frames]
    images = [image for image in decoded if image is not None]
    if not images:
        raise ValueError("no frame of the clip decodes")
    h, w = images[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="pw-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoWriter(path, fps, (w, h)) as writer:
            for image in images:
                if image.shape[:2] == (h, w):
                    writer.write(image)
        return path.read_bytes()


async def store(
    redis: aioredis.Redis,
    camera: str,
    clip_id: str,
    mp4: bytes,
    *,
    ttl_s: int,
    budget_bytes: int,
) -> list[str]:
    """Keep the clip for ``ttl_s`` and the camera's clips within ``budget_bytes`` (the oldest
    go first); returns the ids dropped for the budget."""
    now = time.time()
    index = keys.camera_clips(camera)
    await redis.set(keys.clip(clip_id), mp4, ex=ttl_s)
    await redis.zadd(index, {f"{clip_id}:{len(mp4)}": now})
    await redis.zremrangebyscore(index, "-inf", now - ttl_s)
    await redis.expire(index, ttl_s)
    members: Any = await redis.zrange(index, 0, -1)
    sizes = [(m.decode().rpartition(":")[0], int(m.decode().rpartition(":")[2])) for m in members]
    total = sum(size for _, size in sizes)
    dropped = []
    for (old, size), member in zip(sizes, members, strict=True):
        if total <= budget_bytes or old == clip_id:
            break
        await redis.delete(keys.clip(old))
        await redis.zrem(index, member)
        total -= size
        dropped.append(old)
    return dropped


class ClipWriter:
    """Encodes finished clips on its own thread (never the analysis thread, never the event
    loop) and stores them through the agent's event loop. A clip that cannot be stored (Redis
    away) is logged and dropped: clips are not spooled, the alarm and its snapshot are."""

    def __init__(
        self,
        redis: aioredis.Redis,
        loop: asyncio.AbstractEventLoop,
        *,
        ttl_s: int,
        budget_bytes: int,
    ) -> None:
        self.redis, self.loop, self.ttl_s, self.budget_bytes = redis, loop, ttl_s, budget_bytes
        self.stored = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clips")

    def submit(self, camera: str, clip_id: str, frames: list[Still]) -> None:
        """Encode and store one clip, later (thread-safe)."""
        self._pool.submit(self._write, camera, clip_id, frames)

    def close(self) -> None:
        """Finish the clips handed over so far (call it off the event loop)."""
        self._pool.shutdown(wait=True)

    def _write(self, camera: str, clip_id: str, frames: list[Still]) -> None:
        try:
            mp4 = encode(frames)
            stored = asyncio.run_coroutine_threadsafe(
                store(self.redis, camera, clip_id, mp4, ttl_s=self.ttl_s,
                      budget_bytes=self.budget_bytes),
                self.loop,
            )  # fmt: skip
            stored.result(timeout=30)
            self.stored += 1
            log.info("camera %s: clip %s (%d frames, %d bytes)", camera, clip_id,
                     len(frames), len(mp4))  # fmt: skip
        except Exception as exc:  # one bad clip must not stop the next
            log.warning("camera %s: clip %s not stored: %s", camera, clip_id, exc)
