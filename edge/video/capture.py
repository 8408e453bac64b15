"""Frame sources: RTSP / HTTP(S) MJPEG URLs, files and local devices through OpenCV.

:class:`Capture` reads in its own thread and keeps only the latest frame, so a slow analysis
never lets a live stream's buffer grow stale. When the source cannot be opened, drops or stalls
(no frame within ``read_timeout_s``) it reconnects with exponential backoff, and reports each
change of status (``online``, ``stalled``, ``offline``) with the measured frame rate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from edge.video.motion import Frame

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, float, str], None]
"""``(status, measured fps, detail)``, called from the capture thread."""


@dataclass
class Grabbed:
    """One frame as captured: its running index (per capture) and wall-clock time."""

    index: int
    ts: float
    image: Frame


def open_source(source: str, *, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """A ``cv2.VideoCapture`` for a URL, a file, or a device (``0``, ``/dev/video0``)."""
    if source.isdigit():
        return cv2.VideoCapture(int(source))
    if source.startswith("/dev/video"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000),
    ]  # fmt: skip
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)


def is_file(source: str) -> bool:
    return "://" not in source and not source.isdigit() and not source.startswith("/dev/video")


class Capture:
    """The capture thread of one camera. ``start()``, then ``latest()`` from the analysis side;
    ``stop`` (an event shared with every stage) ends it.

    A file source plays at its own frame rate and starts over at its end (a camera that never
    stops, for demos and simulators).
    """

    def __init__(
        self,
        source: str,
        *,
        stop: threading.Event,
        on_status: StatusCallback | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        name: str = "capture",
    ) -> None:
        self.source = source
        self.stop = stop
        self.on_status = on_status
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff_s = backoff_s
        self.status = "offline"
        self.reconnects = 0
        self._times: deque[float] = deque(maxlen=50)
        self._latest: Grabbed | None = None
        self._cond = threading.Condition()
        self._index = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def fps(self) -> float:
        """Frames per second measured over the last frames (0 when none lately)."""
        times = list(self._times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def latest(self, timeout: float) -> Grabbed | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s; None if none came."""
        with self._cond:
            if self._latest is None:
                self._cond.wait(timeout)
            grabbed, self._latest = self._latest, None
            return grabbed

    def _set_status(self, status: str, detail: str = "") -> None:
        if status == self.status:
            return
        self.status = status
        log.info("camera source %s: %s %s", self.source, status, detail)
        if self.on_status is not None:
            self.on_status(status, self.fps, detail)

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self.stop.is_set():
            cap = open_source(
                self.source, open_timeout_s=self.open_timeout_s, read_timeout_s=self.read_timeout_s
            )
            try:
                if not cap.isOpened():
                    self._set_status("offline", "cannot open the source")
                else:
                    got = self._read(cap)
                    if got:
                        delay = self.backoff_s[0]
                    if self.stop.is_set():
                        break
                    if is_file(self.source) and got:
                        continue  # the end of a file: play it again
                    self._set_status("stalled" if got else "offline", "no frame")
            finally:
                cap.release()
            self.reconnects += 1
            if self.stop.wait(delay):
                break
            delay = min(self.backoff_s[1], delay * 2)

    def _read(self, cap: cv2.VideoCapture) -> int:
        """Read until the stream ends or stalls; returns the number of frames read."""
        pace = 0.0
        if is_file(self.source):
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            pace = 1.0 / fps if 0.5 < fps < 500 else 0.1
        got = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                return got
            now = time.monotonic()
            got += 1
            self._times.append(now)
            with self._cond:
                self._latest = Grabbed(self._index, time.time(), image)
                self._index += 1
                self._cond.notify_all()
            if got == 1 or self.status != "online":
                self._set_status("online")
            if pace:
                next_at = max(next_at + pace, now - 1.0)
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    break
        return got
