"""Patrol units that drive around the city and answer dispatches through the real patrol API.

Each simulated unit holds a WebSocket to the gateway, exactly as the patrol phone app does: it
goes on duty, reports its position every few seconds, and when a dispatch is pushed it
acknowledges (or now and then declines) after a human delay, drives to the scene at a
realistic speed, reports on scene, works the incident and reports it resolved. A dropped
connection is resumed from the last stream id it saw, as the app does.

With a road network (:mod:`polewatch.roads`) units drive along the roads: to a scene by the
fastest route, each road at its own speed (:attr:`polewatch.roads.Route.times`), and between
jobs on patrol legs of about :attr:`PatrolBehaviour.cruise_leg_m` at the cruising speed, advancing
along the route's line each tick (a unit on the mapped roads waits for a leg the roads reach
rather than leave them; one off the map wanders as without a network). Where the network has
no route to a scene (a unit or a scene more than a kilometre from every mapped road, a place
the one-way streets do not reach) the unit drives in a straight line, and the fleet logs that
once. Without a network every drive is straight.

Everything random comes from one seeded generator per unit, so a run is repeatable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from polewatch.geo import bearing_deg, haversine_m
from polewatch.roads import RoadNetwork

log = logging.getLogger(__name__)

M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class PatrolBehaviour:
    """How simulated units behave; times are real seconds before ``time_scale`` is applied."""

    speed_mps: float = 11.0
    """Driving speed to a scene (about 40 km/h in city traffic)."""
    cruise_mps: float = 3.0
    """Speed while patrolling between jobs."""
    cruise_leg_m: float = 1500.0
    """How far away (by air) a patrol leg between jobs heads, on a road network."""
    position_every_s: float = 5.0
    ack_delay_s: tuple[float, float] = (1.0, 6.0)
    decline_probability: float = 0.03
    on_scene_s: tuple[float, float] = (60.0, 300.0)
    time_scale: float = 1.0
    """> 1 runs the city faster than real time (the demo uses it to stay lively)."""


@dataclass
class SimUnit:
    """One simulated patrol unit and its progress on the current job."""

    id: str
    lon: float
    lat: float
    grid: str | None
    capabilities: list[str]
    rng: random.Random
    heading: float = 0.0
    job: dict[str, Any] | None = None
    path: list[tuple[float, float]] = field(default_factory=list)
    """The rest of the line being driven (``[lon, lat]`` points), on a road network."""
    path_mps: list[float] = field(default_factory=list)
    """The speed of each leg of :attr:`path` (into ``path[i]``): each road's own speed."""
    last_id: str = "0"
    stats: dict[str, int] = field(
        default_factory=lambda: {"dispatches": 0, "resolved": 0, "expired": 0}
    )

    def step(self, dt: float, target: tuple[float, float] | None, speed: float) -> float:
        """Move for ``dt`` seconds towards ``target`` (or wander); return metres left."""
        if target is None:
            self.heading = (self.heading + self.rng.uniform(-25, 25)) % 360
            self.lon, self.lat = ahead(self.lon, self.lat, self.heading, speed * dt)
            return 0.0
        left = haversine_m(self.lon, self.lat, *target)
        if left <= speed * dt:
            self.lon, self.lat = target
            return 0.0
        self.heading = bearing_deg(self.lon, self.lat, *target)
        frac = speed * dt / left
        self.lon += (target[0] - self.lon) * frac
        self.lat += (target[1] - self.lat) * frac
        return left - speed * dt

    def follow(self, dt: float) -> float:
        """Drive ``dt`` seconds along :attr:`path`, each leg at its speed in :attr:`path_mps`;
        return metres left."""
        budget = dt
        while self.path and budget > 0:
            gap = haversine_m(self.lon, self.lat, *self.path[0])
            mps = self.path_mps[0]
            if gap > mps * budget:
                self.step(budget, self.path[0], mps)
                break
            budget -= gap / mps
            self.lon, self.lat = self.path.pop(0)
            self.path_mps.pop(0)
        points = [(self.lon, self.lat), *self.path]
        return sum(haversine_m(*a, *b) for a, b in zip(points, points[1:], strict=False))


def ahead(lon: float, lat: float, heading: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` away from ``(lon, lat)`` towards ``heading`` (degrees)."""
    lat2 = lat + metres * math.cos(math.radians(heading)) / M_PER_DEG_LAT
    return (
        lon
        + metres * math.sin(math.radians(heading)) / (M_PER_DEG_LAT * math.cos(math.radians(lat2))),
        lat2,
    )


class PatrolFleet:
    """Run many :class:`SimUnit` against a gateway until ``stop`` is set."""

    def __init__(
        self,
        gateway_url: str,
        units: list[SimUnit],
        token_for: Callable[[str], str],
        behaviour: PatrolBehaviour | None = None,
        roads: RoadNetwork | None = None,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.roads = roads
        self.straight_drives = 0
        """Drives to a scene that had no road route (the first one is logged)."""
        self.units = units
        self.token_for = token_for
        self.behaviour = behaviour or PatrolBehaviour()
        self.connected = 0

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            asyncio.TaskGroup() as tasks,
        ):
            for unit in self.units:
                tasks.create_task(self._unit(session, unit, stop))

    async def _unit(
        self, session: aiohttp.ClientSession, unit: SimUnit, stop: asyncio.Event
    ) -> None:
        delay = 0.5
        while not stop.is_set():
            url = f"{self.gateway_url.replace('http', 'ws', 1)}/api/patrol/ws"
            params = {"token": self.token_for(unit.id), "last": unit.last_id}
            try:
                async with session.ws_connect(url, params=params, heartbeat=20) as ws:
                    self.connected += 1
                    delay = 0.5
                    try:
                        await self._session(ws, unit, stop)
                    finally:
                        self.connected -= 1
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("unit %s: connection failed: %s", unit.id, exc)
            if stop.is_set():
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)

    async def _session(
        self, ws: aiohttp.ClientWebSocketResponse, unit: SimUnit, stop: asyncio.Event
    ) -> None:
        send = ws.send_json
        await send(
            {
                "type": "duty",
                "duty": "on_duty",
                "grid": unit.grid,
                "capabilities": unit.capabilities,
                "lon": unit.lon,
                "lat": unit.lat,
            }
        )
        driver = asyncio.create_task(self._drive(unit, send, stop))
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(frame.data)
                if "id" in data:
                    unit.last_id = data["id"]
                message = data.get("message") or {}
                kind = message.get("k")
                if kind == "dispatch" and not _expired(message):
                    unit.stats["dispatches"] += 1
                    unit.job = {"incident": message["incident"], "target": (message["lon"],
                                message["lat"]), "phase": "offered",
                                "ack_by": message.get("ack_by")}  # fmt: skip
                elif kind == "dispatch":  # a replayed one whose time is up: the phone hides it
                    unit.stats["expired"] += 1
                elif kind == "cancel" and unit.job and unit.job["incident"] == message["incident"]:
                    unit.job = None
                    unit.path = []
                if stop.is_set():
                    break
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver

    async def _drive(self, unit: SimUnit, send: Callable[[Any], Any], stop: asyncio.Event) -> None:
        b = self.behaviour
        tick = b.position_every_s / b.time_scale
        waiting_until = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            job = unit.job
            now = loop.time()
            if job is None:
                await self._cruise(unit)
            elif job["phase"] == "offered":
                if "answer_at" not in job:
                    job["answer_at"] = now + unit.rng.uniform(*b.ack_delay_s) / b.time_scale
                if now >= job["answer_at"]:
                    if _expired(job):  # the officer was too slow: the phone took it away
                        unit.stats["expired"] += 1
                        unit.job = None
                    elif unit.rng.random() < b.decline_probability:
                        await send({"type": "decline", "incident": job["incident"]})
                        unit.job = None
                    else:
                        await send({"type": "ack", "incident": job["incident"]})
                        job["phase"] = "accepted"
            elif job["phase"] == "accepted":  # set off a moment after accepting, as people do
                await send({"type": "status", "incident": job["incident"], "action": "en_route"})
                job["phase"] = "driving"
                if not await self._plan(unit, job["target"], b.speed_mps):
                    self._drove_straight(unit, job["target"])
            elif job["phase"] == "driving":
                left = unit.follow(b.position_every_s)
                if left == 0.0:
                    await send(
                        {"type": "status", "incident": job["incident"], "action": "on_scene"}
                    )
                    job["phase"] = "on_scene"
                    waiting_until = now + unit.rng.uniform(*b.on_scene_s) / b.time_scale
            elif job["phase"] == "on_scene" and now >= waiting_until:
                await send({"type": "status", "incident": job["incident"], "action": "resolved"})
                unit.stats["resolved"] += 1
                unit.job = None
            await send({"type": "position", "lon": round(unit.lon, 7), "lat": round(unit.lat, 7)})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)

    async def _plan(
        self, unit: SimUnit, target: tuple[float, float], straight_mps: float, cap_mps: float = 0.0
    ) -> bool:
        """Set the unit's path to ``target``: the fastest road route at its speeds (at most
        ``cap_mps`` when given), or the straight line at ``straight_mps`` (then ``False``)."""
        route = None
        if self.roads is not None:  # a search takes milliseconds: keep the loop free
            route = await asyncio.to_thread(self.roads.route, unit.lon, unit.lat, *target)
        if route is None or route.time_s <= 0 or len(route.path) < 2:
            unit.path, unit.path_mps = [target], [straight_mps]
            return False
        unit.path, unit.path_mps = [], []
        for a, b, ta, tb in zip(route.path, route.path[1:], route.times, route.times[1:],
                                strict=False):  # fmt: skip
            mps = haversine_m(*a, *b) / (tb - ta) if tb > ta else straight_mps
            unit.path.append((float(b[0]), float(b[1])))
            unit.path_mps.append(min(mps, cap_mps) if cap_mps > 0 else mps)
        return True

    async def _cruise(self, unit: SimUnit) -> None:
        """Patrol between jobs: along the roads when there is a network, else wandering."""
        b = self.behaviour
        if self.roads is None:
            unit.step(b.position_every_s, None, b.cruise_mps)
            return
        if not unit.path:
            heading = unit.rng.uniform(0, 360)
            leg = ahead(unit.lon, unit.lat, heading, b.cruise_leg_m)
            found = await self._plan(unit, leg, b.cruise_mps, cap_mps=b.cruise_mps)
            if not found and self.roads.snap(unit.lon, unit.lat) is not None:
                unit.path = []  # on the mapped roads: stay on them, try another leg next tick
        unit.follow(b.position_every_s)

    def _drove_straight(self, unit: SimUnit, target: tuple[float, float]) -> None:
        self.straight_drives += 1
        if self.roads is not None and self.straight_drives == 1:
            log.warning(
                "unit %s: no road route from %.5f,%.5f to %.5f,%.5f; driving in a straight line "
                "(logged once; later ones are counted in straight_drives)",
                unit.id, unit.lon, unit.lat, *target,
            )  # fmt: skip


def _expired(dispatch: dict[str, Any]) -> bool:
    """A dispatch whose acknowledgement deadline has passed: a phone no longer offers it (the
    dispatcher has given it to the next unit), so answering it would only be refused."""
    ack_by = dispatch.get("ack_by")
    return isinstance(ack_by, int | float) and ack_by < time.time()


def make_units(
    count: int, starts: list[tuple[float, float, str | None]], seed: int, prefix: str = "U"
) -> list[SimUnit]:
    """``count`` units placed at random start points (lon, lat, grid), deterministic in ``seed``."""
    rng = random.Random(seed)
    units = []
    for n in range(count):
        lon, lat, grid = rng.choice(starts)
        caps = ["patrol"] + (["medic"] if n % 10 == 0 else []) + (["k9"] if n % 25 == 0 else [])
        units.append(
            SimUnit(
                id=f"{prefix}{n + 1:04d}",
                lon=lon,
                lat=lat,
                grid=grid,
                capabilities=caps,
                rng=random.Random(rng.getrandbits(64)),
                heading=rng.uniform(0, 360),
            )
        )
    return units
