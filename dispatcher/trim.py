"""Trimming the input streams, only behind the slowest consumer group.

An entry may go once *every* consumer group on its stream is done with it: it was delivered
(its id is at or below the group's ``last-delivered-id``) and it is no longer pending (below the
smallest id in the group's pending list). The cut is the smallest of those bounds over all
groups, also never newer than ``keep_s`` seconds ago (a window kept for forensics and replay).
``XTRIM MINID ~`` then drops whole radix-tree nodes below the cut only, so it never removes an
entry at or above it. A stream without a consumer group is never trimmed: who reads it is
unknown.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

EVERY_S: Final = 10.0
"""How often a dispatcher replica trims (any replica may; trimming twice is harmless)."""
KEEP_S: Final = 3600.0
"""Entries younger than this stay, even when every group is done with them."""


def _id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def safe_cut(redis: aioredis.Redis, stream: str, keep_s: float = KEEP_S) -> str | None:
    """The id below which no group of ``stream`` needs an entry (None: trim nothing)."""
    try:
        groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    if not groups:
        return None
    bounds = [(int((time.time() - keep_s) * 1000), 0)]
    for group in groups:
        # Entries after last-delivered were never read by this group: keep them.
        delivered = _id(group["last-delivered-id"])
        bounds.append((delivered[0], delivered[1] + 1))
        if group["pending"]:
            summary: dict[str, Any] = await redis.xpending(stream, group["name"])
            # The group may have acknowledged everything since XINFO GROUPS (min is then
            # None): its delivered bound, read earlier and so no newer, still holds.
            if summary["min"] is not None:
                bounds.append(_id(summary["min"]))
    ms, seq = min(bounds)
    return f"{ms}-{seq}"


async def trim_behind_groups(
    redis: aioredis.Redis, streams: Iterable[str], keep_s: float = KEEP_S
) -> dict[str, int]:
    """Trim each of ``streams`` behind its slowest group; entries removed per stream."""
    removed = {}
    for stream in streams:
        cut = await safe_cut(redis, stream, keep_s)
        if cut is not None:
            removed[stream] = int(await redis.xtrim(stream, minid=cut, approximate=True))
    return removed
