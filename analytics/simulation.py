"""A simulated history of incidents, written to Redis exactly as the dispatcher's contract
says (incident hashes per :mod:`polewatch.records`, :class:`~polewatch.wire.IncidentEvent`
entries on the audit stream and the timelines, alarm lists and bodies).

For tests with hand-computed figures, for previewing reports without a running city, and for
demos. Given the deployment's zones, an incident is written in the zone its id names
(``futian-7``), as a zoned dispatcher would (:func:`polewatch.records.incident_zone`). It
writes to whatever Redis it is given: never point it at a live deployment.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from polewatch import connection, records, wire
from polewatch.zones import ZoneMap

DISTRICTS: Final = ("Futian", "Luohu", "Nanshan", "Bao'an", "Longgang", "Yantian")
_CENTRES: Final = {
    "Futian": (114.055, 22.541),
    "Luohu": (114.131, 22.548),
    "Nanshan": (113.930, 22.533),
    "Bao'an": (113.884, 22.555),
    "Longgang": (114.247, 22.720),
    "Yantian": (114.237, 22.557),
}
_TYPES: Final = (
    ("citizen_sos", 1, 3),
    ("call", 2, 3),
    ("intrusion", 2, 4),
    ("crowd", 2, 1),
    ("loitering", 3, 3),
    ("door_forced", 2, 2),
    ("tailgating", 3, 2),
    ("tamper", 3, 1),
    ("camera_offline", 4, 1),
)


class Step(msgspec.Struct, frozen=True, array_like=True):
    """One event ``after`` seconds past the incident's creation."""

    event: wire.IncidentState
    after: float
    unit: str | None = None


class SimulatedIncident(msgspec.Struct, kw_only=True):
    id: str
    type: str
    priority: int
    created: float
    lon: float
    lat: float
    district: str | None = None
    grid: str | None = None
    pole: str | None = None
    text: str | None = None
    alarm_delay: float = 0.0
    """How long before creation the alarm was raised at its source."""
    steps: Sequence[Step] = ()
    reports: int = 1

    @property
    def state(self) -> str:
        states = [s.event for s in self.steps if s.event in _STATES]
        return states[-1] if states else "new"


_STATES: Final = frozenset(records.INCIDENT_STATES) - {"new"}


async def write_incidents(
    redis: aioredis.Redis, incidents: Iterable[SimulatedIncident], *, zones: ZoneMap | None = None
) -> int:
    """Write the incidents and their histories; returns the number of audit entries."""
    incidents = list(incidents)
    events: list[tuple[float, str, bytes, str]] = []
    async with redis.pipeline(transaction=False) as pipe:
        for inc in incidents:
            zone = records.incident_zone(inc.id, zones)
            alarm_id = f"sim-{inc.id}"
            alarm = wire.Alarm(
                id=alarm_id,
                type=inc.type,
                source="simulation",
                ts=inc.created - inc.alarm_delay,
                lon=inc.lon,
                lat=inc.lat,
                pole=inc.pole,
                district=inc.district,
                grid=inc.grid,
                text=inc.text,
            )
            history = [Step("new", 0.0), *inc.steps]
            fields: dict[Any, Any] = {
                "id": inc.id,
                "state": inc.state,
                "priority": inc.priority,
                "type": inc.type,
                "group": inc.type,
                "lon": repr(inc.lon),
                "lat": repr(inc.lat),
                "created": repr(inc.created),
                "reports": inc.reports,
                "wanted": 1,
                "first_alarm": alarm_id,
                "alarm_ts": repr(alarm.ts),
                "last_ts": repr(alarm.ts),
                "units": ",".join(
                    sorted({s.unit for s in inc.steps if s.unit})
                    if inc.state in ("dispatched", "acknowledged", "en_route", "on_scene")
                    else ()
                ),
            }
            for name in ("pole", "district", "grid", "text"):
                value = getattr(inc, name)
                if value:
                    fields[name] = value
            for step in history:
                if step.event in _STATES or step.event == "new":
                    fields.setdefault(f"t_{step.event}", repr(inc.created + step.after))
            pipe.hset(zone.incident(inc.id), mapping=fields)
            pipe.rpush(zone.incident_alarms(inc.id), alarm_id)
            pipe.set(zone.alarm_body(alarm_id), wire.encode(alarm))
            for step in history:
                ts = inc.created + step.after
                event = wire.IncidentEvent(
                    incident=inc.id,
                    event=step.event,
                    ts=ts,
                    unit=step.unit,
                    alarm=alarm_id if step.event == "new" else None,
                    actor=step.unit or "dispatcher",
                    priority=inc.priority,
                    reports=1 if step.event == "new" else None,
                )
                packed = wire.encode(event)
                pipe.rpush(zone.incident_timeline(inc.id), packed)
                events.append((ts, inc.id, packed, zone.audit))
        await pipe.execute()
    events.sort(key=lambda e: (e[0], e[1]))
    # Stream ids only grow: an event older than its stream's last entry is stamped with that
    # entry's millisecond (as if the dispatcher had written it late).
    streams = sorted({e[3] for e in events})
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, count=1)
        tops = await pipe.execute()
    floor = {
        stream: int(_text(last[0][0] if last else b"0-0").split("-")[0])
        for stream, last in zip(streams, tops, strict=True)
    }
    async with redis.pipeline(transaction=False) as pipe:
        for ts, _, packed, stream in events:
            pipe.xadd(stream, {wire.FIELD: packed}, id=f"{max(floor[stream], int(ts * 1000))}-*")
        await pipe.execute()
    return len(events)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def write_incidents_to(
    url: str,
    incidents: Iterable[SimulatedIncident],
    *,
    cluster: bool = False,
    zones: ZoneMap | None = None,
) -> int:
    """:func:`write_incidents` from synchronous code, to the Redis (``cluster``: the Redis
    Cluster) at ``url``."""

    async def run() -> int:
        client = connection.connect(url, name="simulation", cluster=cluster)
        try:
            return await write_incidents(client, incidents, zones=zones)
        finally:
            await client.aclose()

    return asyncio.run(run())


def simulate_week(start: float, *, seed: int = 0, per_day: int = 40) -> list[SimulatedIncident]:
    """A plausible week of incidents from ``start`` (deterministic for a seed)."""
    rng = random.Random(seed)
    out = []
    weights = [w for _, _, w in _TYPES]
    for n in range(per_day * 7):
        day = n // per_day
        created = start + day * 86_400 + rng.uniform(0, 86_400)
        district = rng.choice(DISTRICTS)
        kind, priority, _ = rng.choices(_TYPES, weights)[0]
        lon, lat = _CENTRES[district]
        grid = f"{district[:2].upper()}-{rng.randint(1, 6):02d}"
        slow = 2.5 if grid.endswith("-06") else 1.0  # one grid per district lags behind
        unit = f"unit-{rng.randint(1, 60)}"
        dispatch = rng.uniform(0.2, 3.0)
        ack = dispatch + rng.uniform(3, 30) * slow
        scene = ack + rng.uniform(120, 600) * slow / (2 if priority == 1 else 1)
        resolved = scene + rng.uniform(300, 1800)
        steps = [
            Step("dispatched", dispatch, unit),
            Step("acknowledged", ack, unit),
            Step("en_route", ack + 5, unit),
            Step("on_scene", scene, unit),
            Step("resolved", resolved, unit),
            Step("closed", resolved + 600),
        ]
        if rng.random() < 0.05:
            steps = [*steps[:2], Step("cancelled", ack + 60)]
        out.append(
            SimulatedIncident(
                id=str(n + 1),
                type=kind,
                priority=priority,
                created=round(created, 3),
                lon=lon + rng.uniform(-0.02, 0.02),
                lat=lat + rng.uniform(-0.02, 0.02),
                district=district,
                grid=grid,
                pole=f"{rng.randint(1, 9)}{rng.randint(0, 999999):06d}",
                alarm_delay=round(rng.uniform(0, 2), 3),
                steps=steps,
            )
        )
    return out


def known_week(start: float) -> list[SimulatedIncident]:
    """A small week with round numbers, for checking figures by hand.

    Eight incidents in ``[start, start + 7 days)`` plus one merged duplicate, three in the
    week before and one at the first second after the week::

        id type          P district grid  alarm->disp disp->ack ack->scene alarm->scene resol.
        1  citizen_sos   1 Futian   FT-01     3         10        170        183        781
        2  intrusion     2 Futian   FT-01     2         30        300        332       1232
        3  intrusion     2 Futian   FT-02     5         20        600        625       1824
        4  call          2 Luohu    LH-01     1         60        420        481       1081
        5  door_forced   2 Luohu    LH-01     3         40        900        943       1543
        6  loitering     3 Luohu    LH-01     2         15   (cancelled)
        7  camera_offline 4 Futian  FT-02   (escalated, never dispatched)
        8  citizen_sos   1 Futian   FT-01   (merged into 1, which so holds two reports)
        9  intrusion     2 Futian   FT-02     2         38        300        340        940
           (first unit timed out after 30 s, the second acknowledged)
    """
    day, hour = 86_400.0, 3_600.0
    u = "unit-a"

    def done(disp: float, ack: float, scene: float, resolved: float, unit: str = u) -> list[Step]:
        return [
            Step("dispatched", disp, unit),
            Step("acknowledged", ack, unit),
            Step("en_route", ack + 5, unit),
            Step("on_scene", scene, unit),
            Step("resolved", resolved, unit),
            Step("closed", resolved + 300),
        ]

    def inc(
        iid: str,
        kind: str,
        p: int,
        at: float,
        district: str,
        grid: str,
        steps: list[Step],
        delay: float = 0.0,
        reports: int = 1,
    ) -> SimulatedIncident:
        lon, lat = _CENTRES[district]
        return SimulatedIncident(
            id=iid,
            type=kind,
            priority=p,
            created=start + at,
            lon=lon,
            lat=lat,
            district=district,
            grid=grid,
            pole="1000001",
            alarm_delay=delay,
            steps=steps,
            reports=reports,
        )

    return [
        inc("11", "intrusion", 2, -day, "Futian", "FT-01", done(1, 11, 111, 611)),
        inc("12", "call", 2, -2 * day, "Luohu", "LH-01", done(1, 11, 111, 611)),
        inc("13", "call", 2, -1.0, "Luohu", "LH-01", done(1, 11, 111, 611)),
        inc(
            "1",
            "citizen_sos",
            1,
            0.0,
            "Futian",
            "FT-01",
            done(1, 11, 181, 781),
            delay=2.0,
            reports=2,
        ),
        inc("2", "intrusion", 2, day + 2 * hour, "Futian", "FT-01", done(2, 32, 332, 1232)),
        inc("3", "intrusion", 2, 2 * day, "Futian", "FT-02", done(4, 24, 624, 1824), delay=1.0),
        inc("4", "call", 2, 2 * day + 5 * hour, "Luohu", "LH-01", done(1, 61, 481, 1081)),
        inc("5", "door_forced", 2, 3 * day, "Luohu", "LH-01", done(3, 43, 943, 1543)),
        inc(
            "6",
            "loitering",
            3,
            4 * day,
            "Luohu",
            "LH-01",
            [Step("dispatched", 2, u), Step("acknowledged", 17, u), Step("cancelled", 100)],
        ),
        inc("7", "camera_offline", 4, 5 * day, "Futian", "FT-02", [Step("escalated", 1)]),
        inc("8", "citizen_sos", 1, 30.0, "Futian", "FT-01", [Step("merged", 5)]),
        inc(
            "9",
            "intrusion",
            2,
            6 * day + 23 * hour,
            "Futian",
            "FT-02",
            [
                Step("dispatched", 2, "unit-b"),
                Step("timeout", 32, "unit-b"),
                *done(33, 40, 340, 940),
            ],
        ),
        inc("10", "intrusion", 2, 7 * day, "Futian", "FT-01", done(1, 2, 3, 4)),
    ]
