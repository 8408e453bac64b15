"""The dispatch benchmarks' workload: the city's poles, units on duty near them, a plan of
alarms (with repeat reports of recent ones, which merge), and a Redis made ready to dispatch
them (functions loaded, units on duty, the road graph stored when asked).

``polewatch bench dispatch`` (:mod:`dispatcher.bench`), the cluster bench, the instruction
counts (:mod:`dispatcher.instructions`) and the digest test all draw from here, so they measure
the same city and the same alarms.
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from dispatcher import library
from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import wire
from polewatch.roads import RoadNetwork, RoadStore, build_network, read_roads, to_geojson
from polewatch.roads.bench import DATA, FILES

Roads = tuple[RoadNetwork, bytes] | None
"""The graph and its GeoJSON to store for a drive-time run; ``None``: straight line."""

SHENZHEN_BBOX = (113.75, 22.45, 114.62, 22.85)
TYPE_MIX = {
    "intrusion": 25, "tripwire": 10, "door_forced": 12, "door_held": 6, "call": 10,
    "citizen_sos": 5, "loitering": 10, "crowd": 5, "camera_offline": 5, "tailgating": 7,
    "invalid_card_burst": 5,
}  # fmt: skip
"""Alarm types and their weights in a plan."""
REPEAT_SHARE = 0.2
"""Share of alarms that are another report of a recent one (same place and group: merged)."""
BATCH = 500
"""Alarms per dispatcher call (the ``batch_size`` of every bench run), units per setup call."""


class Place(NamedTuple):
    """A pole of the city: where alarms are raised and units start."""

    lon: float
    lat: float
    pole: str | None
    district: str | None
    grid: str | None


def city(count: int, seed: int) -> tuple[list[Place], str]:
    """The poles of the demo city, and where they came from."""
    try:
        from polewatch.poles.city import generate_city

        poles = generate_city(seed=seed, count=count)
        places = [Place(p.lon, p.lat, p.code, p.district, p.grid) for p in poles]
        return places, "polewatch.poles.city.generate_city"
    except ImportError:
        rng = random.Random(seed)
        lon0, lat0, lon1, lat1 = SHENZHEN_BBOX
        places = [
            Place(rng.uniform(lon0, lon1), rng.uniform(lat0, lat1), None, None, None)
            for _ in range(count)
        ]
        return places, "uniform random points in Shenzhen's bounding box"


def unit_events(places: list[Place], count: int, seed: int) -> list[wire.PatrolDuty]:
    """``count`` units on duty, each near a random pole (units patrol the roads)."""
    rng = random.Random(seed)
    now = time.time()
    return [
        wire.PatrolDuty(
            unit=f"unit{i}",
            duty="on_duty",
            ts=now,
            grid=p.grid,
            lon=p.lon + rng.uniform(-2e-4, 2e-4),
            lat=p.lat + rng.uniform(-2e-4, 2e-4),
        )  # fmt: skip
        for i, p in enumerate(rng.choices(places, k=count))
    ]


def alarm_plan(places: list[Place], count: int, seed: int) -> list[dict[str, Any]]:
    """Alarm templates (no id or ts yet): random poles, with repeat reports of recent ones."""
    rng = random.Random(seed)
    types, weights = zip(*TYPE_MIX.items(), strict=True)
    recent: deque[dict[str, Any]] = deque(maxlen=200)
    out = []
    for _ in range(count):
        if recent and rng.random() < REPEAT_SHARE:
            alarm = dict(rng.choice(recent))
            alarm["lon"] += rng.uniform(-1e-4, 1e-4)  # about 10 m
        else:
            p = rng.choice(places)
            alarm = {"type": rng.choices(types, weights)[0], "lon": p.lon, "lat": p.lat,
                     "pole": p.pole, "district": p.district, "grid": p.grid}  # fmt: skip
            recent.append(alarm)
        out.append(alarm)
    return out


def make_alarm(template: dict[str, Any], n: int, ts: float) -> wire.Alarm:
    """The ``n``-th alarm of a plan, raised at ``ts``."""
    return wire.Alarm(id=f"bench-{n}", source="bench", ts=ts, **template)


def fields(message: wire.Message) -> Any:
    """A stream entry's fields (typed loosely for redis-py's stubs)."""
    return wire.entry(message)


async def reset(
    client: aioredis.Redis, table: PriorityTable, units: list[wire.PatrolDuty], roads: Roads = None
) -> None:
    """An empty Redis with the functions loaded, the road graph stored (given one) and the units
    on duty (direct calls)."""
    await client.flushall()
    await library.load(client, table)
    if roads is not None:
        await RoadStore(client, "shenzhen").store(*roads)
    conf = library.settings_arg(DispatcherSettings(), "bench-setup")
    now = time.time()  # positions reported now: a long run must not find them stale
    for start in range(0, len(units), BATCH):
        args: list[bytes] = []
        for u in units[start : start + BATCH]:
            args += (library.PATROL, b"", wire.encode(msgspec.structs.replace(u, ts=now)))
        await client.fcall(library.BATCH, 0, conf, *args)


def settings(url: str, roads: Roads = None, **kw: Any) -> DispatcherSettings:
    """A bench dispatcher's settings: by drive time when given ``roads``."""
    return DispatcherSettings(
        redis_url=url, consumer="bench", batch_size=BATCH, drive_time=roads is not None, **kw
    )


def shenzhen_roads() -> Roads:
    """The Shenzhen road graph (both files of ``data/roads``), or ``None`` without the data."""
    if not all((DATA / f).exists() for f in FILES):
        return None
    report = read_roads([DATA / f for f in FILES])
    return build_network(report.ways, city="shenzhen"), to_geojson(report.ways)
