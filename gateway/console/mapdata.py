"""What the offline map draws, from the project's own data: the road network (streets with
their Chinese names, © OpenStreetMap contributors), district outlines (the polygons the pole
registry's city is built from), responsibility-grid outlines (H3) and poles in view.
No tiles are needed; a deployment may add a tile URL (``console.tile_url``). See
docs/street-map.md for why the roads travel as one GeoJSON document."""

from __future__ import annotations

import asyncio
import functools
import weakref
from pathlib import Path
from typing import Any, Final

import h3
import numpy as np
import shapely
from aiohttp import web
from numpy.typing import NDArray

from gateway.auth import authorize
from gateway.console.language import local_offset
from gateway.console.pages import revalidated
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY
from polewatch import geo
from polewatch.poles.city import find_data_dir, load_districts
from polewatch.poles.grids import GRID_RESOLUTION
from polewatch.poles.index import PoleIndex
from polewatch.roads import RoadStore, read_roads, to_geojson

ROLES: Final = ("operator", "supervisor", "unit")
OSM_NOTICE: Final = "© OpenStreetMap contributors"
SIMPLIFY_DEG: Final = 0.0004
"""About 40 m: finer than a pixel at the zoom where districts matter."""
ROAD_DECIMALS: Final = 5
"""About 1 m: what a street map at the closest zoom needs; halves the document."""
MAX_GRID_KM2: Final = 60.0
MAX_POLES: Final = 4000
BBOX_QUERY: Final = Query("bbox", "west,south,east,north (decimal degrees)", required=True)

routes = web.RouteTableDef()


@functools.lru_cache(maxsize=1)
def districts_geojson() -> bytes:
    """The city's district outlines as a GeoJSON FeatureCollection (simplified, cached)."""
    import msgspec

    features = []
    for district in load_districts():
        shape = shapely.simplify(district.geometry, SIMPLIFY_DEG, preserve_topology=True)
        centre = district.geometry.representative_point()
        features.append({
            "type": "Feature",
            "properties": {"name": district.name, "chinese": district.chinese,
                           "label": [round(centre.x, 5), round(centre.y, 5)]},
            "geometry": shapely.geometry.mapping(shapely.set_precision(shape, 1e-5)),
        })  # fmt: skip
    return msgspec.json.encode({"type": "FeatureCollection", "features": features})


def road_features(document: Any) -> list[dict[str, Any]]:
    """The drawable ways of a decoded road file: LineStrings with at least two plausible
    points, with the name and the road class only (a road file's bad features are the
    importer's to report; the map leaves them out, whatever the document holds)."""
    features = []
    found = document.get("features") if isinstance(document, dict) else None
    for feature in found if isinstance(found, list) else []:
        try:
            geometry, props = feature["geometry"], feature.get("properties")
            props = props if isinstance(props, dict) else {}
            if geometry["type"] != "LineString":
                continue
            line = [[round(float(x), ROAD_DECIMALS), round(float(y), ROAD_DECIMALS)]
                    for x, y in geometry["coordinates"]]  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            continue
        if len(line) < 2 or not all(geo.plausible(x, y) for x, y in line):
            continue
        features.append({
            "type": "Feature",
            "properties": {"name": str(props.get("name") or ""),
                           "highway": str(props.get("highway") or "road")},
            "geometry": {"type": "LineString", "coordinates": line},
        })  # fmt: skip
    return features


class _RoadDocuments:
    """The imported road features of each city (``polewatch roads import``), read from Redis
    once per version, per client: another Redis (or a flushed one) counts versions anew."""

    def __init__(self) -> None:
        self.known: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, bytes]]] = (
            weakref.WeakKeyDictionary()
        )

    async def document(self, redis: Any, city: str) -> bytes | None:
        store = RoadStore(redis, city)
        version = await store.version()
        if not version:
            return None
        cities = self.known.setdefault(redis, {})
        if city in cities and cities[city][0] == version:
            return cities[city][1]
        body = await store.features()
        if body is not None:
            cities[city] = (version, body)
        return body


_ROADS = _RoadDocuments()


@functools.lru_cache(maxsize=1)
def roads_geojson(folder: Path | None = None) -> bytes:
    """Every road file of the shared data (``roads/*.geojson``) as one FeatureCollection, as
    ``polewatch roads import`` would keep them: what the map draws before an import."""
    import msgspec

    paths = sorted((folder or find_data_dir() / "roads").glob("*.geojson"))
    if not paths:
        raise FileNotFoundError(f"no road files in {folder or find_data_dir() / 'roads'}")
    # through the importer: the overlapping files' duplicate streets cut as the graph cuts them
    features = road_features(msgspec.json.decode(to_geojson(read_roads(paths).ways)))
    return msgspec.json.encode({
        "type": "FeatureCollection", "attribution": OSM_NOTICE, "features": features,
    })  # fmt: skip


def parse_bbox(value: str | None) -> tuple[float, float, float, float]:
    """``west,south,east,north``; 422 when it is not a plausible box."""
    try:
        west, south, east, north = (float(x) for x in (value or "").split(","))
    except ValueError:
        raise HttpError(422, "'bbox' must be west,south,east,north") from None
    if not (geo.plausible(west, south) and geo.plausible(east, north)):
        raise HttpError(422, "'bbox' is not a possible place")
    if west >= east or south >= north:
        raise HttpError(422, "'bbox' must have west < east and south < north")
    return west, south, east, north


def _area_km2(west: float, south: float, east: float, north: float) -> float:
    width = geo.haversine_m(west, south, east, south)
    height = geo.haversine_m(west, south, west, north)
    return width * height / 1e6


def grid_cells(bbox: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    """The responsibility grids (H3 cells) covering ``bbox`` with their outlines."""
    west, south, east, north = bbox
    box = h3.LatLngPoly([(south, west), (south, east), (north, east), (north, west)])
    cells = h3.h3shape_to_cells_experimental(box, GRID_RESOLUTION, contain="overlap")
    return [
        {
            "id": c,
            "outline": [[round(lon, 6), round(lat, 6)] for lat, lon in h3.cell_to_boundary(c)],
        }
        for c in cells
    ]


class _PoleArrays:
    """The index' poles as coordinate arrays, rebuilt when the index' version moves."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.lon: NDArray[np.float64] = np.empty(0)
        self.lat: NDArray[np.float64] = np.empty(0)
        self.poles: list[Any] = []

    def within(self, index: PoleIndex, bbox: tuple[float, float, float, float]) -> list[Any]:
        key = (id(index), index.version)
        if key != self.key:
            self.poles = index.poles()
            self.lon = np.fromiter((p.lon for p in self.poles), float, len(self.poles))
            self.lat = np.fromiter((p.lat for p in self.poles), float, len(self.poles))
            self.key = key
        west, south, east, north = bbox
        hits = np.flatnonzero(
            (self.lon >= west) & (self.lon <= east) & (self.lat >= south) & (self.lat <= north)
        )
        return [self.poles[i] for i in hits[:MAX_POLES]]


_ARRAYS = _PoleArrays()


def _viewer(request: web.Request) -> None:
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, *ROLES)


@routes.get("/api/console/map/districts")
@api(tag="console", roles=ROLES, content="application/geo+json",
     answers={503: "The district outlines are not installed here"})  # fmt: skip
async def districts(request: web.Request) -> web.Response:
    """District outlines (GeoJSON) for the offline map."""
    _viewer(request)
    try:
        body = await asyncio.to_thread(districts_geojson)
    except (OSError, ValueError) as exc:  # the shared data folder is not installed here
        raise HttpError(503, f"district outlines unavailable: {exc}") from None
    return web.Response(
        body=body, content_type="application/geo+json",
        headers={"Cache-Control": "private, max-age=3600"},
    )  # fmt: skip


@routes.get("/api/console/map/roads")
@api(tag="console", roles=ROLES, content="application/geo+json",
     answers={503: "No road network is installed here"})  # fmt: skip
async def roads(request: web.Request) -> web.Response:
    """The road network (GeoJSON LineStrings: name, highway; © OpenStreetMap contributors) for
    the street map: the city's imported roads, else the shared data's road files. ETag and
    gzip, so a page loads it once."""
    _viewer(request)
    gw = request.app[GATEWAY]
    try:
        body = await _ROADS.document(gw.need_redis(), gw.settings.city)
        if body is None:
            body = await asyncio.to_thread(roads_geojson)
    except (OSError, ValueError) as exc:
        raise HttpError(503, f"road network unavailable: {exc}") from None
    return revalidated(request, body, "application/geo+json", "private, no-cache")


@routes.get("/api/console/map/grids")
@api(tag="console", roles=ROLES, query=(BBOX_QUERY,), store=False,
     answers={422: "Bad or too large bbox"})  # fmt: skip
async def grids(request: web.Request) -> web.Response:
    """Outlines of the responsibility grids (H3 cells) in a box of at most 60 km²."""
    _viewer(request)
    bbox = parse_bbox(request.query.get("bbox"))
    if _area_km2(*bbox) > MAX_GRID_KM2:
        raise HttpError(422, f"'bbox' covers more than {MAX_GRID_KM2:g} km²; zoom in")
    return json_response({"grids": await asyncio.to_thread(grid_cells, bbox)})


@routes.get("/api/console/map/poles")
@api(tag="console", roles=ROLES, query=(BBOX_QUERY,), answers={422: "Bad bbox"})
async def poles(request: web.Request) -> web.Response:
    """Poles in a box (at most 4,000): code, place, road."""
    _viewer(request)
    gw = request.app[GATEWAY]
    bbox = parse_bbox(request.query.get("bbox"))
    found = _ARRAYS.within(gw.need_poles(), bbox)
    return json_response({
        "poles": [[p.code, p.lon, p.lat, p.road, p.district] for p in found],
        "truncated": len(found) >= MAX_POLES,
    })  # fmt: skip


@routes.get("/api/console/config")
@api(tag="console", roles=ROLES, store=False)
async def config(request: web.Request) -> web.Response:
    """What the pages need to know: map start, optional tiles, patrol speed for ETAs."""
    _viewer(request)
    gw = request.app[GATEWAY]
    c = gw.settings.console
    return json_response({
        "tile_url": c.tile_url, "center": c.map_center, "zoom": c.map_zoom,
        "speed_mps": gw.settings.patrol_speed_mps, "utc_offset_min": local_offset(gw),
        "city": gw.settings.city,
    })  # fmt: skip
