"""Reading the audit streams in bounded chunks, oldest first.

A deployment without zones has one audit stream (:data:`polewatch.keys.AUDIT`); a zoned one
has one per zone, on whichever shard holds the zone. The zones' streams are read side by side,
one pipelined XRANGE per round for the streams whose chunk is used up, and merged by stream
id, so the events still come oldest first and no command ever spans two zones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as aioredis

from polewatch import keys, wire
from polewatch.zones import ZoneMap

CHUNK: Final = 1000
"""Entries per XRANGE call: memory stays bounded however long the streams are."""

_Entry = tuple[tuple[int, int], Any]


async def audit_events(
    redis: aioredis.Redis,
    start: float,
    end: float | None = None,
    *,
    chunk: int = CHUNK,
    zones: ZoneMap | None = None,
) -> AsyncIterator[wire.IncidentEvent]:
    """The incident events appended to the audit streams of every zone of ``zones`` (none:
    the one stream of a deployment without zones) from ``start`` (Unix seconds) up to ``end``
    (exclusive; ``None``: the end of the streams), oldest first, read ``chunk`` entries of a
    stream at a time.

    The dispatcher stamps entries with the server clock (the stream id's milliseconds are the
    event's ``ts``), so the id range selects the time range. Entries that do not decode are
    skipped: the reader reports what it can read.
    """
    streams = [z.audit for z in zones.all_keys()] if zones is not None else [keys.AUDIT]
    low = f"{max(0, math.floor(start * 1000))}-0"
    high = "+" if end is None else f"({max(0, math.ceil(end * 1000))}-0"
    cursor = dict.fromkeys(streams, low)
    more = set(streams)
    """Streams that may hold entries beyond what was read."""
    ahead: dict[str, deque[_Entry]] = {s: deque() for s in streams}
    while True:
        empty = [s for s in streams if s in more and not ahead[s]]
        if empty:
            replies = await _read(redis, empty, cursor, high, chunk)
            for stream, entries in zip(empty, replies, strict=True):
                if len(entries) < chunk:
                    more.discard(stream)
                if entries:
                    cursor[stream] = "(" + _text(entries[-1][0])
                ahead[stream].extend((_order(i), f) for i, f in entries)
        live = [s for s in streams if ahead[s]]
        # An entry can go out only while every stream that may have more has one ahead to
        # compare with: the next older one could be there.
        while live and all(ahead[s] for s in more):
            stream = min(live, key=lambda s: ahead[s][0][0])
            _, fields = ahead[stream].popleft()
            if not ahead[stream]:
                live.remove(stream)
            try:
                event = wire.decode_entry(fields, wire.IncidentEvent)
            except wire.WireError:
                continue
            yield event
        if not live and not more:
            return


async def _read(
    redis: aioredis.Redis, streams: list[str], cursor: dict[str, str], high: str, chunk: int
) -> list[list[Any]]:
    if len(streams) == 1:
        stream = streams[0]
        return [await redis.xrange(stream, min=cursor[stream], max=high, count=chunk) or []]
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrange(stream, min=cursor[stream], max=high, count=chunk)
        return [r or [] for r in await pipe.execute()]


def _order(entry_id: Any) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
