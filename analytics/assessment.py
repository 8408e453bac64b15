"""The quarterly public-security assessment of a district (or the whole city): incident counts
by type with the trend against the previous period of the same length, response-time
percentiles, and the grids with the slowest response; as a self-contained HTML page (inline
CSS and SVG charts, everything escaped) or one A4 page of PDF or PNG."""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import msgspec
import redis.asyncio as aioredis

from analytics import charts
from analytics.response_times import (
    METRICS,
    GroupFigures,
    IncidentTimes,
    ResponseTimes,
    incident_times,
    stats,
    summarize,
)
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
) -> Assessment:
    """The assessment of ``[start, end)`` from its incidents and those of the period before."""
    now = [i for i in current if i.state != "merged"]
    before = [i for i in previous if i.state != "merged"]
    counts, old = Counter(i.type for i in now), Counter(i.type for i in before)
    by_type = [
        TypeCount(type=t, count=counts[t], previous=old[t], change_pct=change(counts[t], old[t]))
        for t in sorted(counts.keys() | old.keys(), key=lambda t: (-counts[t], -old[t], t))
    ]
    response = summarize(current, start, end, district)
    return Assessment(
        title=f"Public-security assessment: {district or 'all districts'}",
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
) -> Assessment:
    """Read both periods from Redis (every zone's audit stream, with ``zones``) and build the
    :class:`Assessment`."""
    current = await incident_times(redis, start, end, district=district, zones=zones)
    previous = await incident_times(
        redis, start - (end - start), start, district=district, zones=zones
    )
    return build_assessment(
        current, previous, start, end, district=district, worst=worst, utc_offset_min=utc_offset_min
    )


def _tz(utc_offset_min: int) -> timezone:
    return timezone(timedelta(minutes=utc_offset_min))


def _date(ts: float, utc_offset_min: int) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(_tz(utc_offset_min)).strftime("%Y-%m-%d")


def _daily(
    incidents: Sequence[IncidentTimes], start: float, end: float, off: int
) -> list[DayCount]:
    per_day = Counter(_date(i.created, off) for i in incidents)
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


# --- text ------------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``4 min 05 s``, ``12.5 s``; an en dash when there is no figure."""
    if seconds is None or not math.isfinite(seconds):
        return "\u2013"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _pct(value: float | None) -> str:
    return "new" if value is None else f"{value:+.1f} %"


def period(a: Assessment) -> str:
    first = _date(a.start, a.utc_offset_min)
    last = _date(max(a.start, a.end - 0.001), a.utc_offset_min)
    return f"{first} to {last}"


def summary_lines(a: Assessment) -> list[str]:
    """The headline figures as sentences (the top of the PDF/PNG page)."""
    o = a.response.overall.metrics
    return [
        f"Period {period(a)} (UTC{_offset(a.utc_offset_min)}); previous period of the same length "
        f"for comparison.",
        f"Incidents: {a.incidents} (previous period {a.previous_incidents}, "
        f"{_pct(a.change_pct)}); duplicate reports merged into them: {a.response.merged}.",
        f"Alarm to on scene: p50 {duration(o['alarm_to_scene'].p50)}, "
        f"p90 {duration(o['alarm_to_scene'].p90)} (previous p90 "
        f"{duration(a.previous_overall.metrics['alarm_to_scene'].p90)}).",
        f"Alarm to dispatch p90 {duration(o['alarm_to_dispatch'].p90)}; dispatch to "
        f"acknowledge p90 {duration(o['dispatch_to_ack'].p90)}; resolution p90 "
        f"{duration(o['resolution'].p90)}.",
    ]


def _offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


# --- HTML ------------------------------------------------------------------------------------
_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1c2430;
margin:0;background:#f4f6f9}main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5a6676;margin:0 0 16px}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:180px;
box-shadow:0 1px 2px #0002}.card b{display:block;font-size:22px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{padding:6px 10px;border-bottom:1px solid #e3e7ed;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#eef2f7}
.up{color:#c0392b}.down{color:#1e8449}figure{margin:12px 0;background:#fff;
border-radius:8px;padding:8px;box-shadow:0 1px 2px #0002}figure svg{width:100%;height:auto}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _row(cells: Sequence[object], head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{_e(c)}</{tag}>" for c in cells) + "</tr>"


def _trend(value: float | None) -> str:
    css = "" if value is None or value == 0 else (" class=up" if value > 0 else " class=down")
    return f"<td{css}>{_e(_pct(value))}</td>"


def render_html(a: Assessment) -> str:
    """The report as one self-contained HTML page (no external resource of any kind)."""
    o = a.response.overall.metrics
    cards = [
        ("Incidents", a.incidents, f"previous {a.previous_incidents} ({_pct(a.change_pct)})"),
        (
            "Alarm to on scene, p90",
            duration(o["alarm_to_scene"].p90),
            f"p50 {duration(o['alarm_to_scene'].p50)}",
        ),
        (
            "Alarm to dispatch, p90",
            duration(o["alarm_to_dispatch"].p90),
            f"p95 {duration(o['alarm_to_dispatch'].p95)}",
        ),
        ("Resolution, p90", duration(o["resolution"].p90), f"{a.response.merged} merged"),
    ]
    types = "".join(
        f"<tr><td>{_e(t.type)}</td><td>{t.count}</td><td>{t.previous}</td>{_trend(t.change_pct)}</tr>"
        for t in a.by_type
    )
    prev = a.previous_overall.metrics
    response = "".join(
        _row(
            [
                charts.METRIC_LABELS[m],
                o[m].count,
                duration(o[m].p50),
                duration(o[m].p90),
                duration(o[m].p95),
                duration(prev[m].p90),
            ]
        )
        for m in METRICS
    )
    worst = "".join(
        _row(
            [
                g.grid,
                g.district or "\u2013",
                g.incidents,
                duration(g.alarm_to_scene_p90),
                duration(g.alarm_to_dispatch_p90),
                duration(g.resolution_p90),
            ]
        )
        for g in a.worst_grids
    )
    groups = "".join(
        _row(
            [
                f.key,
                f.incidents,
                duration(f.metrics["alarm_to_dispatch"].p90),
                duration(f.metrics["alarm_to_scene"].p50),
                duration(f.metrics["alarm_to_scene"].p90),
                duration(f.metrics["resolution"].p90),
            ]
        )
        for f in [*a.response.by_priority, *([] if a.district else a.response.by_district)]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(a.title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(a.title)}</h1>
<p class="sub">{_e(period(a))} (UTC{_e(_offset(a.utc_offset_min))}), compared with the
previous period of the same length.</p>
<div class="cards">{
        "".join(f"<div class=card>{_e(t)}<b>{_e(v)}</b>{_e(s)}</div>" for t, v, s in cards)
    }</div>
<h2>Incidents by type</h2>
<table>{_row(["Type", "This period", "Previous", "Change"], head=True)}{types}</table>
<div class="charts"><figure>{charts.svg(a, "types")}</figure>
<figure>{charts.svg(a, "daily")}</figure></div>
<h2>Response times</h2>
<table>{_row(["Step", "Measured", "p50", "p90", "p95", "Previous p90"], head=True)}{
        response
    }</table>
<h2>By priority{"" if a.district else " and district"}</h2>
<table>{
        _row(
            [
                "Group",
                "Incidents",
                "Dispatch p90",
                "On scene p50",
                "On scene p90",
                "Resolution p90",
            ],
            head=True,
        )
    }{groups}</table>
<h2>Grids with the slowest response</h2>
<table>{
        _row(
            ["Grid", "District", "Incidents", "On scene p90", "Dispatch p90", "Resolution p90"],
            head=True,
        )
    }{worst}</table>
<div class="charts"><figure>{charts.svg(a, "response")}</figure>
<figure>{charts.svg(a, "worst")}</figure></div>
</main></body></html>
"""


def render_pdf(a: Assessment) -> bytes:
    """The report as a one-page A4 PDF."""
    return charts.page(a, "pdf")


def render_png(a: Assessment, dpi: int = 110) -> bytes:
    """The report as a PNG image of the A4 page."""
    return charts.page(a, "png", dpi)
