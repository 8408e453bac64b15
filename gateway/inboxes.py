"""The inboxes of every unit connected to this gateway process, read many per round trip.

A unit's socket does not read Redis itself: it attaches a :class:`Subscriber` (the last id
it was sent) and one task reads for all of them. The unit ids announced on
``keys.UNIT_NOTIFY`` (one id or several separated by spaces) mark units *dirty*; the reader
takes every dirty unit at once and sends one ``XREAD`` per zone with each inbox from its own
last id (a zone's inboxes share its hash tag, so one command stays on one cluster shard).
Every ``recheck_s`` all connected units are read the same way, in slices spread over that
time, a few commands for the whole fleet instead of a round trip per socket. Each entry is
encoded to its frame once, however many sockets the unit has open, and queued to each socket
without waiting for it to drain, so one slow phone never holds up the others. The inbox
stream stays the truth: after a lost pub/sub connection every unit is read again, and a
reconnecting unit resumes from its id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from aiohttp import ClientConnectionResetError, web

from gateway import frames
from gateway.errors import REDIS_DOWN
from polewatch import keys
from polewatch.zones import ZoneMap, unit_zone

log = logging.getLogger(__name__)

READ_CHUNK: Final = 100
"""Entries read per inbox and round; a full inbox is read again at once."""
KEYS_PER_READ: Final = 1000
"""Inboxes named in one ``XREAD`` (a sweep of the fleet is a few commands)."""
SWEEP_STEPS: Final = 15
"""Every unit is read at least every ``recheck_s`` in this many slices, evenly spread."""


def _id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscriber:
    """One unit's socket: the last inbox id it was sent and the frames waiting to go out."""

    unit: str
    last: str
    ws: web.WebSocketResponse
    on_sent: Callable[[], None] = lambda: None
    waiting: collections.deque[str] = field(default_factory=collections.deque)
    sender: asyncio.Task[None] | None = None

    def push(self, frame: str, entry_id: str) -> None:
        self.last = entry_id
        self.queue(frame)

    def queue(self, frame: str) -> None:
        """Send ``frame`` after those waiting, without waiting for the socket."""
        self.waiting.append(frame)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        with contextlib.suppress(ClientConnectionResetError, ConnectionError):
            while self.waiting and not self.ws.closed:
                await self.ws.send_str(self.waiting.popleft())
                self.on_sent()


@dataclass(eq=False)
class _Unit:
    zone: keys.Zone | None
    subscribers: set[Subscriber] = field(default_factory=set)


class Inboxes:
    """Pushes each connected unit's inbox entries to its sockets (see the module doc)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        zones: ZoneMap,
        *,
        cluster: bool = False,
        recheck_s: float = 15.0,
    ) -> None:
        self.redis = redis
        self.zones = zones
        self.cluster = cluster
        self.recheck_s = recheck_s
        self._units: dict[str, _Unit] = {}
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self.reads = 0
        """``XREAD`` commands sent (a sweep of 10,000 units is ten)."""

    @contextlib.contextmanager
    def attach(self, sub: Subscriber, zone: keys.Zone | None) -> Iterator[None]:
        """Push ``sub``'s inbox from ``sub.last`` on while the block runs."""
        unit = self._units.get(sub.unit)
        if unit is None:
            unit = self._units[sub.unit] = _Unit(zone)
        unit.zone = unit.zone or zone
        unit.subscribers.add(sub)
        self.wake(sub.unit)
        try:
            yield
        finally:
            unit.subscribers.discard(sub)
            if sub.sender is not None:
                sub.sender.cancel()
            if not unit.subscribers and self._units.get(sub.unit) is unit:
                del self._units[sub.unit]

    @property
    def units(self) -> int:
        return len(self._units)

    def located(self, unit: str, zone: keys.Zone) -> None:
        """``unit`` has a zone now (its first position): its inbox can be read."""
        if (known := self._units.get(unit)) is not None:
            known.zone = zone
            self.wake(unit)

    def send(self, unit: str, frame: str) -> None:
        """Queue ``frame`` (not an inbox entry) to every socket of ``unit`` in this process."""
        if (known := self._units.get(unit)) is not None:
            for sub in known.subscribers:
                sub.queue(frame)

    def wake(self, unit: str) -> None:
        """Read ``unit``'s inbox soon (:data:`gateway.notify.ANY`: every unit's)."""
        if unit == "*":
            self._dirty.update(self._units)
        elif unit in self._units:
            self._dirty.add(unit)
        else:
            return
        self._wakeup.set()

    async def run(self) -> None:
        """Read dirty inboxes until cancelled; every unit at least every ``recheck_s``."""
        delay = 0.05
        loop = asyncio.get_running_loop()
        step = self.recheck_s / SWEEP_STEPS
        sweep_at, sweep, share = loop.time() + step, list[str](), 1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, sweep_at - loop.time()))
            if loop.time() >= sweep_at:  # due however busy the announcements keep us
                # a slice of the fleet each step, so no step stalls the loop (19,000 units at
                # once took 80-120 ms)
                if not sweep:
                    sweep = list(self._units)
                    share = max(1, -(-len(sweep) // SWEEP_STEPS))
                self._dirty.update(sweep[-share:])
                del sweep[-share:]
                sweep_at = loop.time() + step
            self._wakeup.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                await self._read(dirty)
                delay = 0.05
            except REDIS_DOWN as exc:  # keep the sockets; read on from their ids once back
                log.warning("inboxes unreadable (%s); again in %.2f s", exc, delay)
                self._dirty |= dirty
                await asyncio.sleep(delay)
                self._wakeup.set()
                delay = min(delay * 2, 5.0)

    async def _read(self, dirty: set[str]) -> None:
        await self._locate([u for u in dirty if (x := self._units.get(u)) and x.zone is None])
        by_zone: dict[keys.Zone, dict[str, str]] = {}
        inbox_unit: dict[str, str] = {}
        for name in dirty:
            unit = self._units.get(name)
            if unit is None or unit.zone is None or not unit.subscribers:
                continue
            inbox = unit.zone.unit_inbox(name)
            inbox_unit[inbox] = name
            subs = unit.subscribers
            last = next(iter(subs)).last if len(subs) == 1 else min((s.last for s in subs), key=_id)
            by_zone.setdefault(unit.zone, {})[inbox] = last
        commands: list[dict[str, str]] = []
        for zone, streams in by_zone.items():
            # a zone's inboxes share a hash tag; the default zone's do not (one each on a cluster)
            size = 1 if self.cluster and not zone.name else KEYS_PER_READ
            items = list(streams.items())
            commands += [dict(items[i : i + size]) for i in range(0, len(items), size)]
        replies: list[Any] = await asyncio.gather(
            *(self.redis.xread(c, count=READ_CHUNK) for c in commands)  # type: ignore[arg-type]
        )
        self.reads += len(commands)
        for reply in replies:
            for stream, entries in reply or ():
                name = inbox_unit[stream.decode() if isinstance(stream, bytes) else stream]
                self._deliver(name, entries)

    def _deliver(self, name: str, entries: list[Any]) -> None:
        unit = self._units.get(name)
        if unit is None:
            return
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            frame = None
            for sub in unit.subscribers:
                if _id(sub.last) < _id(entry_id):
                    frame = frame or frames.encode_inbox(entry_id, fields)
                    sub.push(frame, entry_id)
        if len(entries) >= READ_CHUNK:
            self.wake(name)

    async def _locate(self, units: list[str]) -> None:
        """Zones given to units since they connected (by a report through another door)."""
        for name, zone in zip(
            units,
            await asyncio.gather(*(unit_zone(self.redis, self.zones, u) for u in units)),
            strict=True,
        ):
            if zone is not None and (unit := self._units.get(name)) is not None:
                unit.zone = keys.zone(zone)
