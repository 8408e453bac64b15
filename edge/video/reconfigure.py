"""Live reload of the video agent's cameras: the versioned configuration in Redis
(:mod:`polewatch.camera_configs`) is watched, and a camera runs a new version within about a
second, no restart. The agent's TOML file is rewritten with each version it applies, so a
restart runs the last edit (and an integrator's git diff shows it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edge.video import config as cfg
from polewatch import camera_configs

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How often the agent asks for newer versions (one pipelined HGET per camera)."""


class Reconfigurable(Protocol):
    """What the watcher needs of a camera worker."""

    config: cfg.CameraConfig
    version: int
    path: Path | None
    size: tuple[int, int] | None

    def reconfigure(self, config: cfg.CameraConfig, version: int) -> None: ...


async def publish_files(redis: aioredis.Redis, workers: Sequence[Reconfigurable]) -> None:
    """At start, each camera's file (or its parsed config) becomes its newest version."""
    for w in workers:
        text = w.path.read_text("utf-8") if w.path is not None else cfg.dumps(w.config)
        w.version = await camera_configs.save(redis, w.config.id, text, base=None, by="agent-start")


async def watch(
    redis: aioredis.Redis,
    workers: Sequence[Reconfigurable],
    stop: asyncio.Event,
    poll_s: float = POLL_S,
) -> None:
    """Apply newer stored versions until ``stop``; a version the agent cannot run is logged
    and skipped (the camera keeps its running version)."""
    by_id = {w.config.id: w for w in workers}
    refused: dict[str, int] = {}
    sized: set[str] = set()
    while not stop.is_set():
        try:
            for w in workers:
                if w.size is not None and w.config.id not in sized:
                    await camera_configs.report_size(redis, w.config.id, *w.size)
                    sized.add(w.config.id)
            stored = await camera_configs.versions(redis, list(by_id))
            for camera, version in stored.items():
                w = by_id[camera]
                newer = version > w.version and refused.get(camera) != version
                if newer and not await _apply(redis, w):
                    refused[camera] = version
        except (RedisError, OSError) as exc:
            log.warning("camera configs: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)


async def _apply(redis: aioredis.Redis, worker: Reconfigurable) -> bool:
    camera = worker.config.id
    stored = await camera_configs.read(redis, camera)
    if stored is None:
        return False
    try:
        config = cfg.loads(stored.toml, where=f"camera {camera} version {stored.version}")
        if config.id != camera:
            raise cfg.ConfigError(f"camera {camera} version {stored.version}: id: changed")
    except cfg.ConfigError as exc:
        log.error("not applied: %s", exc)
        return False
    worker.reconfigure(config, stored.version)
    log.info("camera %s: configuration version %d by %s", camera, stored.version, stored.by)
    if worker.path is not None:
        await asyncio.to_thread(_write_back, worker.path, stored.toml)
    return True


def _write_back(path: Path, text: str) -> None:
    """Replace the file atomically (a reader never sees half of it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("camera config %s not rewritten: %s", path, exc)
