"""Versioned camera configurations in Redis: the contract between the configuration API (which
saves an operator's edit) and the video agent (which runs it within seconds, no restart).

One hash per camera (``keys.camera_config``): ``version`` only grows, ``toml`` is the camera's
TOML file as the agent should run it. A save names the version it edited (``base``); when
somebody saved in between, :class:`VersionConflict` says so instead of losing their edit.
The agent publishes its file at start (``base=None``: whatever is there), so a restart runs
the file, which the agent rewrites on every applied edit (see docs/edge-agents.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from polewatch import keys

SAVE: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {0, current}
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'toml', ARGV[2], 'by', ARGV[3], 'ts', ARGV[4])
return {1, version}
"""


class VersionConflict(Exception):
    """Somebody saved the camera's configuration since the version the edit started from."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the configuration changed meanwhile (now version {current})")
        self.current = current


@dataclass(frozen=True)
class Stored:
    """A camera's configuration as stored."""

    version: int
    toml: str
    by: str = ""
    ts: float = 0.0
    size: tuple[int, int] | None = None
    """Width and height of the camera's frames, once its agent has seen one."""


async def save(redis: aioredis.Redis, camera: str, toml: str, *, base: int | None, by: str) -> int:
    """Store ``toml`` as the camera's next version and return it; ``base`` is the version the
    edit started from (None: save whatever is stored)."""
    script = redis.register_script(SAVE)
    args = ["" if base is None else str(base), toml, by, f"{time.time():.3f}"]
    ok, version = await script(keys=[keys.camera_config(camera)], args=args)
    if not int(ok):
        raise VersionConflict(int(version))
    return int(version)


async def read(redis: aioredis.Redis, camera: str) -> Stored | None:
    """The camera's stored configuration, None if it has none."""
    raw: dict[Any, Any] = await redis.hgetall(keys.camera_config(camera))
    if not raw or b"version" not in raw or b"toml" not in raw:
        return None
    size = None
    w, _, h = raw.get(b"size", b"").decode(errors="replace").partition("x")
    if w.isdigit() and h.isdigit():
        size = (int(w), int(h))
    return Stored(
        int(raw[b"version"]),
        raw[b"toml"].decode(errors="replace"),
        raw.get(b"by", b"").decode(errors="replace"),
        float(raw.get(b"ts", b"0") or 0),
        size,
    )


async def versions(redis: aioredis.Redis, cameras: list[str]) -> dict[str, int]:
    """The stored version of each camera that has one (one round trip per slot)."""
    async with redis.pipeline(transaction=False) as pipe:
        for camera in cameras:
            pipe.hget(keys.camera_config(camera), "version")
        found: list[Any] = await pipe.execute()
    return {c: int(v) for c, v in zip(cameras, found, strict=True) if v is not None}


async def report_size(redis: aioredis.Redis, camera: str, width: int, height: int) -> None:
    """The agent tells the editor the size of the camera's frames (config coordinates)."""
    await redis.hset(keys.camera_config(camera), "size", f"{width}x{height}")
