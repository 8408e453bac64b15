"""Reading the audit stream in bounded chunks, oldest first."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as aioredis

from polewatch import keys, wire

CHUNK: Final = 1000
"""Entries per XRANGE call: memory stays bounded however long the stream is."""


async def audit_events(
    redis: aioredis.Redis,
    start: float,
    end: float | None = None,
    *,
    chunk: int = CHUNK,
) -> AsyncIterator[wire.IncidentEvent]:
    """The incident events appended to the audit stream from ``start`` (Unix seconds) up to
    ``end`` (exclusive; ``None``: the end of the stream), read ``chunk`` entries at a time.

    The dispatcher stamps entries with the server clock (the stream id's milliseconds are the
    event's ``ts``), so the id range selects the time range. Entries that do not decode are
    skipped: the reader reports what it can read.
    """
    low = f"{max(0, math.floor(start * 1000))}-0"
    high = "+" if end is None else f"({max(0, math.ceil(end * 1000))}-0"
    while True:
        entries: list[Any] = await redis.xrange(keys.AUDIT, min=low, max=high, count=chunk) or []
        for _id, fields in entries:
            try:
                event = wire.decode_entry(fields, wire.IncidentEvent)
            except wire.WireError:
                continue
            yield event
        if len(entries) < chunk:
            return
        low = "(" + (
            entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else str(entries[-1][0])
        )
