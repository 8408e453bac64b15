"""Poles along real roads: the OpenStreetMap-derived road files of the shared data.

:func:`read_streets` reads road GeoJSON files (LineStrings / MultiLineStrings with properties
``osm_id``, ``name``, ``name:en``, ``highway``) into :class:`Street` pieces in local metres.
The files are read by the road-network importer, which refuses unusable features
(``polewatch roads import`` lists them one by one) and cuts a later file's copies of an
earlier file's streets where several files cover the same ground (the central and Bao'an
extracts overlap; :mod:`polewatch.roads.overlap`), so the poles stand along the same streets
the graph routes over.

:func:`place_poles` stands poles every 30-50 m on both sides of every piece, 8-15 m from its
centre line, and drops those that would come nearer than 8 m to any road (the inside of a
junction, the median of a dual carriageway). Which side is odd follows the Shenzhen scheme:
south of a piece running east-west, east of one running north-south.

:func:`number_poles` groups the poles by district and road label and hands out road numbers
(:class:`polewatch.poles.city.RoadNumbers`) and odd/even pole numbers along each road.
Ways named only with the generic "支路" (branch road) or not named at all are labelled after the
nearest named road ("深南大道支路"; ramps: "深南大道匝道").

All of it is vectorised with numpy and shapely's STRtree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from polewatch.geo import EARTH_RADIUS_M
from polewatch.roads.features import read_roads

ROADS_DIR: Final = Path("roads")
"""Where the road files are, under the shared data folder."""
DENSIFY_M: Final = 20.0
GAP_M: Final = (30.0, 50.0)
KERB_M: Final = (8.0, 15.0)
"""Allowed distance of a pole from the nearest road centre line."""
PLACE_KERB_M: Final = (9.0, 14.0)
"""Offsets drawn for placement (inside :data:`KERB_M`, so bends do not push poles out)."""
GENERIC_NAMES: Final = frozenset({"", "支路", "无名路", "unnamed"})
UNNAMED_LABEL: Final = "无名道路"
"""The label of an unnamed way with no named road within :data:`LABEL_RADIUS_M`."""
LABEL_RADIUS_M: Final = 2000.0
SIDE_MAX: Final = 499
"""Poles per side of one road number: odd 1..997, even 2..998."""
_M_PER_DEG_LAT: Final = EARTH_RADIUS_M * math.pi / 180
LAT0: Final = 22.55
"""Latitude of the local projection (Shenzhen); distances err by < 0.1% across the city."""
_M_PER_DEG_LON: Final = _M_PER_DEG_LAT * math.cos(math.radians(LAT0))
LON0: Final = 114.0


def to_metres(lon: Any, lat: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Local east/north metres of lon/lat (arrays or scalars)."""
    return (np.asarray(lon) - LON0) * _M_PER_DEG_LON, (np.asarray(lat) - LAT0) * _M_PER_DEG_LAT


def to_lonlat(x: Any, y: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inverse of :func:`to_metres`."""
    return np.asarray(x) / _M_PER_DEG_LON + LON0, np.asarray(y) / _M_PER_DEG_LAT + LAT0


@dataclass(frozen=True)
class Street:
    """A usable stretch of one way: its tags and its vertices in local metres (n x 2)."""

    name: str | None
    name_en: str | None
    highway: str
    osm_id: int | None
    xy: NDArray[np.float64]

    @property
    def generic(self) -> bool:
        return (self.name or "").strip() in GENERIC_NAMES

    @property
    def east_west(self) -> bool:
        """Whether it runs more east-west than north-south (end to end)."""
        dx, dy = self.xy[-1] - self.xy[0]
        return bool(abs(dx) >= abs(dy))


@dataclass
class StreetPoles:
    """Poles along streets before numbering (parallel arrays; ``street`` indexes the list)."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    station: NDArray[np.float64]
    """Where along its street's axis the pole stands (orders the numbers)."""
    street: NDArray[np.int64]
    odd: NDArray[np.bool_]

    def take(self, mask: NDArray[np.bool_]) -> StreetPoles:
        return StreetPoles(
            self.x[mask], self.y[mask], self.station[mask], self.street[mask], self.odd[mask]
        )


def road_files(data_dir: Path) -> list[Path]:
    """The road GeoJSON files of a shared data folder (empty when it has none)."""
    return sorted((data_dir / ROADS_DIR).glob("*.geojson"))


def read_streets(paths: Sequence[str | Path]) -> tuple[list[Street], int]:
    """The usable streets of ``paths`` (read by the road-network importer,
    :func:`polewatch.roads.features.read_roads`, which also cuts a later file's copies of an
    earlier file's streets) and how many features it refused."""
    report = read_roads(paths)
    streets = []
    for way in report.ways:
        coords = np.asarray(way.coords, dtype=np.float64)
        xy = np.column_stack(to_metres(coords[:, 0], coords[:, 1]))
        if _length(xy) > 0:
            streets.append(Street(way.name, way.name_en, way.highway, way.osm_id, _densify(xy)))
    return streets, len(report.problems)


def _lines(streets: Sequence[Street]) -> NDArray[np.object_]:
    """The streets as shapely LineStrings (metres), built in one call."""
    sizes = [len(s.xy) for s in streets]
    return shapely.linestrings(  # type: ignore[no-any-return]
        np.concatenate([s.xy for s in streets]), indices=np.repeat(np.arange(len(sizes)), sizes)
    )


def _segments(streets: Sequence[Street]) -> shapely.STRtree:
    """A search tree of the streets' segments (small boxes: nearest queries stay cheap)."""
    a = np.concatenate([s.xy[:-1] for s in streets])
    b = np.concatenate([s.xy[1:] for s in streets])
    return shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))


def _length(xy: NDArray[np.float64]) -> float:
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())


def _densify(xy: NDArray[np.float64]) -> NDArray[np.float64]:
    dense: NDArray[np.float64] = shapely.get_coordinates(
        shapely.segmentize(shapely.linestrings(xy), DENSIFY_M)
    )
    return dense


def _distance(tree: shapely.STRtree, x: Any, y: Any) -> NDArray[np.float64]:
    """Each point's distance to the nearest segment of ``tree``."""
    _, dist = tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
    return dist  # type: ignore[no-any-return]


def place_poles(streets: Sequence[Street], rng: np.random.Generator) -> StreetPoles:
    """Poles on both sides of every street, at least :data:`KERB_M` [0] from every road."""
    xs, ys, stations, owners, odds = [], [], [], [], []
    for ix, street in enumerate(streets):
        xy = street.xy
        seg = np.diff(xy, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        n = int(cum[-1] / GAP_M[0]) + 1
        along = rng.uniform(GAP_M[0] / 2, GAP_M[1] / 2) + np.cumsum(rng.uniform(*GAP_M, n))
        along = along[along < cum[-1]]
        if not len(along):
            continue
        k = np.clip(np.searchsorted(cum, along, side="right") - 1, 0, len(seg) - 1)
        safe = np.where(seg_len[k] > 0, seg_len[k], 1.0)
        tx, ty = seg[k, 0] / safe, seg[k, 1] / safe
        px, py = np.interp(along, cum, xy[:, 0]), np.interp(along, cum, xy[:, 1])
        dx, dy = xy[-1] - xy[0]
        east_west = street.east_west
        # Travelling west->east (or south->north) the right-hand side is south (east): odd.
        forward = dx >= 0 if east_west else dy >= 0
        axis = px if east_west else py
        kerb = rng.uniform(*PLACE_KERB_M)
        for right in (True, False):
            sign = -1.0 if right else 1.0  # the left normal is (-ty, tx)
            xs.append(px + sign * kerb * -ty)
            ys.append(py + sign * kerb * tx)
            stations.append(axis)
            owners.append(np.full(len(along), ix, dtype=np.int64))
            odds.append(np.full(len(along), right == forward))
    if not xs:
        empty = np.zeros(0)
        return StreetPoles(empty, empty, empty, empty.astype(np.int64), empty.astype(bool))
    out = StreetPoles(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(stations),
        np.concatenate(owners), np.concatenate(odds),
    )  # fmt: skip
    dist = _distance(_segments(streets), out.x, out.y)
    return out.take((dist >= KERB_M[0]) & (dist <= KERB_M[1]))


def labels(streets: Sequence[Street]) -> list[str]:
    """Each street's road label: its name, or for a generic/unnamed way the nearest named
    road's name with "支路" (branch road) or "匝道" (ramp, for ``*_link`` ways)."""
    named = [i for i, s in enumerate(streets) if not s.generic]
    out = [s.name or "" for s in streets]
    generic = [i for i, s in enumerate(streets) if s.generic]
    if not generic:
        return out
    if not named:
        return [UNNAMED_LABEL if streets[i].generic else out[i] for i in range(len(streets))]
    tree = shapely.STRtree(_lines([streets[i] for i in named]))
    mids = shapely.points([s.xy[len(s.xy) // 2] for s in (streets[i] for i in generic)])
    nearest, dist = tree.query_nearest(mids, return_distance=True, all_matches=False)
    for i, (n, d) in zip(generic, zip(nearest[1].tolist(), dist.tolist(), strict=True),
                         strict=True):  # fmt: skip
        suffix = "匝道" if streets[i].highway.endswith("_link") else "支路"
        base = streets[named[n]].name or ""
        out[i] = f"{base}{suffix}" if d <= LABEL_RADIUS_M else UNNAMED_LABEL
    return out


def number_poles(
    poles: StreetPoles,
    district: NDArray[np.int64],
    road_labels: Sequence[str],
    next_road: Callable[[int], int],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Road prefixes and pole numbers: poles of one district and label share a road
    (``next_road(district)`` hands out its 4-digit prefix, district digit and road number;
    a new one every :data:`SIDE_MAX` poles of a side); numbers run along the road's axis,
    odd on the odd side, even on the other."""
    label_ix = {label: n for n, label in enumerate(sorted(set(road_labels)))}
    label_of = np.array([label_ix[label] for label in road_labels], dtype=np.int64)
    group = district * len(label_ix) + label_of[poles.street]
    order = np.lexsort((~poles.odd, poles.station, group))
    road = np.zeros(len(order), dtype=np.int64)
    number = np.zeros(len(order), dtype=np.int64)
    current, counts, road_no = -1, [0, 0], 0
    for i, g, odd in zip(order.tolist(), group[order].tolist(), poles.odd[order].tolist(),
                         strict=True):  # fmt: skip
        side = 0 if odd else 1
        if g != current or counts[side] >= SIDE_MAX:
            current, counts = g, [0, 0]
            road_no = next_road(g // len(label_ix))
        number[i] = 2 * counts[side] + 1 + side
        counts[side] += 1
        road[i] = road_no
    return road, number


def road_area(streets: Sequence[Street], reach_m: float) -> shapely.Geometry:
    """The area the real roads cover: everything within ``reach_m`` of one (lon/lat)."""
    lines = shapely.simplify(_lines(streets), 25.0)
    area = shapely.union_all(shapely.buffer(lines, reach_m, quad_segs=4))
    return shapely.transform(area, lambda xy: np.column_stack(to_lonlat(xy[:, 0], xy[:, 1])))
