"""The demo city: Shenzhen's poles, generated along roads inside the real district polygons.

Each district gets a jittered grid of east-west and north-south roads clipped to its polygon
(denser in the old centre: Futian, Luohu, Nanshan), poles every 30-50 m on both sides, and
the real 7-digit codes (:mod:`polewatch.poles.codes`): the district digit (Bao'an's 6/7
shared with Longhua and Guangming, Longgang's 8/9 with Pingshan and Dapeng), the road, and
the pole along it, odd on the south/east side, even on the north/west side. A pole that the
clipping would put outside its district is dropped. Every pole gets its district and its
responsibility grid (:mod:`polewatch.poles.grids`). The same seed gives the same city.

Given road files (``roads=``: the OpenStreetMap-derived extracts of ``shared/data/roads``), the
poles of the real roads come first (:mod:`polewatch.poles.streets`: along both sides of every
way, named after it, ``source="osm"``), and generated roads fill the rest of the city: every
part of a district farther than :data:`REAL_REACH_M` from a real road (``source="generated"``).
Real roads take their districts' road numbers first, generated roads the ones after them, so
codes never clash.

The work is vectorised with numpy and ``shapely.contains_xy``: 100,000 poles in about a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from polewatch.geo import EARTH_RADIUS_M
from polewatch.poles.codes import DISTRICT_DIGITS, DISTRICT_NAMES, Orientation
from polewatch.poles.grids import grid_of
from polewatch.poles.model import Pole

if TYPE_CHECKING:
    from polewatch.poles.streets import Street

BOUNDARIES_FILE: Final = Path("boundaries") / "shenzhen_districts.geojson"
"""Where the district polygons are, under the shared data folder."""
DENSITY: Final[dict[str, float]] = {"Futian": 3.0, "Luohu": 3.0, "Nanshan": 2.0}
"""Road density of a district relative to the others (1.0)."""
GAP_M: Final = (30.0, 50.0)
"""Distance between consecutive poles on one side of a road."""
KERB_M: Final = (8.0, 15.0)
"""Distance of the poles from the road's centre line."""
MIN_ROAD_M: Final = 200.0
MAX_ROAD_M: Final = 15_000.0
"""Longer clipped roads are split: a road holds at most 999 pole numbers."""
REAL_REACH_M: Final = 1000.0
"""Generated roads stay out of the area within this distance of a real road."""
_M_PER_DEG_LAT: Final = EARTH_RADIUS_M * math.pi / 180  # the sphere geo.haversine_m uses


@dataclass(frozen=True)
class District:
    """A district polygon (lon/lat) with its English name and the code digits it uses."""

    name: str
    chinese: str
    geometry: shapely.Geometry


def find_data_dir(start: Path | None = None) -> Path:
    """The shared data folder: ``shared/data`` beside the project (or any parent of it)."""
    here = (start or Path(__file__)).resolve()
    for parent in [Path.cwd(), *here.parents]:
        for candidate in (parent / "shared" / "data", parent.parent / "shared" / "data"):
            if (candidate / BOUNDARIES_FILE).is_file():
                return candidate
    raise FileNotFoundError(f"no shared/data/{BOUNDARIES_FILE} above {here} or {Path.cwd()}")


def load_districts(path: str | Path | None = None) -> list[District]:
    """Shenzhen's districts from the GeoJSON (property ``qh``), in code-digit order."""
    path = Path(path) if path else find_data_dir() / BOUNDARIES_FILE
    doc = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, District] = {}
    for feature in doc["features"]:
        chinese = feature["properties"]["qh"]
        if chinese not in DISTRICT_NAMES:
            raise ValueError(f"{path}: unknown district {chinese!r}")
        geometry = shapely.geometry.shape(feature["geometry"])
        shapely.prepare(geometry)
        found[DISTRICT_NAMES[chinese]] = District(DISTRICT_NAMES[chinese], chinese, geometry)
    return [found[name] for name in DISTRICT_DIGITS if name in found]


@dataclass
class _Roads:
    """Poles of one district before they become :class:`Pole` (parallel arrays)."""

    lon: list[NDArray[np.float64]]
    lat: list[NDArray[np.float64]]
    number: list[NDArray[np.int64]]
    road: list[NDArray[np.int64]]


@dataclass
class RoadNumbers:
    """Hands out road prefixes (district digit and road number, ``DRRR`` as an int); a
    district group shares its digits' 999 roads each."""

    used: dict[tuple[int, ...], int] = field(default_factory=dict)

    def next(self, digits: tuple[int, ...]) -> int:
        slot = self.used.get(digits, 0)
        self.used[digits] = slot + 1
        if slot >= 999 * len(digits):
            raise ValueError(f"more than {999 * len(digits)} roads for digits {digits}")
        return digits[slot // 999] * 1000 + slot % 999 + 1

    def copy(self) -> RoadNumbers:
        return RoadNumbers(dict(self.used))


def generate_city(
    *,
    seed: int = 0,
    count: int = 100_000,
    city: str = "shenzhen",
    boundaries: str | Path | None = None,
    roads: Sequence[str | Path] = (),
) -> list[Pole]:
    """At least ``count`` poles of the Shenzhen demo city, the same for the same ``seed``.

    ``roads``: road GeoJSON files (:func:`polewatch.poles.streets.road_files`); all their
    poles are placed, and generated roads make up the rest of ``count`` outside the real-road
    area (none when the real roads alone reach ``count``). Road spacing is chosen from the
    area left so the poles come out a little above ``count``; if clipping left too few, the
    roads are drawn again closer together.
    """
    districts = load_districts(boundaries)
    numbers = RoadNumbers()
    real: list[Pole] = []
    area: shapely.Geometry | None = None
    if roads:
        real, area = _real_roads(roads, districts, np.random.default_rng(seed), numbers, city)
        shapely.prepare(area)
    fill = count - len(real)
    if fill <= 0:
        return real
    lat0 = float(np.mean([d.geometry.centroid.y for d in districts]))
    m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(lat0))
    # Road length L gives 2 * L / mean gap poles; a grid with spacing s covers area A with
    # about 2 * A / s of road, so s = 4 * sum(A * density) / (mean gap * count).
    weighted_area = sum(
        _area_left(d, area) * m_per_deg_lon * _M_PER_DEG_LAT * DENSITY.get(d.name, 1.0)
        for d in districts
    )
    spacing = 4 * weighted_area / (sum(GAP_M) / 2 * max(fill, 1)) / 1.05
    while True:
        poles = _generate(districts, seed, spacing, city, m_per_deg_lon, numbers.copy(), area)
        if len(poles) >= fill:
            return real + poles
        spacing *= 0.97 * len(poles) / fill if poles else 0.5


def _area_left(district: District, area: shapely.Geometry | None) -> float:
    left = district.geometry if area is None else shapely.difference(district.geometry, area)
    return float(shapely.area(left))


def _real_roads(
    paths: Sequence[str | Path],
    districts: list[District],
    rng: np.random.Generator,
    numbers: RoadNumbers,
    city: str,
) -> tuple[list[Pole], shapely.Geometry]:
    """The poles along the real roads of ``paths`` and the area those roads cover."""
    from polewatch.poles import streets  # the road reader loads scipy: only when needed

    found, _ = streets.read_streets(paths)
    placed = streets.place_poles(found, rng)
    lon, lat = streets.to_lonlat(placed.x, placed.y)
    district = np.full(len(lon), -1, dtype=np.int64)
    for n, d in enumerate(districts):
        district[(district < 0) & shapely.contains_xy(d.geometry, lon, lat)] = n
    inside = district >= 0
    placed, lon, lat, district = placed.take(inside), lon[inside], lat[inside], district[inside]
    labels = streets.labels(found)
    prefix, number = streets.number_poles(
        placed, district, labels, lambda n: numbers.next(DISTRICT_DIGITS[districts[n].name])
    )
    attrs = [_street_attrs(street) for street in found]
    poles = [
        Pole(
            code=f"{p:04d}{k:03d}",
            lon=round(x, 7),
            lat=round(y, 7),
            city=city,
            road=labels[s],
            district=districts[d].name,
            grid=grid_of(x, y),
            side="odd" if k % 2 else "even",
            source="osm",
            attrs=attrs[s],
        )
        for x, y, p, k, s, d in zip(
            lon.tolist(),
            lat.tolist(),
            prefix.tolist(),
            number.tolist(),
            placed.street.tolist(),
            district.tolist(),
            strict=True,
        )
    ]
    return poles, streets.road_area(found, REAL_REACH_M)


def _street_attrs(street: Street) -> dict[str, str]:
    attrs = {"orientation": "E-W" if street.east_west else "N-S", "highway": street.highway}
    if street.osm_id is not None:
        attrs["osm_id"] = str(street.osm_id)
    if street.name_en:
        attrs["road_en"] = street.name_en
    return attrs


def _generate(
    districts: list[District],
    seed: int,
    spacing: float,
    city: str,
    m_per_deg_lon: float,
    numbers: RoadNumbers,
    exclude: shapely.Geometry | None = None,
) -> list[Pole]:
    rng = np.random.default_rng(seed)
    poles: list[Pole] = []
    for district in districts:
        roads = _Roads([], [], [], [])
        orientations: list[Orientation] = []
        step = spacing / DENSITY.get(district.name, 1.0)
        for orientation in ("E-W", "N-S"):
            for piece in _road_pieces(district.geometry, orientation, step, rng, m_per_deg_lon):
                orientations.append(orientation)
                _place_poles(piece, orientation, len(orientations) - 1, rng, m_per_deg_lon, roads)
        if not roads.lon:
            continue
        lon, lat = np.concatenate(roads.lon), np.concatenate(roads.lat)
        number, road_ix = np.concatenate(roads.number), np.concatenate(roads.road)
        keep = shapely.contains_xy(district.geometry, lon, lat)
        if exclude is not None:
            keep &= ~shapely.contains_xy(exclude, lon, lat)
        # road numbers only for roads that kept poles, in the order they were drawn
        prefixes = {
            r: numbers.next(DISTRICT_DIGITS[district.name])
            for r in np.unique(road_ix[keep]).tolist()
        }
        for x, y, n, r in zip(
            lon[keep].tolist(),
            lat[keep].tolist(),
            number[keep].tolist(),
            road_ix[keep].tolist(),
            strict=True,
        ):
            prefix, orientation = f"{prefixes[r]:04d}", orientations[r]
            poles.append(
                Pole(
                    code=f"{prefix}{n:03d}",
                    lon=round(x, 7),
                    lat=round(y, 7),
                    city=city,
                    road=f"Road {prefix} ({orientation})",
                    district=district.name,
                    grid=grid_of(x, y),
                    side="odd" if n % 2 else "even",
                    source="generated",
                    attrs={"orientation": orientation},
                )
            )
    return poles


def _road_pieces(
    geometry: shapely.Geometry,
    orientation: Orientation,
    step_m: float,
    rng: np.random.Generator,
    m_per_deg_lon: float,
) -> list[tuple[float, float, float]]:
    """Roads of one direction clipped to the district: (fixed coordinate, start, end) in
    degrees, start < end along the road; long pieces split."""
    minx, miny, maxx, maxy = geometry.bounds
    if orientation == "E-W":
        across, along, step = (miny, maxy), (minx - 0.01, maxx + 0.01), step_m / _M_PER_DEG_LAT
        m_per_deg_along = m_per_deg_lon
    else:
        across, along, step = (minx, maxx), (miny - 0.01, maxy + 0.01), step_m / m_per_deg_lon
        m_per_deg_along = _M_PER_DEG_LAT
    n = max(int((across[1] - across[0]) / step), 1)
    fixed = across[0] + (np.arange(n) + 0.5) * step + rng.uniform(-0.25, 0.25, n) * step
    pieces: list[tuple[float, float, float]] = []
    for value in fixed.tolist():
        ends = (
            [(along[0], value), (along[1], value)]
            if orientation == "E-W"
            else [(value, along[0]), (value, along[1])]
        )
        clipped = shapely.intersection(shapely.LineString(ends), geometry)
        for part in shapely.get_parts(
            shapely.line_merge(clipped) if clipped.geom_type == "MultiLineString" else clipped
        ):
            if part.geom_type != "LineString" or part.is_empty:
                continue
            coords = np.asarray(part.coords)
            k = 0 if orientation == "E-W" else 1
            start, end = sorted((float(coords[0, k]), float(coords[-1, k])))
            length = (end - start) * m_per_deg_along
            if length < MIN_ROAD_M:
                continue
            splits = math.ceil(length / MAX_ROAD_M)
            bounds = np.linspace(start, end, splits + 1).tolist()
            pieces += [(value, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    return pieces


def _place_poles(
    piece: tuple[float, float, float],
    orientation: Orientation,
    road_ix: int,
    rng: np.random.Generator,
    m_per_deg_lon: float,
    out: _Roads,
) -> None:
    """Poles on both sides of one road: odd south/east, even north/west."""
    value, start, end = piece
    if orientation == "E-W":  # the road's own latitude sets the length of a degree along it
        m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(value))
    along_m = _M_PER_DEG_LAT if orientation == "N-S" else m_per_deg_lon
    across_m = m_per_deg_lon if orientation == "N-S" else _M_PER_DEG_LAT
    length = (end - start) * along_m
    n = min(int(length / GAP_M[0]) + 1, 499)
    stations = rng.uniform(GAP_M[0] / 2, GAP_M[1] / 2) + np.cumsum(rng.uniform(*GAP_M, n))
    stations = stations[stations < length]
    k = len(stations)
    if not k:
        return
    along = start + stations / along_m
    kerb = rng.uniform(*KERB_M) / across_m
    # E-W: odd on the south (lower latitude); N-S: odd on the east (higher longitude).
    odd_offset = -kerb if orientation == "E-W" else kerb
    for offset, first in ((odd_offset, 1), (-odd_offset, 2)):
        across = np.full(k, value + offset)
        lon, lat = (along, across) if orientation == "E-W" else (across, along)
        out.lon.append(lon)
        out.lat.append(lat)
        out.number.append(first + 2 * np.arange(k, dtype=np.int64))
        out.road.append(np.full(k, road_ix, dtype=np.int64))
