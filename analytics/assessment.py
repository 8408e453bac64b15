"""The quarterly public-security assessment of a district (or the whole city): incident counts
by type with the trend against the previous period of the same length, response-time
percentiles, and the grids with the slowest response. This module computes it;
:mod:`analytics.report` renders it (HTML, PDF, PNG) with :mod:`analytics.charts` and the
sentences of :mod:`analytics.wording`."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import msgspec
import redis.asyncio as aioredis

from analytics.response_times import (
    GroupFigures,
    IncidentTimes,
    ResponseTimes,
    incident_times,
    stats,
    summarize,
)
from polewatch import i18n
from polewatch.districts import display
from polewatch.zones import ZoneMap

WORST: Final = 5


class TypeCount(msgspec.Struct, kw_only=True):
    type: str
    count: int
    previous: int
    change_pct: float | None
    """Change against the previous period in percent; ``None`` when it had none."""


class DayCount(msgspec.Struct, kw_only=True):
    day: str
    """Local date, ``YYYY-MM-DD``."""
    count: int


class GridRank(msgspec.Struct, kw_only=True):
    grid: str
    district: str | None
    incidents: int
    alarm_to_scene_p90: float | None
    alarm_to_dispatch_p90: float | None
    resolution_p90: float | None


class Assessment(msgspec.Struct, kw_only=True):
    """Everything the report shows; JSON-ready with ``msgspec.json.encode``."""

    title: str
    district: str | None
    start: float
    end: float
    previous_start: float
    utc_offset_min: int
    incidents: int
    previous_incidents: int
    change_pct: float | None
    by_type: list[TypeCount]
    daily: list[DayCount]
    response: ResponseTimes
    previous_overall: GroupFigures
    worst_grids: list[GridRank]
    language: str = "en"
    """The language the report is written in (``zh-CN`` or ``en``)."""


def change(current: int, previous: int) -> float | None:
    """Percent change, one decimal; ``None`` from zero."""
    return None if previous == 0 else round((current - previous) * 100.0 / previous, 1)


def build_assessment(
    current: Sequence[IncidentTimes],
    previous: Sequence[IncidentTimes],
    start: float,
    end: float,
    *,
    district: str | None = None,
    worst: int = WORST,
    utc_offset_min: int = 0,
    language: str = "en",
) -> Assessment:
    """The assessment of ``[start, end)`` from its incidents and those of the period before,
    titled in ``language``."""
    now = [i for i in current if i.state != "merged"]
    before = [i for i in previous if i.state != "merged"]
    counts, old = Counter(i.type for i in now), Counter(i.type for i in before)
    by_type = [
        TypeCount(type=t, count=counts[t], previous=old[t], change_pct=change(counts[t], old[t]))
        for t in sorted(counts.keys() | old.keys(), key=lambda t: (-counts[t], -old[t], t))
    ]
    response = summarize(current, start, end, district)
    return Assessment(
        title=i18n.translate(
            "report.title",
            language,
            district=display(district, language)
            or i18n.translate("report.all_districts", language),
        ),
        district=district,
        start=start,
        end=end,
        previous_start=start - (end - start),
        utc_offset_min=utc_offset_min,
        incidents=len(now),
        previous_incidents=len(before),
        change_pct=change(len(now), len(before)),
        by_type=by_type,
        daily=_daily(now, start, end, utc_offset_min),
        response=response,
        previous_overall=summarize(previous, start - (end - start), start, district).overall,
        worst_grids=_worst(now, worst),
        language=language,
    )


async def assess(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    district: str | None = None,
    worst: int = WORST,
    utc_offset_min: int = 0,
    zones: ZoneMap | None = None,
    language: str = "en",
) -> Assessment:
    """Read both periods from Redis (every zone's audit stream, with ``zones``) and build the
    :class:`Assessment`."""
    current = await incident_times(redis, start, end, district=district, zones=zones)
    previous = await incident_times(
        redis, start - (end - start), start, district=district, zones=zones
    )
    return build_assessment(
        current,
        previous,
        start,
        end,
        district=district,
        worst=worst,
        utc_offset_min=utc_offset_min,
        language=language,
    )


def _tz(utc_offset_min: int) -> timezone:
    return timezone(timedelta(minutes=utc_offset_min))


def local_date(ts: float, utc_offset_min: int) -> str:
    """The local date (``YYYY-MM-DD``) of a Unix time."""
    return datetime.fromtimestamp(ts, UTC).astimezone(_tz(utc_offset_min)).strftime("%Y-%m-%d")


def _daily(
    incidents: Sequence[IncidentTimes], start: float, end: float, off: int
) -> list[DayCount]:
    per_day = Counter(local_date(i.created, off) for i in incidents)
    first = datetime.fromtimestamp(start, UTC).astimezone(_tz(off)).date()
    last = datetime.fromtimestamp(max(start, end - 0.001), UTC).astimezone(_tz(off)).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [DayCount(day=d.isoformat(), count=per_day[d.isoformat()]) for d in days]


def _worst(incidents: Sequence[IncidentTimes], limit: int) -> list[GridRank]:
    by_grid: dict[str, list[IncidentTimes]] = defaultdict(list)
    for inc in incidents:
        if inc.grid:
            by_grid[inc.grid].append(inc)
    ranks = []
    for grid, members in by_grid.items():
        figures = {
            m: stats(v for i in members if (v := i.durations()[m]) is not None).p90
            for m in ("alarm_to_scene", "alarm_to_dispatch", "resolution")
        }
        if figures["alarm_to_scene"] is None:
            continue
        districts = Counter(i.district for i in members)
        ranks.append(
            GridRank(
                grid=grid,
                district=districts.most_common(1)[0][0],
                incidents=len(members),
                alarm_to_scene_p90=figures["alarm_to_scene"],
                alarm_to_dispatch_p90=figures["alarm_to_dispatch"],
                resolution_p90=figures["resolution"],
            )
        )
    ranks.sort(key=lambda r: (-(r.alarm_to_scene_p90 or 0.0), -r.incidents, r.grid))
    return ranks[:limit]
