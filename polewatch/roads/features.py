"""Reading road networks (GeoJSON LineStrings / MultiLineStrings, or OpenStreetMap files
through :mod:`polewatch.roads.osm`) into ways, with a report.

Each feature either becomes one way per line part or is refused with its number (features
count from 1, as the pole import counts GeoJSON rows) and the reason: not an object, no
geometry, not a line, fewer than 2 points, coordinates that are not numbers, not finite or
impossible, a zero-length line, a road class nobody drives on (footway, steps...), or, when a
zone map is given, a line wholly outside the zones. Unnamed ways are fine (real extracts have
many) and counted. Ways identical to an earlier one (same class, direction and vertices, e.g.
where two extracts overlap) are kept once and listed.

A line that crosses or touches itself is a real road (a loop, a ramp spiral, a service road
mapped out and back): it is split into simple pieces, each running up to the vertex before the
segment that would cross (consecutive pieces share that vertex, so the drive goes on), pieces
that only retrace earlier ones are dropped, and the report carries a note, not a refusal. The
crossing itself does not become a junction: where a way really meets itself it shares a
vertex, and pieces meeting at a shared vertex are joined there like any two ways; a crossing
without one is a bridge.

Several files that cover the same ground (two extracts made from different sources) are
deduplicated by :func:`polewatch.roads.overlap.cut_overlaps`.

A file that is not a GeoJSON FeatureCollection raises :class:`~polewatch.roads.ways.RoadsError`
(the ways read are :class:`~polewatch.roads.ways.Way`); a single bad feature raises
:class:`FeatureError` from :func:`parse_feature` and is reported by :func:`read_roads`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import shapely

from polewatch.geo import haversine_m, plausible
from polewatch.roads.osm import is_osm, osm_features
from polewatch.roads.overlap import Overlap, cut_overlaps
from polewatch.roads.ways import RoadsError, Way
from polewatch.zones import ZoneMap

NOT_DRIVABLE = frozenset(
    {"footway", "pedestrian", "cycleway", "steps", "path", "bridleway", "corridor",
     "proposed", "construction", "abandoned", "platform", "elevator", "bus_stop", "raceway"}
)  # fmt: skip
"""OSM ``highway`` classes that are not roads for a patrol car."""
_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph)?\s*$", re.IGNORECASE)
_ONEWAY = {"yes": 1, "true": 1, "1": 1, "-1": -1, "reverse": -1, "no": 0, "false": 0, "0": 0}


class FeatureError(RoadsError):
    """One feature cannot become a road; the message is the reason."""


class FeatureProblem(msgspec.Struct, frozen=True):
    """A refused feature: its file, number (from 1), OSM id if any, and why."""

    source: str
    feature: int
    osm_id: int | None
    reason: str


class ImportReport(msgspec.Struct, kw_only=True):
    """What reading one or more road files produced."""

    sources: list[str]
    features: int
    ways: list[Way]
    problems: list[FeatureProblem]
    duplicates: list[FeatureProblem]
    """Features identical to an earlier way (kept once); the reason names the first."""
    unnamed: int
    notes: list[FeatureProblem] = []
    """Features imported with a change (split where they cross themselves); the reason says."""
    overlap: Overlap | None = None
    """What deduplicating several files cut (see :mod:`polewatch.roads.overlap`)."""


def parse_feature(
    feature: Any,
    *,
    source: str = "",
    number: int = 1,
    zones: ZoneMap | None = None,
    notes: list[str] | None = None,
) -> list[Way]:
    """The ways of one GeoJSON feature, or :class:`FeatureError` with the reason; what was
    changed on the way in (a line split where it crosses itself) is appended to ``notes``."""
    if not isinstance(feature, dict):
        raise FeatureError("the feature is not an object")
    props = feature.get("properties")
    props = props if isinstance(props, dict) else {}
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise FeatureError("no geometry")
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "LineString":
        parts = [coords]
    elif kind == "MultiLineString" and isinstance(coords, list):
        parts = coords
    else:
        raise FeatureError(f"geometry is {_short(kind)}, not a LineString or MultiLineString")
    highway = _text(props.get("highway")) or "road"
    if highway in NOT_DRIVABLE:
        raise FeatureError(f"not drivable (highway={highway})")
    lines = [_line(part, i if len(parts) > 1 else None) for i, part in enumerate(parts, 1)]
    if not lines:
        raise FeatureError("MultiLineString without lines")
    if zones is not None and zones.zoned and not any(_inside(zones, line) for line in lines):
        raise FeatureError("outside every zone")
    name, name_en = _text(props.get("name")), _text(props.get("name:en") or props.get("name_en"))
    osm_id, oneway = _osm_id(props.get("osm_id")), _oneway(props)
    maxspeed = _maxspeed(props.get("maxspeed"))
    pieces = []
    for i, line in enumerate(lines, 1):
        simple = _simple_pieces(line)
        if simple != [line] and notes is not None:
            where = f"line {i}: " if len(lines) > 1 else ""
            notes.append(f"{where}crosses itself: imported as {len(simple)} simple way(s)")
        pieces += simple
    return [
        Way(source, number, line, highway, name, name_en, osm_id, oneway, maxspeed)
        for line in pieces
    ]


def read_roads(paths: Sequence[str | Path], *, zones: ZoneMap | None = None) -> ImportReport:
    """Read every file in ``paths`` into one report (duplicates across files kept once; a
    later file's copies of an earlier file's streets cut, see :mod:`polewatch.roads.overlap`)."""
    ways: list[Way] = []
    problems: list[FeatureProblem] = []
    duplicates: list[FeatureProblem] = []
    notes: list[FeatureProblem] = []
    first: dict[tuple[Any, ...], Way] = {}
    count = 0
    for path in paths:
        source = str(path)
        for number, feature in enumerate(_features(Path(path)), start=1):
            count += 1
            try:
                said: list[str] = []
                found = parse_feature(
                    feature, source=source, number=number, zones=zones, notes=said
                )
            except FeatureError as exc:
                problems.append(FeatureProblem(source, number, _osm_of(feature), str(exc)))
                continue
            notes += [FeatureProblem(source, number, _osm_of(feature), note) for note in said]
            for way in found:
                key = (way.highway, way.oneway, tuple(way.coords))
                seen = first.setdefault(key, way)
                if seen is way:
                    ways.append(way)
                else:
                    where = (
                        seen.feature if seen.source == source else f"{seen.source}#{seen.feature}"
                    )
                    reason = f"identical to feature {where} (kept once)"
                    duplicates.append(FeatureProblem(source, number, way.osm_id, reason))
    ways, overlap = cut_overlaps(ways)
    return ImportReport(
        sources=[str(p) for p in paths],
        features=count,
        ways=ways,
        problems=problems,
        duplicates=duplicates,
        unnamed=sum(1 for w in ways if not w.name),
        notes=notes,
        overlap=overlap if len(overlap.files) > 1 else None,
    )


def to_geojson(ways: Iterable[Way]) -> bytes:
    """The ways as one GeoJSON FeatureCollection (the street map's source), UTF-8 JSON."""
    features = [
        {
            "type": "Feature",
            "properties": {
                "osm_id": w.osm_id,
                "name": w.name,
                "name_en": w.name_en,
                "highway": w.highway,
                "oneway": w.oneway,
            },
            "geometry": {"type": "LineString", "coordinates": [list(c) for c in w.coords]},
        }
        for w in ways
    ]
    return msgspec.json.encode({"type": "FeatureCollection", "features": features})


# --- helpers -------------------------------------------------------------------------------
def _features(path: Path) -> Iterable[Any]:
    if is_osm(path):
        return osm_features(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RoadsError(f"{path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RoadsError(f"{path}: not a GeoJSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise RoadsError(f"{path}: not a GeoJSON FeatureCollection (top-level type: {kind!r})")
    features = doc.get("features")
    if not isinstance(features, list):
        raise RoadsError(f"{path}: 'features' is not a list")
    return features


def _line(part: Any, number: int | None) -> list[tuple[float, float]]:
    where = f"line {number}: " if number is not None else ""
    if not isinstance(part, list):
        raise FeatureError(f"{where}coordinates are not a list")
    if len(part) < 2:
        raise FeatureError(f"{where}fewer than 2 points")
    coords: list[tuple[float, float]] = []
    for i, point in enumerate(part, 1):
        if not isinstance(point, list | tuple) or len(point) < 2:
            raise FeatureError(f"{where}point {i} is not [lon, lat]")
        raw = point[0], point[1]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
            raise FeatureError(f"{where}point {i} has a coordinate that is not a number")
        try:
            lon, lat = float(raw[0]), float(raw[1])
        except OverflowError:
            raise FeatureError(f"{where}point {i} has a coordinate out of range") from None
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise FeatureError(f"{where}point {i} has a coordinate that is not finite")
        if not plausible(lon, lat):
            raise FeatureError(f"{where}point {i} has impossible coordinates ({lon}, {lat})")
        if not coords or coords[-1] != (lon, lat):  # repeated vertices add nothing
            coords.append((lon, lat))
    if (
        len(coords) < 2
        or sum(haversine_m(*a, *b) for a, b in zip(coords, coords[1:], strict=False)) < 0.01
    ):
        raise FeatureError(f"{where}zero length")
    return coords


def _simple_pieces(coords: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """``coords`` cut into lines that do not cross themselves (see the module doc)."""
    if shapely.LineString(coords).is_simple:
        return [coords]
    pieces: list[list[tuple[float, float]]] = []
    piece = [coords[0]]
    for point in coords[1:]:
        if len(piece) > 1 and not shapely.LineString([*piece, point]).is_simple:
            pieces.append(piece)
            piece = [piece[-1]]
        piece.append(point)
    pieces.append(piece)
    kept: list[list[tuple[float, float]]] = []
    seen: set[frozenset[tuple[float, float]]] = set()
    for piece in pieces:  # drop a piece that only drives back over earlier ones
        segments = {frozenset(pair) for pair in zip(piece, piece[1:], strict=False)}
        if not segments <= seen:
            kept.append(piece)
            seen |= segments
    return kept


def _inside(zones: ZoneMap, line: list[tuple[float, float]]) -> bool:
    return any(zones.distances(lon, lat, 0.0) for lon, lat in line)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _short(value: Any) -> str:
    return repr(value)[:40]


def _osm_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _osm_of(feature: Any) -> int | None:
    props = feature.get("properties") if isinstance(feature, dict) else None
    return _osm_id(props.get("osm_id")) if isinstance(props, dict) else None


def _oneway(props: dict[str, Any]) -> int | None:
    value = props.get("oneway")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (-1, 0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in _ONEWAY:
        return _ONEWAY[value.strip().lower()]
    if props.get("junction") in ("roundabout", "circular"):
        return 1
    return None


def _maxspeed(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        kmh = float(value)
    elif isinstance(value, str) and (match := _SPEED.match(value)):
        kmh = float(match.group(1)) * (1.609344 if (match.group(2) or "").lower() == "mph" else 1)
    else:
        return None
    return kmh if math.isfinite(kmh) and 5.0 <= kmh <= 150.0 else None
