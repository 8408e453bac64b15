"""The Shenzhen demo city: 100k poles on roads inside the real districts, real code scheme."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import h3
import numpy as np
import shapely

from polewatch.poles.city import generate_city, load_districts
from polewatch.poles.codes import DISTRICT_DIGITS, parse_shenzhen
from polewatch.poles.grids import GRID_RESOLUTION, grid_of
from polewatch.poles.model import Pole

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
