"""Dispatch zones: how a city is cut into independent shards of dispatch work.

A deployment without zones has one, the default zone (``""``), and plain key names. A zoned
deployment (the shared ``zones`` setting names a GeoJSON file of polygons, e.g. a city's
districts) keeps each zone's streams, incidents and units under the zone's hash tag (see
:class:`polewatch.keys.Zone`), so on a Redis Cluster each zone's atomic dispatch steps run on
one shard and zones spread over the shards.

* An alarm belongs to the zone its place lies in (the nearest zone for a place outside them
  all); the gateway and the edge agents append it to that zone's stream.
* A unit belongs to the zone it first came on duty in (``keys.UNIT_ZONES``); its record and
  inbox stay there wherever it drives, and its zone's dispatchers search it by position.
* An alarm near a border may be better served from the zone next door: the dispatcher measures
  :meth:`ZoneMap.border_m` and routes such an alarm to the zone holding the nearest free unit
  (see :mod:`dispatcher.routing`). Incidents never span zones, so no unit can be assigned twice.

Distances are computed in a local equirectangular projection (metres), accurate to well under
1% across a city.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import shapely
from shapely.geometry import shape

from polewatch import keys

_M_PER_DEG_LAT = 111_320.0
CELL_M = 500.0
"""Side of the squares :meth:`ZoneMap.border_m` and :meth:`ZoneMap.near` cache answers for."""
_NAME = re.compile(r"^[a-z0-9_]{1,24}$")

SHENZHEN_PINYIN = {
    "罗湖": "luohu",
    "福田": "futian",
    "盐田": "yantian",
    "宝安": "baoan",
    "光明": "guangming",
    "坪山": "pingshan",
    "龙华": "longhua",
    "南山": "nanshan",
    "大鹏": "dapeng",
    "龙岗": "longgang",
}
"""Zone names of the Shenzhen district file's ``qh`` property (zone names are ASCII: they
appear in key names and incident ids)."""


class ZoneError(ValueError):
    """The zones file cannot be used; the message says why."""


@dataclass(frozen=True)
class _Area:
    name: str
    shape: Any  # shapely geometry in local metres
    bounds: tuple[float, float, float, float]


class ZoneMap:
    """The zones of a deployment and the geometry to place points in them."""

    def __init__(self, areas: Iterable[_Area] = (), *, lat0: float = 0.0) -> None:
        self._areas = tuple(areas)
        self._lat0 = lat0
        self._kx = _M_PER_DEG_LAT * math.cos(math.radians(lat0))
        for area in self._areas:
            shapely.prepare(area.shape)
        self.names: tuple[str, ...] = tuple(a.name for a in self._areas) or ("",)
        self._cell_cache: dict[tuple[int, int], list[tuple[float, str]]] = {}
        self._warmed = False

    # --- building --------------------------------------------------------------------------
    @classmethod
    def single(cls) -> ZoneMap:
        """The map of a deployment without zones: the default zone covers everything."""
        return cls()

    @classmethod
    def load(cls, path: str | Path | None) -> ZoneMap:
        """The zones of a GeoJSON FeatureCollection of (Multi)Polygons; an empty path gives
        :meth:`single`. A feature's name is its ``zone`` property, else a known district name
        (:data:`SHENZHEN_PINYIN`), else ``name``; names must be short lowercase ASCII."""
        if not path:
            return cls.single()
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            features = doc["features"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZoneError(f"zones file {path}: {exc}") from None
        if not isinstance(features, list):
            raise ZoneError(f"zones file {path}: 'features' must be a list")
        raw: list[tuple[str, Any]] = []
        for i, feature in enumerate(features):
            if not isinstance(feature, dict):
                raise ZoneError(f"zones file {path}: feature {i} is not an object")
            props = feature.get("properties") or {}
            if not isinstance(props, dict):
                raise ZoneError(f"zones file {path}: feature {i} has bad properties")
            qh = props.get("qh")
            name = (
                props.get("zone")
                or (SHENZHEN_PINYIN.get(qh) if isinstance(qh, str) else None)
                or props.get("name")
            )
            if not isinstance(name, str) or not _NAME.match(name):
                raise ZoneError(f"zones file {path}: feature {i} has no usable zone name "
                                f"({name!r}; want [a-z0-9_]{{1,24}})")  # fmt: skip
            try:
                geom = shape(feature["geometry"])
            except Exception as exc:  # shapely raises many kinds on malformed GeoJSON
                raise ZoneError(
                    f"zones file {path}: feature {name}: bad geometry ({exc})"
                ) from None
            if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
                raise ZoneError(f"zones file {path}: feature {name} is not a polygon")
            raw.append((name, geom))
        names = [n for n, _ in raw]
        if not raw or len(set(names)) != len(names):
            raise ZoneError(f"zones file {path}: zone names must be present and unique")
        lat0 = sum(g.centroid.y for _, g in raw) / len(raw)
        kx = _M_PER_DEG_LAT * math.cos(math.radians(lat0))

        scale = np.array([kx, _M_PER_DEG_LAT])
        areas = []
        for name, geom in raw:
            local = shapely.make_valid(shapely.transform(geom, lambda xy: xy * scale))
            areas.append(_Area(name, local, local.bounds))
        return cls(areas, lat0=lat0)

    # --- questions -------------------------------------------------------------------------
    @property
    def zoned(self) -> bool:
        """True when the deployment has named zones."""
        return bool(self._areas)

    def all_keys(self) -> list[keys.Zone]:
        """The keys of every zone."""
        return [keys.zone(n) for n in self.names]

    def _point(self, lon: float, lat: float) -> Any:
        return shapely.Point(lon * self._kx, lat * _M_PER_DEG_LAT)

    def locate(self, lon: float, lat: float) -> str:
        """The zone a place belongs to: the one containing it, else the nearest."""
        if not self._areas:
            return ""
        p = self._point(lon, lat)
        for area in self._areas:
            x0, y0, x1, y1 = area.bounds
            if x0 <= p.x <= x1 and y0 <= p.y <= y1 and area.shape.covers(p):
                return area.name
        return min(self._areas, key=lambda a: a.shape.distance(p)).name

    def distances(self, lon: float, lat: float, within_m: float) -> list[tuple[float, str]]:
        """``(metres, zone)`` of every zone within ``within_m`` of the place, nearest first
        (0 for the zone it lies in)."""
        if not self._areas:
            return [(0.0, "")]
        p = self._point(lon, lat)
        out = []
        for area in self._areas:
            x0, y0, x1, y1 = area.bounds
            dx = max(x0 - p.x, 0.0, p.x - x1)
            dy = max(y0 - p.y, 0.0, p.y - y1)
            if math.hypot(dx, dy) > within_m:
                continue  # the bounding box alone says it is too far
            d = area.shape.distance(p)
            if d <= within_m:
                out.append((d, area.name))
        out.sort()
        return out

    def border_m(self, lon: float, lat: float, zone: str, within_m: float) -> float:
        """A lower bound of the distance from the place to any zone other than ``zone``
        (``math.inf`` when none is within ``within_m``); cached (see :meth:`_cell`)."""
        for d, name in self._cell(lon, lat):
            if name != zone:
                return d if d <= within_m else math.inf
        return math.inf

    def near(self, lon: float, lat: float, within_m: float) -> list[str]:
        """The zones that may lie within ``within_m`` of the place (a superset, by at most
        the cell's half-diagonal); cached (see :meth:`_cell`)."""
        return [name for d, name in self._cell(lon, lat) if d <= within_m]

    def warm(self) -> int:
        """Fill the cache of :meth:`_cell` for every square of the zones' extent at once
        (vectorised; about a second for a city), so that no alarm pays for a first visit.
        Returns the number of squares; once per map, later calls return at once."""
        if not self._areas or self._warmed:
            return 0
        self._warmed = True
        x0 = min(a.bounds[0] for a in self._areas) // CELL_M
        y0 = min(a.bounds[1] for a in self._areas) // CELL_M
        x1 = max(a.bounds[2] for a in self._areas) // CELL_M
        y1 = max(a.bounds[3] for a in self._areas) // CELL_M
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        xs, ys = xs.ravel(), ys.ravel()
        centres = shapely.points((xs + 0.5) * CELL_M, (ys + 0.5) * CELL_M)
        slack = CELL_M * 0.7072
        bounds = np.maximum(
            0.0, np.stack([shapely.distance(a.shape, centres) for a in self._areas]) - slack
        )
        names = [a.name for a in self._areas]
        for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
            column = bounds[:, i].tolist()
            self._cell_cache[(int(x), int(y))] = sorted(zip(column, names, strict=True))
        return len(xs)

    def _cell(self, lon: float, lat: float) -> list[tuple[float, str]]:
        """Lower bounds of the distances to every zone, nearest first: cached per ``CELL_M``
        square, so the hot path pays a dictionary lookup; each bound is the exact distance
        from the square's centre less half its diagonal."""
        if not self._areas:
            return [(0.0, "")]
        cell = (int(lon * self._kx // CELL_M), int(lat * _M_PER_DEG_LAT // CELL_M))
        found = self._cell_cache.get(cell)
        if found is None:
            centre = shapely.Point((cell[0] + 0.5) * CELL_M, (cell[1] + 0.5) * CELL_M)
            slack = CELL_M * 0.7072
            found = sorted((max(0.0, a.shape.distance(centre) - slack), a.name)
                           for a in self._areas)  # fmt: skip
            if len(self._cell_cache) > 1_000_000:
                self._cell_cache.clear()
            self._cell_cache[cell] = found
        return found


async def unit_zone(
    redis: aioredis.Redis, zones: ZoneMap, unit: str, lon: float | None = None,
    lat: float | None = None,
) -> str | None:  # fmt: skip
    """The zone of ``unit``'s record and inbox (``keys.UNIT_ZONES``). A unit without one yet
    is given the zone of the place it reports (first writer wins); ``None`` when it has none
    and reports no place. Free in a deployment without zones (always ``""``)."""
    if not zones.zoned:
        return ""
    known = await redis.hget(keys.UNIT_ZONES, unit)
    if known is not None:
        return known.decode() if isinstance(known, bytes) else str(known)
    if lon is None or lat is None:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(keys.UNIT_ZONES, unit, zones.locate(lon, lat))
        pipe.hget(keys.UNIT_ZONES, unit)
        _, again = await pipe.execute()
    return again.decode() if isinstance(again, bytes) else str(again)
