"""The assessment's words: durations, percentages, the period and the headline sentences,
shared by the HTML page (:mod:`analytics.report`) and the PDF/PNG page
(:mod:`analytics.charts`)."""

from __future__ import annotations

import math

from analytics.assessment import Assessment, local_date


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


def percent(value: float | None) -> str:
    return "new" if value is None else f"{value:+.1f} %"


def period(a: Assessment) -> str:
    first = local_date(a.start, a.utc_offset_min)
    last = local_date(max(a.start, a.end - 0.001), a.utc_offset_min)
    return f"{first} to {last}"


def summary_lines(a: Assessment) -> list[str]:
    """The headline figures as sentences (the top of the PDF/PNG page)."""
    o = a.response.overall.metrics
    return [
        f"Period {period(a)} (UTC{utc_offset(a.utc_offset_min)}); previous period of the same "
        f"length for comparison.",
        f"Incidents: {a.incidents} (previous period {a.previous_incidents}, "
        f"{percent(a.change_pct)}); duplicate reports merged into them: {a.response.merged}.",
        f"Alarm to on scene: p50 {duration(o['alarm_to_scene'].p50)}, "
        f"p90 {duration(o['alarm_to_scene'].p90)} (previous p90 "
        f"{duration(a.previous_overall.metrics['alarm_to_scene'].p90)}).",
        f"Alarm to dispatch p90 {duration(o['alarm_to_dispatch'].p90)}; dispatch to "
        f"acknowledge p90 {duration(o['dispatch_to_ack'].p90)}; resolution p90 "
        f"{duration(o['resolution'].p90)}.",
    ]


def utc_offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"
