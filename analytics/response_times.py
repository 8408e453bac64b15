"""Response times from the audit stream: per incident, then percentiles per group.

Per incident (all in seconds; a figure is missing when either end never happened):

- ``alarm_to_dispatch``: the alarm (its source time ``alarm_ts``, or the incident's creation
  when that is missing or later) to the first dispatch;
- ``dispatch_to_ack``: the first dispatch to the first acknowledgement (a unit that timed out
  and the next one's answer are both inside it: that is what the caller waited);
- ``ack_to_scene``: the first acknowledgement to the first unit on scene;
- ``alarm_to_scene``: the alarm to the first unit on scene (the caller's whole wait);
- ``resolution``: the incident's creation to its resolution.

Percentiles are nearest-rank (the smallest value with at least p % of the values at or below
it), so every figure is one that really happened and a hand computation can check it.
Incidents merged into another are duplicates and count nowhere but in ``merged``.

``merged`` counts the merged reports: every report that joined an incident instead of making
its own, whether the dispatcher merged it on arrival (same place, within minutes) or an operator
merged its incident into another. An incident's ``reports`` holds all it absorbed, its own
first alarm aside, so ``merged`` is the sum of ``reports - 1`` over the period's incidents that
were not themselves merged; of it, ``merged_by_operator`` is the number of incidents merged
away and ``merged_automatic`` the rest. (An incident merged into one created before the period
counts in that one's period.)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Final

import msgspec
import redis.asyncio as aioredis

from analytics.audit import CHUNK, audit_events
from polewatch import records
from polewatch.zones import ZoneMap

METRICS: Final = (
    "alarm_to_dispatch",
    "dispatch_to_ack",
    "ack_to_scene",
    "alarm_to_scene",
    "resolution",
)
PERCENTILES: Final = (50, 90, 95)
TAIL_S: Final = 7 * 86_400.0
"""How long after the period the audit stream is still read for its incidents' later steps."""
NO_DISTRICT: Final = "(none)"
_HASH_FIELDS: Final = (
    "type",
    "priority",
    "state",
    "district",
    "grid",
    "pole",
    "alarm_ts",
    "reports",
)
_BATCH: Final = 500


class IncidentTimes(msgspec.Struct, kw_only=True):
    """One incident's facts and the first time of each event in its history."""

    id: str
    type: str
    priority: int
    state: str
    created: float
    district: str | None = None
    grid: str | None = None
    pole: str | None = None
    alarm_ts: float | None = None
    reports: int = 1
    times: dict[str, float] = {}
    """``event -> first time`` (``new``, ``dispatched``, ``acknowledged``, ``on_scene``, ...)."""

    @property
    def start(self) -> float:
        """When the caller's wait began: the alarm's own time unless it is after creation."""
        a = self.alarm_ts
        return a if a is not None and math.isfinite(a) and a <= self.created else self.created

    def durations(self) -> dict[str, float | None]:
        """Every metric of :data:`METRICS` (``None`` where a step never happened)."""
        t = self.times
        pairs = {
            "alarm_to_dispatch": (self.start, t.get("dispatched")),
            "dispatch_to_ack": (t.get("dispatched"), t.get("acknowledged")),
            "ack_to_scene": (t.get("acknowledged"), t.get("on_scene")),
            "alarm_to_scene": (self.start, t.get("on_scene")),
            "resolution": (self.created, t.get("resolved")),
        }
        return {name: _span(a, b) for name, (a, b) in pairs.items()}


class Stats(msgspec.Struct, kw_only=True):
    count: int
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    mean: float | None = None


class GroupFigures(msgspec.Struct, kw_only=True):
    key: str
    incidents: int
    metrics: dict[str, Stats]


class ResponseTimes(msgspec.Struct, kw_only=True):
    """Response-time figures of a period; JSON-ready with ``msgspec.json.encode``."""

    start: float
    end: float
    district: str | None
    incidents: int
    merged: int
    """Reports absorbed by the period's incidents: ``merged_automatic + merged_by_operator``."""
    overall: GroupFigures
    by_district: list[GroupFigures]
    by_grid: list[GroupFigures]
    by_priority: list[GroupFigures]
    merged_automatic: int = 0
    """Alarms the dispatcher merged into an open incident on arrival."""
    merged_by_operator: int = 0
    """Incidents an operator merged into another."""


def _span(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b < a:
        return None
    return round(b - a, 3)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(values: Iterable[float]) -> Stats:
    """Count, nearest-rank p50/p90/p95 and mean of some durations."""
    ordered = sorted(values)
    if not ordered:
        return Stats(count=0)
    p50, p90, p95 = (percentile(ordered, p) for p in PERCENTILES)
    return Stats(
        count=len(ordered), p50=p50, p90=p90, p95=p95, mean=round(sum(ordered) / len(ordered), 3)
    )


async def incident_times(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    district: str | None = None,
    tail_s: float = TAIL_S,
    chunk: int = CHUNK,
    zones: ZoneMap | None = None,
) -> list[IncidentTimes]:
    """Every incident created in ``[start, end)`` (optionally of one district), with the first
    time of each of its events, oldest first.

    The audit streams (every zone's, with ``zones``) are read in chunks from ``start`` to
    ``end + tail_s``; memory grows with the number of incidents in the period, never with the
    length of the streams. Facts the events do not carry (type, district, grid, alarm time)
    come from the incident hashes, each read in its incident's zone.
    """
    seen: dict[str, dict[str, float]] = {}
    priority: dict[str, int] = {}
    reports: dict[str, int] = {}
    async for e in audit_events(redis, start, end + tail_s, chunk=chunk, zones=zones):
        if e.event == "new":
            if start <= e.ts < end and e.incident not in seen:
                seen[e.incident] = {"new": e.ts}
                priority[e.incident] = e.priority or 3
            continue
        times = seen.get(e.incident)
        if times is None:
            continue
        times.setdefault(e.event, e.ts)
        if e.reports is not None:
            reports[e.incident] = max(reports.get(e.incident, 1), e.reports)
    ids = list(seen)
    out: list[IncidentTimes] = []
    for i in range(0, len(ids), _BATCH):
        batch = ids[i : i + _BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for iid in batch:
                pipe.hmget(records.incident_zone(iid, zones).incident(iid), _HASH_FIELDS)
            rows = await pipe.execute()
        for iid, row in zip(batch, rows, strict=True):
            h = dict(zip(_HASH_FIELDS, (v.decode() if v else None for v in row), strict=True))
            if district is not None and h["district"] != district:
                continue
            times = seen[iid]
            out.append(
                IncidentTimes(
                    id=iid,
                    type=h["type"] or "unknown",
                    priority=int(h["priority"] or priority[iid]),
                    state=h["state"] or _last_state(times),
                    created=times["new"],
                    district=h["district"],
                    grid=h["grid"],
                    pole=h["pole"],
                    alarm_ts=float(h["alarm_ts"]) if h["alarm_ts"] else None,
                    reports=max(int(h["reports"] or 1), reports.get(iid, 1)),
                    times=times,
                )
            )
    out.sort(key=lambda t: (t.created, t.id))
    return out


def _last_state(times: dict[str, float]) -> str:
    return max(times.items(), key=lambda kv: kv[1])[0]


def summarize(
    incidents: Iterable[IncidentTimes], start: float, end: float, district: str | None = None
) -> ResponseTimes:
    """Percentiles and counts overall, per district, per grid and per priority."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    merged = absorbed = 0
    for inc in incidents:
        if inc.state == "merged":
            merged += 1
            continue
        absorbed += max(0, inc.reports - 1)
        keys_ = [
            ("all", "all"),
            ("district", inc.district or NO_DISTRICT),
            ("priority", f"P{inc.priority}"),
        ]
        if inc.grid:
            keys_.append(("grid", inc.grid))
        durations = inc.durations()
        for k in keys_:
            counts[k] += 1
            bucket = groups[k]
            for name, value in durations.items():
                if value is not None:
                    bucket[name].append(value)

    def figures(k: tuple[str, str]) -> GroupFigures:
        return GroupFigures(
            key=k[1], incidents=counts[k], metrics={m: stats(groups[k][m]) for m in METRICS}
        )

    def of(kind: str) -> list[GroupFigures]:
        return [figures(k) for k in sorted(counts) if k[0] == kind]

    return ResponseTimes(
        start=start,
        end=end,
        district=district,
        incidents=counts[("all", "all")],
        merged=absorbed,
        merged_automatic=max(0, absorbed - merged),
        merged_by_operator=merged,
        overall=figures(("all", "all")),
        by_district=of("district"),
        by_grid=of("grid"),
        by_priority=of("priority"),
    )


async def response_times(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    district: str | None = None,
    zones: ZoneMap | None = None,
) -> ResponseTimes:
    """:func:`summarize` of :func:`incident_times`: the figures the command centre charts."""
    incidents = await incident_times(redis, start, end, district=district, zones=zones)
    return summarize(incidents, start, end, district)
