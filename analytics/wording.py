"""The assessment's words, in the report's language: durations, percentages, the period and the
headline sentences, shared by the HTML page (:mod:`analytics.report`) and the PDF/PNG page
(:mod:`analytics.charts`). Every text comes from the message catalogues (:mod:`polewatch.i18n`);
districts are shown by their name in that language (:mod:`polewatch.districts`)."""

from __future__ import annotations

import math

from analytics.assessment import Assessment, local_date
from polewatch import districts, i18n


def duration(seconds: float | None, language: str = "en") -> str:
    """``1 h 02 min``, ``4 min 05 s``, ``12.5 s`` (Chinese: ``4 分 05 秒``); an en dash when
    there is no figure."""
    if seconds is None or not math.isfinite(seconds):
        return "\u2013"
    if seconds < 60:
        return i18n.translate("duration.s", language, n=f"{seconds:.1f}")
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return i18n.translate("duration.min_s", language, m=minutes, s=f"{secs:02d}")
    hours, minutes = divmod(minutes, 60)
    return i18n.translate("duration.h_min", language, h=hours, m=f"{minutes:02d}")


def percent(value: float | None, language: str = "en") -> str:
    """A change in percent with its sign; "new" when the previous period had none."""
    return i18n.translate("report.new", language) if value is None else f"{value:+.1f} %"


def period(a: Assessment) -> str:
    """The period's first and last local day."""
    first = local_date(a.start, a.utc_offset_min)
    last = local_date(max(a.start, a.end - 0.001), a.utc_offset_min)
    return i18n.translate("report.period_range", a.language, first=first, last=last)


def zone(a: Assessment) -> str:
    """The report's time zone as people read it: ``UTC+08:00``."""
    return f"UTC{utc_offset(a.utc_offset_min)}"


def group(a: Assessment, key: str) -> str:
    """A figures group's key (a priority, a district) as the reader reads it."""
    if key[:1] == "P" and key[1:].isdigit():
        return i18n.translate("priority.p", a.language, n=key[1:])
    return districts.display(key, a.language)


def alarm_type(a: Assessment, name: str) -> str:
    """An alarm type's name in the report's language (unknown types as they are)."""
    key = f"type.{name}"
    text = i18n.translate(key, a.language)
    return name if text == key else text


def summary_lines(a: Assessment) -> list[str]:
    """The headline figures as sentences (the top of the PDF/PNG page)."""
    o = a.response.overall.metrics
    lang = a.language

    def d(seconds: float | None) -> str:
        return duration(seconds, lang)

    return [
        i18n.translate("report.summary.period", lang, period=period(a), tz=zone(a)),
        i18n.translate(
            "report.summary.incidents",
            lang,
            n=a.incidents,
            previous=a.previous_incidents,
            change=percent(a.change_pct, lang),
            merged=a.response.merged,
        ),
        i18n.translate(
            "report.summary.scene",
            lang,
            p50=d(o["alarm_to_scene"].p50),
            p90=d(o["alarm_to_scene"].p90),
            previous=d(a.previous_overall.metrics["alarm_to_scene"].p90),
        ),
        i18n.translate(
            "report.summary.steps",
            lang,
            dispatch=d(o["alarm_to_dispatch"].p90),
            ack=d(o["dispatch_to_ack"].p90),
            resolution=d(o["resolution"].p90),
        ),
    ]


def utc_offset(minutes: int) -> str:
    """``+08:00`` for 480 minutes east of UTC."""
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"
