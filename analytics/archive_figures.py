"""Response-time figures and the assessment computed inside PostgreSQL, for periods too large
to bring into Python (a quarter of a big city: hundreds of thousands of incidents).

The same definitions as :mod:`analytics.response_times` and :mod:`analytics.assessment`: a
duration is ``round(b - a, 3)`` seconds (``NULL`` when a step is missing or runs backwards),
percentiles are nearest-rank (``percentile_disc``: the first value whose rank reaches
``ceil(p * n)``, as :func:`~analytics.response_times.percentile`), the mean is the sum in
ascending order (``sum(v ORDER BY v)``, the float additions Python makes) over the count,
merged incidents count only in ``merged``. The period scan uses the ``incident_created`` index (see
``docs/archive.md``); the grouping is one ``GROUPING SETS`` pass per period.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

import msgspec
import psycopg

from analytics.assessment import WORST, Assessment, DayCount, GridRank, TypeCount, change
from analytics.assessment import build_assessment as _shell
from analytics.response_times import (
    METRICS,
    NO_DISTRICT,
    PERCENTILES,
    GroupFigures,
    ResponseTimes,
    Stats,
)

_PERIOD: Final = """
SELECT {keys}, count(*), mode() WITHIN GROUP (ORDER BY district),
    {figures}
FROM (SELECT COALESCE(NULLIF(district, ''), '{none}') AS district, NULLIF(grid, '') AS grid,
        'P' || priority AS priority, {metrics}
      FROM incident
      WHERE created >= %(start)s AND created < %(end)s AND state <> 'merged' {district}) AS i
{groups}
"""
_FIGURES: Final = ",\n    ".join(
    f"count({m}), percentile_disc(%(fractions)s::float8[]) WITHIN GROUP (ORDER BY {m}),"
    f" sum({m} ORDER BY {m})"
    for m in METRICS
)
_MERGED: Final = """
SELECT count(*) FROM incident
WHERE created >= %(start)s AND created < %(end)s AND state = 'merged' {district}
"""
_ALL_GROUPS: Final = (
    "GROUP BY GROUPING SETS ((), (district), (grid), (priority))",
    "GROUPING(district, grid, priority), district, grid, priority",
)
_OVERALL: Final = ("", "7, NULL, NULL, NULL")
_TYPES_AND_DAYS: Final = """
SELECT type, NULL::bigint AS day, count(*) FILTER (WHERE created >= %(start)s),
    count(*) FILTER (WHERE created < %(start)s)
FROM incident WHERE created >= %(previous)s AND created < %(end)s AND state <> 'merged'
    {district} GROUP BY type
UNION ALL
SELECT NULL, floor((created + %(offset)s) / 86400)::bigint, count(*), 0
FROM incident WHERE created >= %(start)s AND created < %(end)s AND state <> 'merged'
    {district} GROUP BY 2
"""
_KINDS: Final = {0b111: "all", 0b011: "district", 0b101: "grid", 0b110: "priority"}
"""``GROUPING(district, grid, priority)`` of each grouping set (a 1 bit: not grouped by)."""


def _where(district: str | None) -> str:
    return "AND district = %(district)s" if district is not None else ""


async def response_times(
    conn: psycopg.AsyncConnection[Any],
    start: float,
    end: float,
    *,
    district: str | None = None,
    overall_only: bool = False,
) -> tuple[ResponseTimes, dict[str, str | None]]:
    """The :class:`ResponseTimes` of the archived incidents created in ``[start, end)``, and
    each grid's most frequent district."""
    groups, keys = _OVERALL if overall_only else _ALL_GROUPS
    where = _where(district)
    query = _PERIOD.format(none=NO_DISTRICT, district=where, groups=groups, keys=keys,
                           figures=_FIGURES, metrics=", ".join(METRICS))  # fmt: skip
    params = {"start": start, "end": end, "district": district,
              "fractions": [p / 100.0 for p in PERCENTILES]}  # fmt: skip
    async with conn.transaction():
        await conn.execute("SET LOCAL work_mem = '256MB'")
        rows = await (await conn.execute(query.encode(), params)).fetchall()
        merged = await (
            await conn.execute(_MERGED.format(district=where).encode(), params)
        ).fetchone()
    counts: dict[tuple[str, str], int] = {}
    figures: dict[tuple[str, str], dict[str, Stats]] = {}
    grid_district: dict[str, str | None] = {}
    for g, dist, grid, prio, n, mode, *values in rows:
        kind = _KINDS[g]
        key = {"all": "all", "district": dist, "grid": grid, "priority": prio}[kind]
        if key is None:  # incidents without a grid form no grid group
            continue
        counts[(kind, key)] = int(n)
        if kind == "grid":
            grid_district[key] = None if mode == NO_DISTRICT else mode
        figures[(kind, key)] = {
            m: _stats(*values[3 * i : 3 * i + 3]) for i, m in enumerate(METRICS)
        }

    def group(k: tuple[str, str]) -> GroupFigures:
        have = figures.get(k, {})
        return GroupFigures(
            key=k[1], incidents=counts.get(k, 0),
            metrics={m: have.get(m, Stats(count=0)) for m in METRICS},
        )  # fmt: skip

    def of(kind: str) -> list[GroupFigures]:
        return [group(k) for k in sorted(counts) if k[0] == kind]

    result = ResponseTimes(
        start=start, end=end, district=district, incidents=counts.get(("all", "all"), 0),
        merged=int(merged[0]) if merged else 0, overall=group(("all", "all")),
        by_district=of("district"),
        by_grid=of("grid"), by_priority=of("priority"),
    )  # fmt: skip
    return result, grid_district


def _stats(n: int, pcts: list[float] | None, total: float | None) -> Stats:
    if not n or pcts is None or total is None:
        return Stats(count=0)
    p50, p90, p95 = pcts
    return Stats(count=int(n), p50=p50, p90=p90, p95=p95, mean=round(total / n, 3))


async def assess(
    conn: psycopg.AsyncConnection[Any],
    start: float,
    end: float,
    *,
    district: str | None = None,
    worst: int = WORST,
    utc_offset_min: int = 0,
    **presentation: Any,
) -> Assessment:
    """The assessment of ``[start, end)`` against the period before, aggregated in the
    archive: what :func:`analytics.assessment.build_assessment` computes from the same
    incidents. ``presentation`` (e.g. ``language``) goes to the report's title as there."""
    previous_start = start - (end - start)
    shell = _shell([], [], start, end, district=district, worst=worst,
                   utc_offset_min=utc_offset_min, **presentation)  # fmt: skip
    response, grid_district = await response_times(conn, start, end, district=district)
    before, _ = await response_times(
        conn, previous_start, start, district=district, overall_only=True
    )
    params = {"start": start, "end": end, "previous": previous_start, "district": district,
              "offset": utc_offset_min * 60}  # fmt: skip
    cur = await conn.execute(_TYPES_AND_DAYS.format(district=_where(district)).encode(), params)
    counts: dict[str, tuple[int, int]] = {}
    per_day: dict[str, int] = {}
    for type_, day, now, old in await cur.fetchall():
        if type_ is not None:
            counts[type_] = (int(now), int(old))
        else:
            per_day[(date(1970, 1, 1) + timedelta(days=int(day))).isoformat()] = int(now)
    by_type = [
        TypeCount(type=t, count=c, previous=o, change_pct=change(c, o))
        for t, (c, o) in sorted(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    ]
    return msgspec.structs.replace(
        shell,
        incidents=response.incidents,
        previous_incidents=before.incidents,
        change_pct=change(response.incidents, before.incidents),
        by_type=by_type,
        daily=[DayCount(day=d.day, count=per_day.get(d.day, 0)) for d in shell.daily],
        response=response,
        previous_overall=before.overall,
        worst_grids=_worst(response, grid_district, worst),
    )


def _worst(response: ResponseTimes, district: dict[str, str | None], limit: int) -> list[GridRank]:
    ranks = [
        GridRank(
            grid=g.key,
            district=district.get(g.key),
            incidents=g.incidents,
            alarm_to_scene_p90=g.metrics["alarm_to_scene"].p90,
            alarm_to_dispatch_p90=g.metrics["alarm_to_dispatch"].p90,
            resolution_p90=g.metrics["resolution"].p90,
        )  # fmt: skip
        for g in response.by_grid
        if g.metrics["alarm_to_scene"].p90 is not None
    ]
    ranks.sort(key=lambda r: (-(r.alarm_to_scene_p90 or 0.0), -r.incidents, r.grid))
    return ranks[:limit]
