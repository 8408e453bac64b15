"""A patrol's refused answers, back on the unit's own sockets.

The gateway answers a unit's ``ack``, ``decline`` or progress report with ``ok`` once the
answer is on the patrol-event stream; the dispatcher's Function may still refuse it (the
incident was closed meanwhile, the dispatch was already acknowledged, the unit is no longer
assigned). A refusal is a dead letter of the zone's patrol-event stream with the reason.

One task per gateway process follows every zone's dead-letter stream (one blocking ``XREAD``,
one per hash slot on a Redis Cluster, as :mod:`gateway.console.live` does) and hands each
refused answer to :class:`gateway.inboxes.Inboxes`, which queues a ``refused`` frame
(:func:`gateway.frames.encode_refused`) to that unit's sockets in this process: no socket reads
Redis itself, and other units' sockets never see it. Dead letters are rare, so the reader is
a blocked connection nearly all the time.

The frames of the last :data:`RECENT_S` are kept in memory and sent again to a unit's socket
when it connects: a phone that lost coverage between its answer and the refusal still hears of
it. The app acts only on refusals of answers it sent and still holds as pending (the frame names
the answer's patrol-event ``entry``, the id its ``ok`` gave), so a refusal sent twice is shown
once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.crc import key_slot

from gateway import frames
from gateway.inboxes import Inboxes
from polewatch import keys, wire
from polewatch.connection import RETRY_ERRORS

log = logging.getLogger(__name__)

BLOCK_MS: Final = 5000
READ_COUNT: Final = 500
RECENT_S: Final = 600.0
"""How long a refusal is sent again to a unit's socket that connects."""
RECENT_MAX: Final = 2000

M = TypeVar("M", bound=wire.Message)


def refused(fields: Mapping[bytes, bytes], stream: str, kind: type[M]) -> tuple[M, str] | None:
    """The message of a dead letter of ``stream`` (a ``kind``) and the reason it was refused;
    ``None`` for a dead letter of another stream or of another kind of message."""
    if fields.get(b"stream") != stream.encode():
        return None
    try:
        message: M = wire.decode(fields.get(b"raw:m", b""), kind)
    except wire.WireError:
        return None
    return message, fields.get(b"reason", b"").decode(errors="replace")


def refused_answer(fields: Mapping[bytes, bytes], zone: keys.Zone) -> tuple[str, str] | None:
    """``(unit, frame)`` for a dead letter of ``zone``'s patrol-event stream that is a unit's
    answer (:class:`wire.PatrolStatus`); ``None`` for any other dead letter."""
    found = refused(fields, zone.patrol_events, wire.PatrolStatus)
    if found is None:
        return None
    answer, reason = found
    entry = fields.get(b"id", b"").decode(errors="replace")
    return answer.unit, frames.encode_refused(entry, answer.incident, answer.action, reason)


def slot_groups(names: Sequence[str], cluster: bool) -> list[list[str]]:
    """``names`` as one group, or one group per hash slot on a cluster (one ``XREAD`` each)."""
    if not cluster:
        return [list(names)]
    by_slot: dict[int, list[str]] = {}
    for name in names:
        by_slot.setdefault(key_slot(name.encode()), []).append(name)
    return list(by_slot.values())


class Refusals:
    """Follows the dead-letter streams of ``zones`` and pushes refused answers (module doc)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        inboxes: Inboxes,
        zones: Sequence[keys.Zone],
        *,
        cluster: bool = False,
    ) -> None:
        self.redis = redis
        self.inboxes = inboxes
        self.cluster = cluster
        self._zone_of = {zone.deadletter: zone for zone in zones}
        self._recent: collections.deque[tuple[float, str, str]] = collections.deque(
            maxlen=RECENT_MAX
        )
        self.ready = asyncio.Event()
        """Set once every stream is followed from a known position."""
        self.refused = 0
        """Refused answers seen (whether or not their unit is connected here)."""

    def recent(self, unit: str) -> list[str]:
        """The refusal frames of ``unit`` from the last :data:`RECENT_S`, oldest first."""
        since = time.monotonic() - RECENT_S
        return [frame for at, who, frame in self._recent if who == unit and at >= since]

    async def run(self) -> None:
        """Follow until cancelled."""
        groups = slot_groups(list(self._zone_of), self.cluster)
        starts = [await self._start(group) for group in groups]
        self.ready.set()
        await asyncio.gather(*(self._follow(start) for start in starts))

    async def _start(self, names: list[str]) -> dict[str, str]:
        """Each stream's last id, so an outage later skips nothing."""
        delay = 0.05
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.xrevrange(name, count=1)
                    lasts: list[Any] = await pipe.execute()
                found = zip(names, lasts, strict=True)
                return {name: last[0][0].decode() if last else "0" for name, last in found}
            except tuple(RETRY_ERRORS) as exc:
                log.warning("refusals: Redis unreachable (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _follow(self, streams: dict[str, str]) -> None:
        delay = 0.05
        while True:
            try:
                reply: Any = await self.redis.xread(
                    streams,  # type: ignore[arg-type]
                    count=READ_COUNT,
                    block=BLOCK_MS,
                )
            except tuple(RETRY_ERRORS) as exc:
                log.warning("refusals: lost Redis (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            for stream, entries in reply or ():
                name = stream.decode() if isinstance(stream, bytes) else stream
                streams[name] = entries[-1][0].decode()
                for _, fields in entries:
                    self._take(fields, self._zone_of[name])

    def _take(self, fields: Mapping[bytes, bytes], zone: keys.Zone) -> None:
        found = refused_answer(fields, zone)
        if found is None:
            return
        unit, frame = found
        self.refused += 1
        self._recent.append((time.monotonic(), unit, frame))
        self.inboxes.send(unit, frame)
