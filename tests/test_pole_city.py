"""The Shenzhen demo city: 100k poles on roads inside the real districts, real code scheme;
with the road files, poles along Shenzhen's real (OpenStreetMap) roads."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import h3
import numpy as np
import pytest
import redis.asyncio as aioredis
import shapely

from polewatch.poles.city import REAL_REACH_M, generate_city, load_districts
from polewatch.poles.codes import DISTRICT_DIGITS, parse_shenzhen
from polewatch.poles.grids import GRID_RESOLUTION, grid_of
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry
from polewatch.poles.streets import road_files

BOUNDARIES = Path("boundaries") / "shenzhen_districts.geojson"


def test_at_least_100k_unique_poles_in_every_district(shenzhen_poles: list[Pole]) -> None:
    assert len(shenzhen_poles) >= 100_000
    assert len({p.code for p in shenzhen_poles}) == len(shenzhen_poles)
    assert {p.district for p in shenzhen_poles} == set(DISTRICT_DIGITS)
    assert {p.city for p in shenzhen_poles} == {"shenzhen"}


def test_every_pole_is_inside_its_district_polygon(
    shenzhen_poles: list[Pole], data_dir: Path
) -> None:
    districts = {d.name: d.geometry for d in load_districts(data_dir / BOUNDARIES)}
    assert len(districts) == 10
    by_district: dict[str, list[Pole]] = defaultdict(list)
    for pole in shenzhen_poles:
        by_district[pole.district or ""].append(pole)
    for name, poles in by_district.items():
        lon = np.array([p.lon for p in poles])
        lat = np.array([p.lat for p in poles])
        inside = shapely.contains_xy(districts[name], lon, lat)
        assert inside.all(), f"{(~inside).sum()} poles of {name} lie outside it"


def test_codes_follow_the_shenzhen_scheme(shenzhen_poles: list[Pole]) -> None:
    for pole in shenzhen_poles:
        code = parse_shenzhen(pole.code)
        assert code.code == pole.code
        assert code.district_digit in DISTRICT_DIGITS[pole.district or ""], pole
        assert code.side == pole.side
        assert pole.road is not None and pole.code[:4] in pole.road


def test_odd_numbers_south_or_east_even_north_or_west(shenzhen_poles: list[Pole]) -> None:
    roads: dict[str, dict[str, list[Pole]]] = defaultdict(lambda: {"odd": [], "even": []})
    for pole in shenzhen_poles:
        roads[pole.code[:4]][pole.side or ""].append(pole)
    checked = 0
    for sides in roads.values():
        odd, even = sides["odd"], sides["even"]
        if not odd or not even:
            continue
        orientation = odd[0].attrs["orientation"]
        assert {p.attrs["orientation"] for p in odd + even} == {orientation}
        if orientation == "E-W":
            assert max(p.lat for p in odd) < min(p.lat for p in even)  # odd south
        else:
            assert min(p.lon for p in odd) > max(p.lon for p in even)  # odd east
        checked += 1
    assert checked > 100


def test_every_pole_has_its_responsibility_grid(shenzhen_poles: list[Pole]) -> None:
    for pole in shenzhen_poles[::50]:
        assert pole.grid == grid_of(pole.lon, pole.lat)
        assert h3.is_valid_cell(pole.grid)
        assert h3.get_resolution(pole.grid) == GRID_RESOLUTION
    # ~12,000 real grids in Shenzhen; the demo's roads cover a good share of that many cells.
    assert len({p.grid for p in shenzhen_poles}) > 5000


def test_neighbouring_poles_are_30_to_50_m_apart(shenzhen_poles: list[Pole]) -> None:
    from polewatch.geo import haversine_m

    road = [
        p for p in shenzhen_poles if p.code[:4] == shenzhen_poles[0].code[:4] and p.side == "odd"
    ]
    road.sort(key=lambda p: p.code)
    gaps = [
        haversine_m(a.lon, a.lat, b.lon, b.lat)
        for a, b in zip(road, road[1:], strict=False)
        if int(b.code[4:]) - int(a.code[4:]) == 2
    ]
    assert gaps and all(29.9 < g < 50.1 for g in gaps)


def test_same_seed_same_city_other_seed_other_city(data_dir: Path) -> None:
    boundaries = data_dir / BOUNDARIES
    first = generate_city(seed=5, count=3000, boundaries=boundaries)
    assert len(first) >= 3000
    assert generate_city(seed=5, count=3000, boundaries=boundaries) == first
    assert generate_city(seed=6, count=3000, boundaries=boundaries) != first


# --- the demo city on real roads (shared/data/roads) -------------------------------------


@pytest.fixture(scope="module")
def real_city(data_dir: Path) -> list[Pole]:
    return generate_city(
        seed=0, boundaries=data_dir / BOUNDARIES, roads=road_files(data_dir), count=100_000
    )


@pytest.fixture(scope="module")
def osm_ways(data_dir: Path) -> dict[str, tuple[str, shapely.LineString]]:
    """The central extract's ways by OSM id: name and line in local metres (lat 22.55)."""
    doc = json.loads((data_dir / "roads" / "shenzhen_central_roads.geojson").read_text("utf-8"))
    return {
        str(f["properties"]["osm_id"]): (
            f["properties"]["name"] or "",
            shapely.LineString([_metres(lon, lat) for lon, lat in f["geometry"]["coordinates"]]),
        )
        for f in doc["features"]
    }


def _metres(lon: float, lat: float) -> tuple[float, float]:
    k = math.pi * 6_372_797.560856 / 180  # the sphere of polewatch.geo (Redis' radius)
    return (lon - 114.0) * k * math.cos(math.radians(22.55)), (lat - 22.55) * k


def test_real_roads_carry_a_third_of_the_city_and_generated_roads_the_rest(
    real_city: list[Pole],
) -> None:
    sources = Counter(p.source for p in real_city)
    assert set(sources) == {"osm", "generated"}
    assert 25_000 < sources["osm"] < 60_000, sources
    assert 100_000 <= len(real_city) < 110_000
    assert len({p.code for p in real_city}) == len(real_city)
    by_district = {(p.district, p.source) for p in real_city}
    for district in ("Futian", "Nanshan", "Bao'an"):  # the extracts cover them
        assert (district, "osm") in by_district
    for district in ("Longgang", "Yantian", "Dapeng"):  # no data: generated only
        assert (district, "generated") in by_district and (district, "osm") not in by_district
    # real and generated roads never share a road number
    real = {p.code[:4] for p in real_city if p.source == "osm"}
    made = {p.code[:4] for p in real_city if p.source == "generated"}
    assert real and made and not real & made


def test_real_road_poles_stand_8_to_15_m_from_their_way_odd_on_the_south_or_east(
    real_city: list[Pole], osm_ways: dict[str, tuple[str, shapely.LineString]]
) -> None:
    poles = [p for p in real_city if p.attrs.get("osm_id") in osm_ways][::7]
    assert len(poles) > 2000
    # the road importer refuses self-intersecting lines: they are no road of the city
    tree = shapely.STRtree([line for _, line in osm_ways.values() if line.is_simple])
    sides: dict[str, set[str]] = defaultdict(set)
    for pole in poles:
        name, way = osm_ways[pole.attrs["osm_id"]]
        point = shapely.Point(_metres(pole.lon, pole.lat))
        assert 7.9 < way.distance(point) < 15.1, pole
        nearest = tree.geometries[tree.nearest(point)]
        assert nearest.distance(point) > 7.9, pole  # no nearer road (of this extract)
        # which side: the way taken west->east (or south->north) has odd poles on its right
        (x0, y0), (x1, y1) = way.coords[0], way.coords[-1]
        east_west = abs(x1 - x0) >= abs(y1 - y0)
        forward = (x1 >= x0) if east_west else (y1 >= y0)
        at = way.project(point)
        a, b = way.interpolate(max(at - 1, 0)), way.interpolate(min(at + 1, way.length))
        cross = (b.x - a.x) * (point.y - a.y) - (b.y - a.y) * (point.x - a.x)
        right = cross < 0
        assert pole.side == ("odd" if right == forward else "even"), pole
        assert pole.attrs["orientation"] == ("E-W" if east_west else "N-S")
        sides[pole.attrs["osm_id"]].add(pole.side or "")
        if name and name != "支路":
            assert pole.road == name
        else:
            assert pole.road and pole.road != "支路" and pole.road.endswith(("支路", "匝道"))
    assert sum(s == {"odd", "even"} for s in sides.values()) > 200  # both sides of a road


def test_real_road_codes_follow_the_scheme_and_number_along_the_road(
    real_city: list[Pole],
) -> None:
    roads: dict[str, list[Pole]] = defaultdict(list)
    for pole in real_city:
        if pole.source == "osm":
            code = parse_shenzhen(pole.code)
            assert code.district_digit in DISTRICT_DIGITS[pole.district or ""]
            assert code.side == pole.side
            roads[pole.code[:4]].append(pole)
    assert {len({p.road for p in poles}) for poles in roads.values()} == {1}  # one name each
    # consecutive numbers of a side are neighbours on the road, not across the city
    from polewatch.geo import haversine_m

    gaps = []
    for poles in list(roads.values())[::10]:
        by_number = {int(p.code[4:]): p for p in poles}
        gaps += [
            haversine_m(p.lon, p.lat, q.lon, q.lat)
            for n, p in by_number.items()
            if (q := by_number.get(n + 2)) is not None
        ]
    assert len(gaps) > 1000
    assert float(np.median(gaps)) < 60


def test_generated_roads_keep_out_of_the_real_road_area(
    real_city: list[Pole], data_dir: Path
) -> None:
    lines = []
    for path in road_files(data_dir):
        doc = json.loads(path.read_text("utf-8"))
        lines += [
            shapely.LineString([_metres(*xy) for xy in f["geometry"]["coordinates"]])
            for f in doc["features"]
        ]
    tree = shapely.STRtree(lines)
    made = [p for p in real_city if p.source == "generated"][::20]
    points = shapely.points([_metres(p.lon, p.lat) for p in made])
    _, dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    assert dist.min() > REAL_REACH_M - 50


async def test_the_registry_says_which_poles_stand_on_real_roads(
    real_city: list[Pole], aredis: aioredis.Redis
) -> None:
    sample = real_city[::200]
    registry = PoleRegistry(aredis, "shenzhen")
    await registry.store(sample)
    index = await registry.load_index()
    for pole in sample[::5]:
        stored = await registry.get(pole.code)
        assert stored == pole
        assert index.get(pole.code) == pole
    stored_sources = Counter(p.source for p in index.sample(len(sample), seed=1))
    assert stored_sources["osm"] > 20 and stored_sources["generated"] > 20


def test_generate_without_road_files_makes_the_generated_city_only(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from polewatch.cli import main

    args = ["poles", "generate", "--roads", "--count", "2000", "--redis-url", redis_url]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["real_road_poles"] == 0 and summary["generated_road_poles"] == summary["poles"]
    assert main(args) == 0
    assert "0 along real roads" in capsys.readouterr().out


def test_names_english_names_and_labels_of_generic_ways(data_dir: Path, tmp_path: Path) -> None:
    def way(osm_id: int | None, name: str | None, highway: str, coords: list[list[float]],
            **more: str) -> dict[str, object]:  # fmt: skip
        props = {"osm_id": osm_id, "name": name, "highway": highway, **more}
        return {"type": "Feature", "properties": props,
                "geometry": {"type": "LineString", "coordinates": coords}}  # fmt: skip

    roads = tmp_path / "futian.geojson"
    features = [
        way(7, "福华路", "primary", [[114.0500, 22.5400], [114.0600, 22.5400]],
            **{"name:en": "Fuhua Road"}),
        way(8, "支路", "service", [[114.0550, 22.5405], [114.0550, 22.5435]]),
        way(None, None, "primary_link", [[114.0585, 22.5395], [114.0585, 22.5365]]),
        way(9, "", "residential", [[114.3000, 22.7200], [114.3050, 22.7200]]),  # Longgang
    ]  # fmt: skip
    roads.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    poles = generate_city(count=10, boundaries=data_dir / BOUNDARIES, roads=[roads])
    assert {p.source for p in poles} == {"osm"}  # the real roads alone give more than 10
    by_road: dict[str, list[Pole]] = defaultdict(list)
    for pole in poles:
        by_road[pole.road or ""].append(pole)
    assert set(by_road) == {"福华路", "福华路支路", "福华路匝道", "无名道路"}
    main = by_road["福华路"]
    assert {p.attrs.get("road_en") for p in main} == {"Fuhua Road"}
    assert {p.attrs["osm_id"] for p in main} == {"7"} and {p.district for p in main} == {"Futian"}
    assert all((p.lat < 22.54) == (p.side == "odd") for p in main)  # odd south of E-W
    branch = by_road["福华路支路"]
    assert all((p.lon > 114.055) == (p.side == "odd") for p in branch)  # odd east of N-S
    assert "road_en" not in branch[0].attrs
    assert {p.district for p in by_road["无名道路"]} == {"Longgang"}
