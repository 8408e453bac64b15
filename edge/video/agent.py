"""``polewatch edge video``: camera workers in threads, alarms and health to Redis.

Each camera runs a :class:`CameraWorker` thread (plus its capture thread): it analyses the
latest frame, turns rule events into :class:`~polewatch.wire.Alarm` with a JPEG snapshot
(boxes drawn), and hands alarms, heartbeats and the latest frame to a :class:`Sink`. The
asyncio side only owns the :class:`~edge.publisher.AlarmPublisher` and the stop signal; no
OpenCV call runs on the event loop. One ``threading.Event`` stops every stage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import msgspec
import redis.asyncio as aioredis

from edge import lifecycle
from edge.publisher import AlarmPublisher
from edge.spool import FileSpool, MemorySpool
from edge.video import clips, pipeline, reconfigure
from edge.video import config as cfg
from edge.video.boxes import Box
from edge.video.capture import Capture
from edge.video.motion import Frame
from edge.video.scene import Event
from edge.video.snapshot import annotate, jpeg
from polewatch import connection, settings, wire
from polewatch.alarmtexts import CAMERA_RULES
from polewatch.poles.registry import PoleRegistry

log = logging.getLogger(__name__)


class VideoSettings(settings.Settings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[video]`` section of the polewatch settings file."""

    spool_dir: str = ""
    """Directory of the on-disk spool (alarms kept while Redis is away); empty: in memory."""
    heartbeat_s: float = 10.0
    frame_s: float = 0.3
    """Seconds between two frames sent to the camera wall (which polls a few a second)."""
    frame_width: int = 480
    read_timeout_s: float = 5.0
    """A stream with no frame for this long is stalled (and reconnected)."""
    reconnect_max_s: float = 30.0
    """Cap of the exponential backoff between reconnection attempts."""
    clips: bool = True
    """Keep an event clip (H.264 MP4) of each video alarm."""
    clip_pre_s: float = 5.0
    clip_post_s: float = 10.0
    clip_width: int = 640
    clip_ttl_s: int = 3 * 24 * 3600
    clip_budget_mb: float = 64.0
    """Redis memory the clips of one camera may take; the oldest go first."""


@dataclass(frozen=True)
class Place:
    """Where the camera stands, copied onto every alarm."""

    lon: float
    lat: float
    pole: str | None = None
    district: str | None = None
    grid: str | None = None


class Sink(Protocol):
    """Where a camera worker's output goes; every method is called from worker threads."""

    def alarm(self, alarm: wire.Alarm, snapshot: bytes | None) -> None: ...
    def heartbeat(self, hb: wire.Heartbeat) -> None: ...
    def frame(self, camera_id: str, jpeg: bytes) -> None: ...
    def clip(self, camera_id: str, clip_id: str, frames: list[clips.Still]) -> None: ...


class PublisherSink:
    """A :class:`Sink` over the edge's store-and-forward :class:`AlarmPublisher`."""

    def __init__(self, publisher: AlarmPublisher, writer: clips.ClipWriter | None = None) -> None:
        self.publisher = publisher
        self.writer = writer

    def alarm(self, alarm: wire.Alarm, snapshot: bytes | None) -> None:
        self.publisher.submit(alarm, snapshot=snapshot)

    def heartbeat(self, hb: wire.Heartbeat) -> None:
        self.publisher.submit_heartbeat(hb)

    def frame(self, camera_id: str, jpeg: bytes) -> None:
        self.publisher.submit_frame(camera_id, jpeg)

    def clip(self, camera_id: str, clip_id: str, frames: list[clips.Still]) -> None:
        if self.writer is not None:
            self.writer.submit(camera_id, clip_id, frames)


def to_alarm(config: cfg.CameraConfig, place: Place, event: Event) -> wire.Alarm:
    """The wire alarm of one rule event."""
    track = f"-t{event.track}" if event.track is not None else ""
    extra: dict[str, str | int | float | bool] = {
        k: v for k, v in event.detail.items() if isinstance(v, str | int | float | bool)
    }
    extra["frame"] = event.frame
    return wire.Alarm(
        id=f"cam-{config.id}-{event.name}-{int(event.ts * 1000)}{track}",
        type=CAMERA_RULES[event.rule],
        source=f"camera:{config.id}",
        ts=event.ts,
        lon=place.lon,
        lat=place.lat,
        pole=place.pole,
        district=place.district,
        grid=place.grid,
        camera=config.id,
        rule=event.name,
        track=event.track,
        text=f"{event.rule} {event.name}" + (f" track {event.track}" if track else ""),
        extra=extra,
    )


class CameraWorker:
    """One camera: capture thread + analysis thread, until ``stop`` is set."""

    def __init__(
        self,
        config: cfg.CameraConfig,
        place: Place,
        sink: Sink,
        stop: threading.Event,
        conf: VideoSettings,
        path: Path | None = None,
    ) -> None:
        self.config, self.place, self.sink, self.stop, self.conf = config, place, sink, stop, conf
        self.path = path
        """The camera's TOML file (rewritten with each configuration version applied)."""
        self.version = 0
        """The configuration version running (``keys.camera_config``); 0: not published."""
        self.size: tuple[int, int] | None = None
        self._pending: tuple[cfg.CameraConfig, int] | None = None
        self._lock = threading.Lock()
        self.analyzer = pipeline.build(config)
        self.clips = (
            clips.ClipRecorder(conf.clip_pre_s, conf.clip_post_s, conf.clip_width)
            if conf.clips
            else None
        )
        self.capture = Capture(
            config.source,
            stop=stop,
            on_status=self._on_status,
            read_timeout_s=conf.read_timeout_s,
            open_timeout_s=max(conf.read_timeout_s, 5.0),
            backoff_s=(0.5, conf.reconnect_max_s),
            name=f"capture:{config.id}",
        )
        self.alarms = 0
        self._thread = threading.Thread(target=self._run, name=f"camera:{config.id}", daemon=True)

    def start(self) -> CameraWorker:
        self.capture.start()
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        self.capture.join(timeout)

    def reconfigure(self, config: cfg.CameraConfig, version: int) -> None:
        """Run ``config`` from the next frame on (thread-safe). Zones, lines, rules, detector
        and analysis change at once (tracks and rule state start afresh); the source and the
        place stay those of the start."""
        with self._lock:
            self._pending = (config, version)

    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            config, version = pending
            self.analyzer = pipeline.build(config)
            self.config, self.version = config, version
            self._heartbeat(self.capture.status, self.capture.fps)

    def _heartbeat(self, status: str, fps: float, detail: str = "") -> None:
        hb = wire.Heartbeat(
            source=f"camera:{self.config.id}",
            kind="camera",
            status=status,  # type: ignore[arg-type]
            ts=time.time(),
            fps=round(fps, 2),
            detail=detail or None,
            pole=self.place.pole,
            config_version=self.version or None,
        )
        self.sink.heartbeat(hb)

    def _on_status(self, status: str, fps: float, detail: str) -> None:
        self._heartbeat(status, fps, detail)

    def _run(self) -> None:
        interval = 1.0 / self.config.analysis.fps
        next_hb = next_frame = 0.0
        last_analysed = 0.0
        index = 0
        while not self.stop.is_set():
            self._take_pending()
            grabbed = self.capture.latest(timeout=0.5)
            now = time.monotonic()
            if now >= next_hb:
                next_hb = now + self.conf.heartbeat_s
                self._heartbeat(self.capture.status, self.capture.fps)
            if grabbed is None:
                self._emit(self.analyzer.status(self.capture.status, index, time.time()), None)
                continue
            if now - last_analysed < interval * 0.9:
                continue  # the camera sends more frames than the analysis wants
            last_analysed = now
            if self.size is None:
                self.size = (grabbed.image.shape[1], grabbed.image.shape[0])
            result = self.analyzer.analyse(grabbed.image, grabbed.index, grabbed.ts)
            index = grabbed.index
            if self.clips is not None:
                still = annotate(grabbed.image, result.boxes, width=self.conf.clip_width)
                for clip_id, stills in self.clips.push(still, grabbed.ts):
                    self.sink.clip(self.config.id, clip_id, stills)
            self._emit(result.events, grabbed.image, result.boxes)
            if now >= next_frame:
                next_frame = now + self.conf.frame_s
                small = annotate(grabbed.image, result.boxes, width=self.conf.frame_width)
                self.sink.frame(self.config.id, jpeg(small, quality=70))

    def _emit(
        self, events: Sequence[Event], image: Frame | None, boxes: Sequence[Box] = ()
    ) -> None:
        for event in events:
            snapshot = None
            if image is not None:
                marked = [event.box] if event.box is not None else []
                snapshot = jpeg(annotate(image, list(boxes), highlight=marked, width=640))
            alarm = to_alarm(self.config, self.place, event)
            if image is not None and self.clips is not None:
                clip = self.clips.start(alarm.id, event.ts)
                alarm = msgspec.structs.replace(alarm, clip=clip)
            self.sink.alarm(alarm, snapshot)
            self.alarms += 1
            log.info("camera %s: %s alarm %s", self.config.id, alarm.type, alarm.id)


async def locate(config: cfg.CameraConfig, client: aioredis.Redis, city: str) -> Place:
    """The camera's place: its pole from the registry, else the lon/lat of its config."""
    if config.pole is not None:
        pole = await PoleRegistry(client, city).get(config.pole)
        if pole is not None:
            return Place(
                pole.lon,
                pole.lat,
                pole.code,
                config.district or pole.district,
                config.grid or pole.grid,
            )
    if config.lon is None or config.lat is None:
        raise cfg.ConfigError(
            f"camera {config.id}: pole: {config.pole!r} is not in the {city} registry and the "
            "config has no lon/lat"
        )
    return Place(config.lon, config.lat, config.pole, config.district, config.grid)


async def serve(
    configs: Sequence[cfg.CameraConfig],
    conf: VideoSettings,
    stop: asyncio.Event | None = None,
    paths: Sequence[Path | None] = (),
) -> None:
    """Run the cameras until ``stop`` (or SIGINT/SIGTERM); drain the publisher on the way out.
    Each camera's configuration is published to Redis and newer versions saved there are
    applied live; ``paths`` (the configs' files, in order) are rewritten with them."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (ValueError, RuntimeError):  # not the main thread (tests)
            break
    spool = FileSpool(Path(conf.spool_dir)) if conf.spool_dir else MemorySpool()
    halt = threading.Event()
    publisher = AlarmPublisher.from_settings(conf, name="video-agent", spool=spool)
    async with publisher:
        client = connection.connect(
            conf.redis_url, name="video-agent:config", cluster=conf.redis_cluster
        )
        try:
            places = [await locate(c, client, conf.city) for c in configs]
            writer = clips.ClipWriter(
                client,
                loop,
                ttl_s=conf.clip_ttl_s,
                budget_bytes=round(conf.clip_budget_mb * 1024 * 1024),
            )
            sink = PublisherSink(publisher, writer)
            files = list(paths) + [None] * (len(configs) - len(paths))
            workers = [
                CameraWorker(c, p, sink, halt, conf, f)
                for c, p, f in zip(configs, places, files, strict=True)
            ]
            await reconfigure.publish_files(client, workers)
        except BaseException:
            await client.aclose()
            raise
        for w in workers:
            w.start()
        watcher = asyncio.create_task(reconfigure.watch(client, workers, stop))
        try:
            await stop.wait()
        finally:
            await lifecycle.cancel([watcher])
            halt.set()
            await asyncio.to_thread(_join_all, workers)
            await asyncio.to_thread(writer.close)
            await client.aclose()
            for w in workers:
                await publisher.heartbeat(
                    wire.Heartbeat(
                        source=f"camera:{w.config.id}",
                        kind="camera",
                        status="stopping",
                        ts=time.time(),
                        pole=w.place.pole,
                    )
                )


def _join_all(workers: Sequence[CameraWorker]) -> None:
    for w in workers:
        w.join(10.0)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``polewatch edge video``."""
    import sys

    from polewatch import logs

    cameras: list[str] = args.camera
    overrides = {"redis_url": args.redis_url} if getattr(args, "redis_url", None) else {}
    try:
        conf = settings.load(
            VideoSettings,
            section="video",
            config_file=getattr(args, "config", None),
            overrides=overrides,
        )
        configs = [cfg.load(path) for path in cameras]
        paths: list[Path | None] = [Path(path) for path in cameras]
    except (settings.SettingsError, cfg.ConfigError) as exc:
        print(f"polewatch edge video: {exc}", file=sys.stderr)
        return 2
    logs.setup("video-agent", conf.log_level)
    cv2.setNumThreads(1)
    try:
        asyncio.run(serve(configs, conf, paths=paths))
    except cfg.ConfigError as exc:
        print(f"polewatch edge video: {exc}", file=sys.stderr)
        return 2
    return 0
