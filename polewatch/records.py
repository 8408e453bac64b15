"""The stored shape of incidents and units: the Redis hashes the dispatcher writes (from its
Redis Functions) and the gateway, command centre and analytics read.

The field names here are the contract; ``dispatcher/lua/`` writes exactly these.
Timestamps are Unix seconds as decimal strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec
import redis.asyncio as aioredis

from polewatch import keys, wire

if TYPE_CHECKING:
    from polewatch.zones import ZoneMap

INCIDENT_STATES: Final = (
    "new",
    "dispatched",
    "acknowledged",
    "en_route",
    "on_scene",
    "resolved",
    "closed",
    "escalated",
    "cancelled",
    "merged",
)
"""An incident's ``state``; a ``t_<state>`` field holds the time it was first entered."""

OPEN_STATES: Final = frozenset(
    {"new", "dispatched", "acknowledged", "en_route", "on_scene", "escalated"}
)

UNIT_STATUSES: Final = ("off_duty", "available", "dispatched", "busy", "unresponsive")
"""``dispatched``: offered an incident, not yet acknowledged; ``busy``: working one;
``unresponsive``: let dispatches time out, out of the rotation until it answers or an operator
restores it (the dispatcher's ``unresponsive_after`` setting)."""


class Incident(msgspec.Struct, kw_only=True):
    id: str
    state: str
    priority: int
    type: str
    group: str
    lon: float
    lat: float
    created: float
    reports: int = 1
    pole: str | None = None
    district: str | None = None
    grid: str | None = None
    text: str | None = None
    units: list[str] = []
    """Units currently assigned (dispatched or working)."""
    wanted: int = 1
    """How many units the incident needs (P1 may need two)."""
    first_alarm: str | None = None
    alarm_ts: float | None = None
    evaluation: int | None = None
    merged_into: str | None = None
    caller_far_m: float | None = None
    """How far a reporter's own position (phone, caller) was from the pole, when farther than
    the gateway's limit: the place is in doubt (set from the alarm's ``extra``)."""
    times: dict[str, float] = {}
    """``state -> time first entered`` (from the ``t_<state>`` fields)."""


class Unit(msgspec.Struct, kw_only=True):
    id: str
    duty: str = "off_duty"
    status: str = "off_duty"
    grid: str | None = None
    capabilities: list[str] = []
    incident: str | None = None
    lon: float | None = None
    lat: float | None = None
    seen: float | None = None
    """Time of the last position report."""
    missed: int = 0
    """Dispatches in a row it let time out (see ``unresponsive``)."""
    missed_incident: str | None = None
    """The last incident whose dispatch it let time out."""


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def _split(value: str | None) -> list[str]:
    return [x for x in (value or "").split(",") if x]


def incident_from_hash(raw: dict[Any, Any]) -> Incident | None:
    """Parse an incident hash (as returned by HGETALL); ``None`` for an empty one.

    Fields are stored once and derived here (the dispatcher writes them so since issue 15;
    hashes written before carry them all): ``created`` is ``t_new``, ``group`` the type,
    ``units`` empty, and the last report's time (:func:`last_report_ts`) the alarm's."""
    if not raw:
        return None
    h = _text(raw)
    times = {k[2:]: float(v) for k, v in h.items() if k.startswith("t_") and v}

    def opt_float(key: str) -> float | None:
        return float(h[key]) if h.get(key) else None

    def opt_int(key: str) -> int | None:
        return int(h[key]) if h.get(key) else None

    return Incident(
        id=h["id"],
        state=h["state"],
        priority=int(h["priority"]),
        type=h["type"],
        group=h.get("group", h["type"]),
        lon=float(h["lon"]),
        lat=float(h["lat"]),
        created=float(h.get("created") or h["t_new"]),
        reports=int(h.get("reports", "1")),
        pole=h.get("pole") or None,
        district=h.get("district") or None,
        grid=h.get("grid") or None,
        text=h.get("text") or None,
        units=_split(h.get("units")),
        wanted=int(h.get("wanted", "1")),
        first_alarm=h.get("first_alarm") or None,
        alarm_ts=opt_float("alarm_ts"),
        evaluation=opt_int("evaluation"),
        merged_into=h.get("merged_into") or None,
        caller_far_m=opt_float("caller_far_m"),
        times=times,
    )


LAST_REPORT_FIELDS: Final = ("last_ts", "alarm_ts")
"""The fields to read (HMGET) for :func:`last_report_ts`."""


def last_report_ts(last_ts: Any, alarm_ts: Any) -> float:
    """The time of an incident's last report from its :data:`LAST_REPORT_FIELDS` (raw
    values; ``last_ts`` is stored only once a later report came); 0 when neither is there."""
    value = last_ts or alarm_ts
    return float(value) if value else 0.0


def unit_from_hash(raw: dict[Any, Any]) -> Unit | None:
    """Parse a unit hash (as returned by HGETALL); ``None`` for an empty one."""
    if not raw:
        return None
    h = _text(raw)
    return Unit(
        id=h["id"],
        duty=h.get("duty", "off_duty"),
        status=h.get("status", "off_duty"),
        grid=h.get("grid") or None,
        capabilities=_split(h.get("caps")),
        incident=h.get("incident") or None,
        lon=float(h["lon"]) if h.get("lon") else None,
        lat=float(h["lat"]) if h.get("lat") else None,
        seen=float(h["seen"]) if h.get("seen") else None,
        missed=int(h.get("missed") or 0),
        missed_incident=h.get("missed_incident") or None,
    )


class IncidentDetail(msgspec.Struct, kw_only=True):
    """An incident with its timeline and the alarms merged into it (:func:`read_incident`).

    A stored entry that does not decode is kept in its place as the reason (a ``str``), so a
    reader can show it or leave it out; the dead-letter stream is the writer's business.
    """

    incident: Incident
    timeline: list[wire.IncidentEvent | str] = []
    """Transitions, oldest first."""
    alarm_ids: list[str] = []
    """Every alarm merged into the incident, first one first."""
    alarms: list[wire.Alarm | str | None] = []
    """The body of each of ``alarm_ids``: ``None`` once it expired (bodies do; ids stay)."""


def incident_zone(incident_id: str, zones: ZoneMap | None = None) -> keys.Zone:
    """The zone holding an incident's keys: in a deployment with ``zones``, the one its id
    names (:func:`~polewatch.keys.zone_of_incident`); otherwise the default zone, whatever
    the id looks like."""
    if zones is None or not zones.zoned:
        return keys.DEFAULT
    return keys.zone_of_incident(incident_id)


ALARM_SEPARATOR: Final = b"\n"
"""Between the incident id and the body in an alarm's record (ids never hold a newline)."""


def alarm_record(raw: bytes | str | None) -> tuple[str | None, bytes | None]:
    """The incident an alarm went to and the alarm itself (MessagePack), from the value of
    its record (:func:`~polewatch.keys.Zone.alarm`): ``<incident id>\\n<body>``, one key
    since issue 15. A record written before holds the id alone (its body is in
    :func:`~polewatch.keys.Zone.alarm_body`): the body is ``None`` then, as for no record."""
    if raw is None:
        return None, None
    data = raw.encode() if isinstance(raw, str) else raw
    head, sep, body = data.partition(ALARM_SEPARATOR)
    return head.decode(errors="replace"), (body if sep else None)


def alarm_incident(raw: bytes | str | None) -> str | None:
    """The incident id of an alarm's record value (:func:`alarm_record`); ``None`` for none."""
    return alarm_record(raw)[0]


def incident_alarm_ids(listed: list[Any], incident: Incident) -> list[str]:
    """An incident's alarm ids from its alarm list (as LRANGE returns it): the list is
    written once a second alarm joins; until then the ``first_alarm`` field is all of it."""
    ids = [a.decode() if isinstance(a, bytes) else str(a) for a in listed]
    if not ids and incident.first_alarm:
        ids = [incident.first_alarm]
    return ids


async def read_incident(
    redis: aioredis.Redis, incident_id: str, zones: ZoneMap | None = None
) -> IncidentDetail | None:
    """Read an incident, its timeline and its alarms (two round trips, a third for records
    written before issue 15); ``None`` when there is no such incident. Everything is read in
    the incident's zone (:func:`incident_zone`), where its dispatcher also kept the records
    of the alarms it merged, so the MGET stays on one shard of a cluster."""
    zone = incident_zone(incident_id, zones)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(zone.incident(incident_id))
        pipe.lrange(zone.incident_timeline(incident_id), 0, -1)
        pipe.lrange(zone.incident_alarms(incident_id), 0, -1)
        raw, timeline, alarm_ids_raw = await pipe.execute()
    incident = incident_from_hash(raw)
    if incident is None:
        return None
    alarm_ids = incident_alarm_ids(alarm_ids_raw, incident)
    found = await redis.mget([zone.alarm(a) for a in alarm_ids]) if alarm_ids else []
    bodies: list[bytes | None] = [alarm_record(v)[1] for v in found]
    older = [a for a, b in zip(alarm_ids, bodies, strict=True) if b is None]
    if older:  # records written before issue 15 (or expired): the separate body keys
        old_bodies: list[Any] = await redis.mget([zone.alarm_body(a) for a in older])
        by_id = dict(zip(older, old_bodies, strict=True))
        bodies = [by_id[a] if b is None else b for a, b in zip(alarm_ids, bodies, strict=True)]
    return IncidentDetail(
        incident=incident,
        timeline=[_decoded(item, wire.IncidentEvent) for item in timeline],
        alarm_ids=alarm_ids,
        alarms=[None if body is None else _decoded(body, wire.Alarm) for body in bodies],
    )


def _decoded(data: bytes, kind: Any) -> Any:
    try:
        return wire.decode(data, kind)
    except wire.WireError as exc:
        return exc.reason
