"""Routes and road ETAs: ``GET /api/route`` for the patrol app and the console, and the road
ETA of a dispatched unit for the citizen's status.

Both use the city's road graph from Redis (:func:`polewatch.roads.load_roads`: one ``GET`` of
its version per call, rebuilt only when a new import changed it). A route is a full search
over the graph (a few milliseconds), so it runs in a worker thread, never on the event loop.
Where the graph cannot answer (no graph imported, a point more than a kilometre from every
road, a destination the one-way streets do not reach) the answer is the straight line at the
gateway's ``patrol_speed_mps``, marked ``"source": "straight"``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from gateway.auth import authorize
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY
from polewatch import geo
from polewatch.roads import RoadNetwork, load_roads

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

ROLES: Final = ("unit", "operator", "supervisor")
"""A patrol unit's token or an operator's session may ask for routes."""
MAX_POINT_CHARS: Final = 64
ETA_LIMIT_S: Final = 2 * 3600.0
"""Drives longer than this are not searched for a status (the straight line answers)."""
Source = Literal["road", "straight"]


class PointError(ValueError):
    """A ``LON,LAT`` query value that is not a usable position; the message says why."""


class RouteAnswer(msgspec.Struct, kw_only=True):
    """The answer of ``GET /api/route``."""

    distance_m: float
    eta_s: float
    source: Source
    """``road``: over the road graph; ``straight``: the graph could not answer."""
    coords: list[tuple[float, float]]
    """The line to draw, ``[lon, lat]`` pairs from ``from`` to ``to``."""
    roads: list[str] = []
    """Names of the named roads along it, in order (empty for a straight line)."""


def parse_point(value: str | None, name: str) -> tuple[float, float]:
    """``LON,LAT`` in decimal degrees -> ``(lon, lat)``; :class:`PointError` otherwise."""
    if value is None or not value.strip():
        raise PointError(f"'{name}' is required: LON,LAT in decimal degrees")
    if len(value) > MAX_POINT_CHARS:
        raise PointError(f"'{name}' is too long for LON,LAT")
    parts = value.split(",")
    if len(parts) != 2:
        raise PointError(f"'{name}' must be LON,LAT (two numbers separated by a comma)")
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise PointError(f"'{name}' must be LON,LAT in decimal degrees, not {value!r}") from None
    if not geo.plausible(lon, lat):
        raise PointError(f"'{name}' is not a possible position: {value!r}")
    return lon, lat


def straight(
    origin: tuple[float, float], target: tuple[float, float], speed_mps: float
) -> RouteAnswer:
    """The straight line from ``origin`` to ``target`` at ``speed_mps``."""
    distance = geo.haversine_m(*origin, *target)
    return RouteAnswer(
        distance_m=round(distance, 1),
        eta_s=round(distance / speed_mps, 1) if speed_mps > 0 else math.inf,
        source="straight",
        coords=[origin, target],
    )


async def find_route(
    redis: aioredis.Redis,
    city: str,
    origin: tuple[float, float],
    target: tuple[float, float],
    speed_mps: float,
) -> RouteAnswer:
    """The fastest drive from ``origin`` to ``target``, or the straight line."""
    network = await load_roads(redis, city)
    found = None
    if network is not None:
        found = await asyncio.to_thread(network.route, *origin, *target)
    if found is None:
        return straight(origin, target, speed_mps)
    return RouteAnswer(
        distance_m=round(float(found.distance_m), 1),
        eta_s=round(float(found.time_s), 1),
        source="road",
        coords=[(round(float(lon), 7), round(float(lat), 7)) for lon, lat in found.path],
        roads=found.roads,
    )


async def road_etas(
    redis: aioredis.Redis,
    city: str,
    target: tuple[float, float],
    origins: Sequence[tuple[float, float]],
) -> list[tuple[float, float] | None]:
    """``(distance_m, eta_s)`` by road from each origin to ``target``; ``None`` for each one
    the graph cannot answer (or all, without a graph)."""
    network: RoadNetwork | None = await load_roads(redis, city) if origins else None
    if network is None:
        return [None] * len(origins)
    legs = await asyncio.to_thread(
        network.drive_times_to, *target, list(origins), limit_s=ETA_LIMIT_S
    )
    return [None if leg is None else (float(leg.distance_m), float(leg.time_s)) for leg in legs]


@routes.get("/api/route")
@api(
    tag="patrol",
    roles=ROLES,
    query=(
        Query("from", "Start: LON,LAT in decimal degrees (a unit's position)", required=True),
        Query("to", "Destination: LON,LAT in decimal degrees (the incident)", required=True),
    ),
    response=RouteAnswer,
    answers={400: "'from' or 'to' missing or not a possible LON,LAT position"},
)
async def get_route(request: web.Request) -> web.Response:
    """The fastest drive between two points over the city's roads, with its line.

    A patrol unit's token or an operator's session. Where the road graph cannot answer, the
    straight line at the configured patrol speed (``source: straight``).
    """
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, *ROLES)
    try:
        origin = parse_point(request.query.get("from"), "from")
        target = parse_point(request.query.get("to"), "to")
    except PointError as exc:
        raise HttpError(400, str(exc)) from None
    answer = await find_route(
        gw.need_redis(), gw.settings.city, origin, target, gw.settings.patrol_speed_mps
    )
    return json_response(answer)
