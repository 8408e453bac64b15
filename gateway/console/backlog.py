"""Is dispatch keeping up? The command centre's warning when it is not.

Alarms, patrol answers and operators' commands reach the dispatchers through each zone's
streams (:attr:`polewatch.keys.Zone.streams`). When no dispatcher reads them (all replicas
down, a zone nobody was started for, a dispatcher stuck on a dead Redis connection) nothing
on the operations screen changes: no incident appears while citizens press buttons. So the
console's live feed checks, every ``dispatch_check_s`` while a console listens, how long the
oldest entry of each stream has waited for the ``dispatchers`` group (read by nobody yet, or
read and not acknowledged: a replica that died holding it), and every console shows a warning
while one has waited longer than ``dispatch_alert_s`` (``[gateway.console]``).

One reading costs a few commands per zone (``XINFO GROUPS``, and ``XPENDING`` / ``XRANGE``
only for a stream with work waiting), made by one task per gateway process whatever the
number of consoles, and only while a console listens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec
import redis.asyncio as aioredis

from polewatch import keys, operations
from polewatch.connection import RETRY_ERRORS

log = logging.getLogger(__name__)

KINDS: Final = ("alarms", "patrol", "commands")
"""What waits, in the order of :attr:`polewatch.keys.Zone.streams`."""


class Waiting(msgspec.Struct, frozen=True):
    """What of one kind waits for a dispatcher longer than the alert time."""

    kind: str
    """``alarms``, ``patrol`` (answers and positions) or ``commands`` (operators' actions)."""
    count: int
    """Entries waiting (read by no dispatcher, or read and not acknowledged) in those zones."""
    exact: bool
    """False when Redis could not count what the group has not read (entries deleted or
    trimmed before it read them): then ``count`` is a lower bound."""
    age_s: float
    """How long the oldest of them has waited."""
    zones: list[str]
    """The zones where it waits (empty names: the default zone)."""


async def waiting(redis: aioredis.Redis, stream: str, now: float) -> tuple[int, bool, float]:
    """``stream``'s entries the dispatchers have not done with: count, whether the count is
    exact, and the age of the oldest (0 when none)."""
    for group in await operations.groups(redis, stream, now):
        if group.group == keys.DISPATCH_GROUP:
            return group.pending + (group.lag or 0), group.lag is not None, group.behind_s
    # No dispatcher ever started on this stream: everything in it waits.
    first: Any = await redis.xrange(stream, count=1)
    if not first:
        return 0, True, 0.0
    return int(await redis.xlen(stream)), True, max(0.0, now - operations.entry_time(first[0][0]))


async def behind(
    redis: aioredis.Redis, zones: Sequence[keys.Zone], alert_s: float, now: float | None = None
) -> list[Waiting]:
    """What waits for a dispatcher longer than ``alert_s``, by kind, over ``zones``."""
    now = time.time() if now is None else now
    out = []
    for position, kind in enumerate(KINDS):
        count, exact, age, where = 0, True, 0.0, []
        for zone in zones:
            n, known, oldest = await waiting(redis, zone.streams[position], now)
            if oldest > alert_s:
                count, exact, age = count + n, exact and known, max(age, oldest)
                where.append(zone.name)
        if where:
            out.append(Waiting(kind, count, exact, round(age, 1), where))
    return out


class Listeners(Protocol):
    """Where the warning goes (:class:`gateway.console.live.Feed`)."""

    async def listened(self) -> None: ...

    def broadcast(self, kind: str, data: Any) -> None: ...


class Watch:
    """One task per gateway process: reads :func:`behind` while a console listens, and
    broadcasts a ``dispatch`` event (the list, empty once all is well again) when something
    waits too long, each time it reads, and once when it is over."""

    def __init__(
        self, redis: aioredis.Redis, zones: Sequence[keys.Zone], alert_s: float, every_s: float
    ) -> None:
        self.redis, self.zones, self.alert_s, self.every_s = redis, list(zones), alert_s, every_s
        self.last: list[Waiting] = []
        """The latest reading: a console that connects gets it with its picture."""
        self.readings = 0

    async def run(self, listeners: Listeners) -> None:
        while True:
            await listeners.listened()
            try:
                now = await behind(self.redis, self.zones, self.alert_s)
            except tuple(RETRY_ERRORS) as exc:  # the feed says so too: its consoles reconnect
                log.warning("dispatch watch cannot reach Redis (%s)", exc)
            else:
                self.readings += 1
                if now or self.last:
                    listeners.broadcast("dispatch", now)
                self.last = now
            await asyncio.sleep(self.every_s)
