"""The assessment as people read it: one self-contained HTML page (inline CSS and SVG charts,
everything escaped), or one A4 page of PDF or PNG drawn by :mod:`analytics.charts`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final

from analytics import charts
from analytics.assessment import Assessment
from analytics.response_times import METRICS
from analytics.wording import duration, percent, period, utc_offset

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
    return f"<td{css}>{_e(percent(value))}</td>"


def render_html(a: Assessment) -> str:
    """The report as one self-contained HTML page (no external resource of any kind)."""
    o = a.response.overall.metrics
    cards = [
        ("Incidents", a.incidents, f"previous {a.previous_incidents} ({percent(a.change_pct)})"),
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
<p class="sub">{_e(period(a))} (UTC{_e(utc_offset(a.utc_offset_min))}), compared with the
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
