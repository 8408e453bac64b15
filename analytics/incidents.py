"""One incident as the read side sees it: the hash, the alarms merged into it, its timeline."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import msgspec
import redis.asyncio as aioredis

from polewatch import records, wire
from polewatch.zones import ZoneMap

MAX_TS: Final = 253_370_764_799.0
"""The last second of year 9998: with any UTC offset still a four-digit ISO 8601 year."""


class IncidentRecord(msgspec.Struct, kw_only=True):
    """An incident with everything an export needs."""

    incident: records.Incident
    alarms: list[wire.Alarm] = []
    """The alarm bodies still stored (bodies expire; their ids stay in ``alarm_ids``)."""
    alarm_ids: list[str] = []
    timeline: list[wire.IncidentEvent] = []
    """Transitions, oldest first."""


async def load_incident(
    redis: aioredis.Redis, incident_id: str, *, zones: ZoneMap | None = None
) -> IncidentRecord | None:
    """Read an incident, its alarms and its timeline (in its zone, given the deployment's
    ``zones``); ``None`` when there is no such incident.

    Timeline entries or alarm bodies that do not decode are left out (an export shows what
    it can).
    """
    detail = await records.read_incident(redis, incident_id, zones)
    if detail is None:
        return None
    return IncidentRecord(
        incident=detail.incident,
        alarm_ids=detail.alarm_ids,
        alarms=[a for a in detail.alarms if isinstance(a, wire.Alarm)],
        timeline=[e for e in detail.timeline if isinstance(e, wire.IncidentEvent)],
    )


def clamp_ts(ts: float) -> float:
    """A timestamp that can be written as a date (non-finite and negative ones become 0)."""
    if not math.isfinite(ts) or ts < 0:
        return 0.0
    return min(ts, MAX_TS)


def iso(ts: float, utc_offset_min: int = 0, *, fraction: bool = False, utc: str = "-00:00") -> str:
    """``ts`` as ISO 8601 with a numeric offset (``+08:00``); UTC is written as ``utc``
    (``-00:00`` by default, as CAP 1.2 requires)."""
    tz = timezone(timedelta(minutes=utc_offset_min)) if utc_offset_min else UTC
    when = datetime.fromtimestamp(clamp_ts(ts), UTC).astimezone(tz)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += f".{when.microsecond // 1000:03d}"
    if utc_offset_min == 0:
        return text + utc
    sign = "+" if utc_offset_min > 0 else "-"
    hours, minutes = divmod(abs(utc_offset_min), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"
