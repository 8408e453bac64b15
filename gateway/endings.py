"""The Redis side of the command centre's history: incidents whose end (resolution, closing,
cancellation) is in their zone's audit stream, found by reading the streams backwards (newest
first) from where the previous page stopped, at most a budget of entries per page
(``history_scan``), so a page answers in bounded time however long the streams are.

Why a page can stop anywhere and the next go on without losing or repeating an incident:

- The history's order is ``(finished, id)``, newest first, where ``finished`` is when the
  incident entered its final state: ``t_<state>`` of its hash, as the archive orders it
  (:func:`analytics.archive.finished_incidents`). That time is the time of the event that
  ended it, written to the microsecond.
- A zone's audit stream is in time order: the dispatcher stamps each event with Redis' clock
  at the call that appends it, and Redis runs the calls one after another. So once a stream
  is read back to an entry of time ``t``, every event later than ``t`` has been read, and
  every incident that finished later than ``t`` (plus :data:`SLACK`) has been found.
- A page therefore shows only incidents that finished at or after its *edge* (the latest of
  those times over the streams not read to their end, plus :data:`SLACK`); the next page is
  everything below its last incident, or below the edge when the page is short. For each
  stream the next page starts at the newest end it read that may still belong below
  (:meth:`Stream.resume`), so an end read but not shown is read again, never skipped.
- An incident is taken from the event that entered its current state only, with its place
  from its hash: an earlier ending (resolved, then closed) or an incident already shown
  (its place at or above the page's start) is passed over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis

from polewatch import keys, records, wire

FINAL: Final = ("resolved", "closed", "cancelled")
CHUNK: Final = 1000
"""Entries one read takes from one stream (one pipelined round trip across the zones)."""
SLACK: Final = 0.001
"""Seconds between an ending event's time and the ``t_<state>`` its hash keeps (written to
the microsecond): a page's edge leaves this margin, so rounding never puts an incident on the
wrong side of it."""

Key = tuple[float, str]
"""An incident's place in the history, ``(finished, id)``; as a bound, ``(t, "")`` is
everything that finished before ``t``."""
TOP: Final[Key] = (math.inf, "")


@dataclass(frozen=True)
class Found:
    """A finished incident as a page shows it."""

    key: Key
    incident: records.Incident
    detail: str | None
    """The ending event's detail (a cancellation's reason)."""
    archived: bool = False
    """Read from the archive (Redis no longer holds it)."""


@dataclass
class Stream:
    """One zone's audit stream as one page reads it."""

    zone: keys.Zone
    top: str = "+"
    """Where the next read starts (an ``XREVRANGE`` upper bound)."""
    start: float = math.inf
    """Time of the first entry this page read."""
    low: float = math.inf
    """Time of the oldest entry read: every later event has been read."""
    done: bool = False
    """Read to its oldest entry."""
    ends: list[tuple[float, str]] = field(default_factory=list)
    """``(time, entry id)`` of every ending read, newest first."""

    def resume(self, below: Key) -> str | None:
        """Where the next page reads on when it must find every incident placed below
        ``below`` (``None``: this stream has none left)."""
        for ts, entry in self.ends:
            if ts < below[0] + SLACK:
                return entry
        return None if self.done else self.top


class Scan:
    """The reading of the audit streams for one page: start at ``positions`` (zone name ->
    where the previous page left it; ``None``: every zone from its newest entry), find the
    incidents placed below ``below``, now in one of ``states``, that ``wanted`` accepts."""

    def __init__(
        self,
        redis: Redis,
        zones: Iterable[keys.Zone],
        positions: Mapping[str, str] | None,
        below: Key,
        states: tuple[str, ...],
        wanted: Callable[[records.Incident, str | None], bool],
    ) -> None:
        self.redis = redis
        self.below = below
        self.states = states
        self.wanted = wanted
        self.streams = [Stream(z) if positions is None else Stream(z, positions[z.name])
                        for z in zones if positions is None or z.name in positions]  # fmt: skip
        self.found: dict[str, Found] = {}
        self._settled: set[str] = set()
        self._held: dict[str, records.Incident | None] = {}

    @property
    def edge(self) -> float:
        """Every incident Redis holds that finished at or after this time (and below the
        page's start) is found; ``-inf`` once every stream is read to its end."""
        live = [s.low for s in self.streams if not s.done]
        return max(live) + SLACK if live else -math.inf

    def positions(self, below: Key) -> dict[str, str]:
        """Where the page after one ending at ``below`` reads each stream that has more."""
        return {s.zone.name: p for s in self.streams if (p := s.resume(below)) is not None}

    async def run(self, limit: int, budget: int) -> None:
        """Read until ``limit`` incidents are found above the edge, every stream is read to
        its end, or ``budget`` entries are read; a stream is read at least past the time it
        started at (and past the page's start), so every page gets further back."""
        read = 0
        while live := [s for s in self.streams if not s.done]:
            edge = self.edge
            if sum(1 for f in self.found.values() if f.key[0] >= edge) >= limit:
                return
            behind = [s for s in live if s.low >= min(s.start, self.below[0] - SLACK)]
            if read >= budget and not behind:
                return
            latest = max(s.low for s in live)
            picked = behind if read >= budget else [
                s for s in live if s in behind or s.low == latest]  # fmt: skip
            count = CHUNK if read >= budget else min(CHUNK, budget - read)
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in picked:
                    pipe.xrevrange(s.zone.audit, max=s.top, count=count)
                pages: list[Any] = await pipe.execute()
            ends: list[tuple[keys.Zone, wire.IncidentEvent]] = []
            for s, page in zip(picked, pages, strict=True):
                read += len(page)
                ends += self._read(s, page, count)
            await self._take(ends)

    def _read(
        self, s: Stream, page: list[Any], count: int
    ) -> list[tuple[keys.Zone, wire.IncidentEvent]]:
        ends = []
        for raw, fields in page:
            event = _event(fields)
            if event is None:
                continue
            s.start = event.ts if s.start == math.inf else s.start
            s.low = min(s.low, event.ts)
            if event.event in FINAL:
                entry = raw.decode() if isinstance(raw, bytes) else str(raw)
                s.ends.append((event.ts, entry))
                if event.event in self.states and event.incident not in self._settled:
                    ends.append((s.zone, event))  # (another state's end cannot be its last)
        if len(page) < count:
            s.done = True
        else:
            last = page[-1][0]
            s.top = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        return ends

    async def _take(self, ends: list[tuple[keys.Zone, wire.IncidentEvent]]) -> None:
        """Read the hashes of incidents not seen yet, then keep each incident ended by one of
        ``ends`` (the event that entered its current state) that belongs on the page."""
        new = {e.incident: z for z, e in ends if e.incident not in self._held}
        async with self.redis.pipeline(transaction=False) as pipe:
            for iid, zone in new.items():
                pipe.hgetall(zone.incident(iid))
            hashes: list[Any] = await pipe.execute()
        for iid, raw in zip(new, hashes, strict=True):
            self._held[iid] = records.incident_from_hash(raw)
        for _, event in ends:
            incident = self._held[event.incident]
            if event.incident in self._settled or incident is None:
                continue
            if incident.state != event.event:
                continue  # an earlier ending of an incident that ended again since
            self._settled.add(event.incident)
            key = place(incident, event.ts)
            if key < self.below and self.wanted(incident, event.detail):
                self.found[incident.id] = Found(key, incident, event.detail)


def place(incident: records.Incident, finished: float) -> Key:
    """An incident's place in the history, as the Redis side gives it (``finished``: when
    it is not recorded in its hash)."""
    return incident.times.get(incident.state, finished), incident.id


def _event(fields: Any) -> wire.IncidentEvent | None:
    try:
        event = wire.decode_entry(fields, wire.StoredIncidentEvent)
    except wire.WireError:
        return None  # the dead-letter of the dispatcher's own audit: not ours to report
    return event if isinstance(event, wire.IncidentEvent) else None
