"""The operational state of a deployment, read from Redis for Prometheus.

Both the gateway's ``/metrics`` and each dispatcher's expose it (a :class:`StateCollector` in
their registry), so a scrape of either shows the whole deployment: open and escalated
incidents by priority, units by status (``unresponsive`` included), every stream's length and,
per consumer group, its pending entries and the age of the oldest one, dead letters by reason,
and the health of the edge agents from their heartbeats. The archiver exposes its own lag
(``polewatch_archive_lag_seconds``).

Every figure is read at scrape time, in a few pipelined round trips per zone; dead letters are
counted incrementally (each collector reads only the entries added since its last scrape).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError, ResponseError

from polewatch import keys, records, wire

log = logging.getLogger("polewatch.operations")

PRIORITIES: Final = ("1", "2", "3", "4")
UNIT_STATES: Final = records.UNIT_STATUSES
"""Every unit status counted (zero when there is none, so the dashboard always has a line)."""
AGENT_STALE_S: Final = 60.0
"""An agent whose last heartbeat is older than this counts as ``stale``, whatever it said."""
HEARTBEAT_SCAN: Final = 5000
"""Latest heartbeats read to find each agent's last one."""
DEADLETTER_SCAN: Final = 10_000
"""Dead letters read at most per zone and scrape (the first scrape starts this far back)."""
PRIORITY_REREAD_S: Final = 60.0
"""How often every open incident's priority is read again (see :class:`Priorities`)."""
REASON_CAP: Final = 30
"""Distinct dead-letter reasons kept as labels; the rest count as ``other``."""
_NUMBERED = re.compile(r"\S*\d\S*")


def reason_class(reason: str) -> str:
    """A dead-letter reason with its ids taken out (any word holding a digit becomes ``N``),
    so ``dispatch of 7 to u3 is not ...`` and ``dispatch of 9 to u5 is not ...`` count as one
    reason; at most 80 characters."""
    return _NUMBERED.sub("N", reason)[:80]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(entry_id: Any) -> int:
    return int(_text(entry_id).partition("-")[0])


def entry_time(entry_id: Any) -> float:
    """When a stream entry was added (the milliseconds of its id), in seconds."""
    return _ms(entry_id) / 1000


class Group(msgspec.Struct, frozen=True):
    stream: str
    group: str
    pending: int
    oldest_pending_s: float
    lag: int | None
    oldest_unread_s: float = 0.0
    """Age of the oldest entry the group has not read yet (0: it has read everything)."""

    @property
    def behind_s(self) -> float:
        """How far behind the group is: its oldest entry not yet done with."""
        return max(self.oldest_pending_s, self.oldest_unread_s)


class State(msgspec.Struct, kw_only=True):
    """One reading of the deployment (see :func:`read`)."""

    open: Counter[str]
    """Open incidents by priority (``"1"``..``"4"``), escalated ones included."""
    escalated: Counter[str]
    units: Counter[str]
    """Units by status (:data:`UNIT_STATES`)."""
    streams: dict[str, int]
    """Length of every stream."""
    groups: list[Group]
    agents: Counter[tuple[str, str]]
    """Agents by (kind, status): their last heartbeat's status, or ``stale``."""
    agent_age: dict[str, float]
    """Per agent kind, the age of the stalest agent's last heartbeat (seconds)."""


async def _field(
    redis: aioredis.Redis, ids: Sequence[str], key: Callable[[str], str], field: str
) -> list[str | None]:
    """``field`` of each hash ``key(id)`` (``None`` where there is none), one round trip."""
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for one in ids:
            pipe.hget(key(one), field)
        found: list[Any] = await pipe.execute()
    return [None if v is None else _text(v) for v in found]


class Priorities:
    """Incident id -> priority, each read once: a priority changes only when an operator
    merges a more urgent incident into it, so everything is read again every
    :data:`PRIORITY_REREAD_S`. Closed incidents are forgotten at each reading."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self._open: set[str] = set()
        self._since = 0.0

    def begin(self, now: float) -> None:
        if now - self._since > PRIORITY_REREAD_S:
            self.known.clear()
            self._since = now
        self._open = set()

    def end(self) -> None:
        self.known = {i: p for i, p in self.known.items() if i in self._open}

    async def tally(self, redis: aioredis.Redis, zone: keys.Zone, index: str) -> Counter[str]:
        """The incidents of the sorted set ``index`` by priority."""
        ids = [_text(i) for i in await redis.zrange(index, 0, -1)]
        self._open.update(ids)
        missing = [i for i in ids if i not in self.known]
        for one, p in zip(missing, await _field(redis, missing, zone.incident, "priority"),
                          strict=True):  # fmt: skip
            if p is not None:  # (None: an index entry whose hash is gone, a race)
                self.known[one] = p
        return Counter(self.known[i] for i in ids if i in self.known)


async def _units(redis: aioredis.Redis, zone: keys.Zone) -> Counter[str]:
    ids = [_text(u) for u in await redis.smembers(zone.units)]
    return Counter(s or "off_duty" for s in await _field(redis, ids, zone.unit, "status"))


async def groups(redis: aioredis.Redis, stream: str, now: float) -> list[Group]:
    """Every consumer group of ``stream``: how much it holds and how far behind it is."""
    try:
        infos: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return []
    out = []
    for info in infos:
        name = _text(info["name"])
        pending, oldest = 0, 0.0
        if info["pending"]:
            summary: dict[str, Any] = await redis.xpending(stream, name)
            # Acknowledged since XINFO GROUPS: nothing is pending any more (min is None).
            if summary["min"] is not None:
                pending = int(summary["pending"])
                oldest = max(0.0, now - _ms(summary["min"]) / 1000)
        lag = info.get("lag")
        unread = 0.0
        if lag is None or lag:  # (None: Redis cannot tell after a trim or deletion)
            after: Any = await redis.xrange(
                stream, min=f"({_text(info['last-delivered-id'])}", count=1
            )
            unread = max(0.0, now - _ms(after[0][0]) / 1000) if after else 0.0
        lag = None if lag is None else int(lag)
        out.append(Group(stream, name, pending, oldest, lag, unread))
    return out


async def _agents(
    redis: aioredis.Redis, now: float
) -> tuple[Counter[tuple[str, str]], dict[str, float]]:
    beats: Any = await redis.xrevrange(keys.HEARTBEATS, count=HEARTBEAT_SCAN)
    last: dict[str, wire.Heartbeat] = {}
    for _, fields in beats:
        with contextlib.suppress(wire.WireError):
            hb = wire.decode_entry(fields, wire.Heartbeat)
            last.setdefault(hb.source, hb)
    agents: Counter[tuple[str, str]] = Counter()
    age: dict[str, float] = {}
    for hb in last.values():
        since = max(0.0, now - hb.ts)
        agents[(hb.kind, "stale" if since > AGENT_STALE_S else hb.status)] += 1
        age[hb.kind] = max(age.get(hb.kind, 0.0), since)
    return agents, age


async def read(
    redis: aioredis.Redis,
    zones: Sequence[keys.Zone],
    now: float | None = None,
    priorities: Priorities | None = None,
) -> State:
    """Read the operational state of ``zones`` (every zone of the deployment); the incidents'
    priorities from ``priorities`` where it knows them."""
    now = time.time() if now is None else now
    priorities = priorities or Priorities()
    priorities.begin(now)
    state = State(open=Counter(), escalated=Counter(), units=Counter(), streams={}, groups=[],
                  agents=Counter(), agent_age={})  # fmt: skip
    for zone in zones:
        state.open += await priorities.tally(redis, zone, zone.incidents_open)
        state.escalated += await priorities.tally(redis, zone, zone.escalated)
        state.units += await _units(redis, zone)
        streams = (*zone.streams, zone.audit, zone.deadletter)
        async with redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xlen(stream)
            lengths: list[int] = await pipe.execute()
        state.streams.update(zip(streams, lengths, strict=True))
        for stream in (*zone.streams, zone.audit):  # the audit's readers: the archivers
            state.groups += await groups(redis, stream, now)
    state.streams[keys.HEARTBEATS] = int(await redis.xlen(keys.HEARTBEATS))
    state.agents, state.agent_age = await _agents(redis, now)
    priorities.end()
    return state


class DeadLetters:
    """Dead letters by (stream they came from, reason class), counted incrementally."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._after: dict[str, str] = {}

    async def update(self, redis: aioredis.Redis, zones: Iterable[keys.Zone]) -> None:
        """Count the dead letters added since the last update (the latest ones at first)."""
        for zone in zones:
            after = self._after.get(zone.deadletter)
            entries: Any
            if after is None:
                latest: Any = await redis.xrevrange(zone.deadletter, count=DEADLETTER_SCAN)
                entries = latest[::-1]
            else:
                entries = await redis.xrange(
                    zone.deadletter, min=f"({after}", count=DEADLETTER_SCAN
                )
            if not entries and after is None:
                self._after[zone.deadletter] = "0-0"
            known = {r for _, r in self.counts}
            for entry_id, fields in entries:
                source = _text(fields.get(b"stream", b"?")).rpartition(":")[2]
                reason = reason_class(_text(fields.get(b"reason", b"")))
                if reason not in known and len(known) >= REASON_CAP:
                    reason = "other"
                known.add(reason)
                self.counts[(source, reason)] += 1
                self._after[zone.deadletter] = _text(entry_id)


class StateCollector(Collector):
    """Prometheus families of the latest :class:`State` (call :meth:`refresh` before a
    scrape: the gateway does in its handler, the dispatcher on its own loop)."""

    def __init__(self) -> None:
        self.state: State | None = None
        self.dead = DeadLetters()
        self.priorities = Priorities()
        self._reading: asyncio.Future[None] | None = None

    async def refresh(self, redis: aioredis.Redis, zones: Sequence[keys.Zone]) -> None:
        """Read the state again; on a Redis error, drop it (a scrape then shows the service's
        own metrics only, rather than stale figures or no answer). Scrapes that arrive while a
        reading is under way share it: a flood of them costs Redis one reading at a time."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read(redis, zones))
        await asyncio.shield(self._reading)

    async def _read(self, redis: aioredis.Redis, zones: Sequence[keys.Zone]) -> None:
        try:
            self.state = await read(redis, zones, priorities=self.priorities)
            await self.dead.update(redis, zones)
        except RedisError as exc:
            log.warning("operational state not read: %s", exc)
            self.state = None

    def collect(self) -> Iterator[Metric]:
        yield from families(self.state, self.dead.counts)


def families(state: State | None, dead: Counter[tuple[str, str]]) -> Iterator[Metric]:
    """The metric families of ``state`` (nothing before the first reading)."""
    reasons = CounterMetricFamily(
        "polewatch_dead_letters", "Dead letters by source stream and reason (ids taken out)",
        labels=["source", "reason"],
    )  # fmt: skip
    for (source, reason), n in sorted(dead.items()):
        reasons.add_metric([source, reason], n)
    yield reasons
    if state is None:
        return
    for name, doc, counts in (
        ("polewatch_incidents_open", "Open incidents by priority", state.open),
        ("polewatch_incidents_escalated", "Incidents waiting for a free unit", state.escalated),
    ):
        family = GaugeMetricFamily(name, doc, labels=["priority"])
        for p in sorted({*PRIORITIES, *counts}):
            family.add_metric([p], counts.get(p, 0))
        yield family
    units = GaugeMetricFamily("polewatch_units", "Units by status", labels=["status"])
    for status in sorted({*UNIT_STATES, *state.units}):
        units.add_metric([status], state.units.get(status, 0))
    yield units
    length = GaugeMetricFamily("polewatch_stream_length", "Entries in a stream", labels=["stream"])
    for stream, n in sorted(state.streams.items()):
        length.add_metric([stream], n)
    yield length
    labels = ["stream", "group"]
    pending = GaugeMetricFamily(
        "polewatch_stream_pending", "Entries delivered to a group, not acknowledged", labels=labels
    )
    oldest = GaugeMetricFamily(
        "polewatch_stream_oldest_pending_seconds",
        "Age of a group's oldest unacknowledged entry (0: none)", labels=labels,
    )  # fmt: skip
    lag = GaugeMetricFamily(
        "polewatch_stream_lag", "Entries a group has not read yet", labels=labels
    )
    for g in state.groups:
        pending.add_metric([g.stream, g.group], g.pending)
        oldest.add_metric([g.stream, g.group], g.oldest_pending_s)
        if g.lag is not None:
            lag.add_metric([g.stream, g.group], g.lag)
    unread = GaugeMetricFamily(
        "polewatch_stream_oldest_unread_seconds",
        "Age of the oldest entry a group has not read yet (0: none)", labels=labels,
    )  # fmt: skip
    archive = GaugeMetricFamily(
        "polewatch_archive_lag_seconds",
        "How far the archivers are behind the audit stream: its oldest entry not yet archived",
        labels=["stream"],
    )
    for g in state.groups:
        unread.add_metric([g.stream, g.group], g.oldest_unread_s)
        if g.group == keys.ARCHIVE_GROUP:
            archive.add_metric([g.stream], g.behind_s)
    yield from (pending, oldest, lag, unread, archive)
    agents = GaugeMetricFamily(
        "polewatch_agents", "Edge agents and services by kind and last heartbeat status "
        "('stale': silent for over a minute)", labels=["kind", "status"],
    )  # fmt: skip
    for (kind, status), n in sorted(state.agents.items()):
        agents.add_metric([kind, status], n)
    yield agents
    age = GaugeMetricFamily(
        "polewatch_agent_heartbeat_age_seconds",
        "Age of the stalest agent's last heartbeat, by kind", labels=["kind"],
    )  # fmt: skip
    for kind, seconds in sorted(state.agent_age.items()):
        age.add_metric([kind], seconds)
    yield age
