"""CSV export of incidents: a header row (in English or Chinese), then one row per incident with
every transition time (ISO 8601 with the local offset), the grid by id and by its human name,
and every response-time figure (seconds)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import IO, Final

import redis.asyncio as aioredis

from analytics.incidents import iso
from analytics.response_times import METRICS, IncidentTimes, incident_times
from polewatch import i18n, records
from polewatch.poles.gridnames import grid_label
from polewatch.zones import ZoneMap

EVENTS: Final = records.INCIDENT_STATES
COLUMNS: Final = (
    "incident",
    "type",
    "priority",
    "state",
    "district",
    "grid",
    "grid_name",
    "pole",
    "reports",
    "alarm_at",
    *(f"{e}_at" for e in EVENTS),
    *(f"{m}_s" for m in METRICS),
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def header(language: str = "en") -> list[str]:
    """The header row: the stable :data:`COLUMNS` in English, their translations otherwise."""
    if i18n.normalise(language) in (None, i18n.ENGLISH):
        return list(COLUMNS)
    out = []
    for name in COLUMNS:
        if name.endswith("_at") and name != "alarm_at":
            state = i18n.translate(f"state.{name[:-3]}", language)
            out.append(i18n.translate("csv.event_at", language, event=state))
        elif name.endswith("_s"):
            metric = i18n.translate(f"metric.{name[:-2]}", language)
            out.append(i18n.translate("csv.metric_s", language, metric=metric))
        else:
            out.append(i18n.translate(f"csv.{name}", language))
    return out


def write_incidents_csv(
    out: IO[str],
    incidents: Iterable[IncidentTimes],
    *,
    utc_offset_min: int = 0,
    language: str = "en",
) -> int:
    """Write the CSV to a text stream, headed in ``language``; returns the number of incident
    rows. Times are ISO 8601 with the local offset; grids by id and by name."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header(language))
    rows = 0
    for inc in incidents:
        when = {e: iso(t, utc_offset_min, utc="+00:00") for e, t in inc.times.items()}
        durations = inc.durations()
        writer.writerow(
            [
                _cell(inc.id),
                _cell(inc.type),
                inc.priority,
                _cell(inc.state),
                _cell(inc.district or ""),
                _cell(inc.grid or ""),
                _cell(grid_label(inc.grid, language)),
                _cell(inc.pole or ""),
                inc.reports,
                iso(inc.alarm_ts, utc_offset_min, utc="+00:00") if inc.alarm_ts is not None else "",
                *(when.get(e, "") for e in EVENTS),
                *("" if durations[m] is None else f"{durations[m]:.3f}" for m in METRICS),
            ]
        )
        rows += 1
    return rows


def _cell(text: str) -> str:
    # A cell starting like a formula would run in a spreadsheet (CSV injection).
    return "'" + text if text.startswith(_FORMULA_START) else text


async def incidents_csv(
    redis: aioredis.Redis,
    start: float,
    end: float,
    *,
    district: str | None = None,
    utc_offset_min: int = 0,
    zones: ZoneMap | None = None,
    language: str = "en",
) -> str:
    """The CSV of every incident created in ``[start, end)`` (in every zone of ``zones``)."""
    buffer = io.StringIO()
    incidents = await incident_times(redis, start, end, district=district, zones=zones)
    write_incidents_csv(buffer, incidents, utc_offset_min=utc_offset_min, language=language)
    return buffer.getvalue()
