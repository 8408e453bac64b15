"""The assessment as people read it: one self-contained HTML page (inline CSS and SVG charts,
everything escaped), or one A4 page of PDF or PNG drawn by :mod:`analytics.charts`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final

from analytics import charts
from analytics.assessment import Assessment
from analytics.response_times import METRICS
from analytics.wording import alarm_type, duration, group, percent, period, zone
from polewatch import districts, i18n
from polewatch.poles.gridnames import grid_label

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


def _trend(value: float | None, language: str) -> str:
    css = "" if value is None or value == 0 else (" class=up" if value > 0 else " class=down")
    return f"<td{css}>{_e(percent(value, language))}</td>"


def render_html(a: Assessment) -> str:
    """The report as one self-contained HTML page (no external resource of any kind), in the
    assessment's language."""
    lang = a.language

    def t(key: str, **params: object) -> str:
        return i18n.translate(key, lang, **params)

    def d(seconds: float | None) -> str:
        return duration(seconds, lang)

    o = a.response.overall.metrics
    change = percent(a.change_pct, lang)
    cards = [
        (t("report.card.incidents"), a.incidents,
         t("report.card.previous", n=a.previous_incidents, change=change)),
        (t("report.card.scene_p90"), d(o["alarm_to_scene"].p90),
         f"p50 {d(o['alarm_to_scene'].p50)}"),
        (t("report.card.dispatch_p90"), d(o["alarm_to_dispatch"].p90),
         f"p95 {d(o['alarm_to_dispatch'].p95)}"),
        (t("report.card.resolution_p90"), d(o["resolution"].p90),
         t("report.card.merged", n=a.response.merged)),
    ]  # fmt: skip
    types = "".join(
        f"<tr><td>{_e(alarm_type(a, x.type))}</td><td>{x.count}</td><td>{x.previous}</td>"
        f"{_trend(x.change_pct, lang)}</tr>"
        for x in a.by_type
    )
    prev = a.previous_overall.metrics
    response = "".join(
        _row(
            [t(f"metric.{m}"), o[m].count, d(o[m].p50), d(o[m].p90), d(o[m].p95), d(prev[m].p90)]
        )  # fmt: skip
        for m in METRICS
    )
    worst = "".join(
        _row(
            [
                grid_label(g.grid, lang),
                districts.display(g.district, lang) or "\u2013",
                g.incidents,
                d(g.alarm_to_scene_p90),
                d(g.alarm_to_dispatch_p90),
                d(g.resolution_p90),
            ]
        )  # fmt: skip
        for g in a.worst_grids
    )
    groups = "".join(
        _row(
            [
                group(a, f.key),
                f.incidents,
                d(f.metrics["alarm_to_dispatch"].p90),
                d(f.metrics["alarm_to_scene"].p50),
                d(f.metrics["alarm_to_scene"].p90),
                d(f.metrics["resolution"].p90),
            ]
        )  # fmt: skip
        for f in [*a.response.by_priority, *([] if a.district else a.response.by_district)]
    )
    heads = {
        "types": ["report.col.type", "report.col.this", "report.col.previous", "report.col.change"],
        "response": ["report.col.step", "report.col.measured", "", "", "",
                     "report.col.previous_p90"],
        "groups": ["report.col.group", "report.col.incidents", "report.col.dispatch_p90",
                   "report.col.scene_p50", "report.col.scene_p90", "report.col.resolution_p90"],
        "worst": ["report.col.grid", "report.col.district", "report.col.incidents",
                  "report.col.scene_p90", "report.col.dispatch_p90",
                  "report.col.resolution_p90"],
    }  # fmt: skip
    percentiles = iter(("p50", "p90", "p95"))
    head = {
        name: _row([t(k) if k else next(percentiles) for k in keys], head=True)
        for name, keys in heads.items()
    }
    groups_title = t("report.h.groups_priority" if a.district else "report.h.groups")
    card_html = "".join(f"<div class=card>{_e(x)}<b>{_e(v)}</b>{_e(s)}</div>" for x, v, s in cards)
    return f"""<!DOCTYPE html>
<html lang="{_e(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(a.title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(a.title)}</h1>
<p class="sub">{_e(t("report.sub", period=period(a), tz=zone(a)))}</p>
<div class="cards">{card_html}</div>
<h2>{_e(t("report.h.types"))}</h2>
<table>{head["types"]}{types}</table>
<div class="charts"><figure>{charts.svg(a, "types")}</figure>
<figure>{charts.svg(a, "daily")}</figure></div>
<h2>{_e(t("report.h.response"))}</h2>
<table>{head["response"]}{response}</table>
<h2>{_e(groups_title)}</h2>
<table>{head["groups"]}{groups}</table>
<h2>{_e(t("report.h.worst"))}</h2>
<table>{head["worst"]}{worst}</table>
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
