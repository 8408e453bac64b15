"""Human names for the responsibility grids: ``福田·片区07·23`` / ``Futian·Area 07·23``.

A grid is an H3 cell (:mod:`polewatch.poles.grids`); people name it by district, area and
number, as the city names its grids. The areas are the H3 cells of resolution
:data:`AREA_RESOLUTION` (about 5 km², the size of a sub-district's neighbourhood): each area
belongs to the district holding its centre (the nearest district for one on the coast),
and a district numbers its areas from 01, north to south, then west to east. A grid's number
is its position among the 49 children of its area (H3 child position, 01-49). The names only
change when the district polygons do, and the H3 id stays in exports for machines.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Final

import h3
import shapely

from polewatch import districts, i18n
from polewatch.poles.city import District, load_districts
from polewatch.poles.grids import GRID_RESOLUTION

AREA_RESOLUTION: Final = 7
log = logging.getLogger(__name__)


class GridNames:
    """Names the grids of one city from its district polygons."""

    def __init__(self, city_districts: Sequence[District]) -> None:
        claims: dict[str, District] = {}
        for district in city_districts:
            shape = h3.geo_to_h3shape(shapely.geometry.mapping(district.geometry))
            for cell in h3.h3shape_to_cells_experimental(shape, AREA_RESOLUTION, "overlap"):
                claims.setdefault(cell, district)  # provisional: the owner is decided below
        self._areas: dict[str, tuple[District, int]] = {}
        owned: dict[str, list[tuple[float, float, str]]] = {}
        for cell in claims:
            lat, lon = h3.cell_to_latlng(cell)
            owner = _owner(shapely.Point(lon, lat), city_districts)
            owned.setdefault(owner.name, []).append((-lat, lon, cell))
        by_name = {d.name: d for d in city_districts}
        for name, cells in owned.items():
            for number, (_, _, cell) in enumerate(sorted(cells), start=1):
                self._areas[cell] = (by_name[name], number)

    def label(self, grid: str, language: str) -> str:
        """The grid's name in ``language``; the id itself for a grid outside every area (or
        not a grid id at all)."""
        try:
            if h3.get_resolution(grid) != GRID_RESOLUTION:
                return grid
            area = h3.cell_to_parent(grid, AREA_RESOLUTION)
            number = h3.cell_to_child_pos(grid, AREA_RESOLUTION) + 1
        except (ValueError, TypeError, OverflowError, h3.H3BaseException):
            return grid  # OverflowError: a number beyond H3's 64 bits (another scheme's id)
        found = self._areas.get(area)
        if found is None:
            return grid
        district, area_number = found
        name = districts.display(district.name, language)
        if i18n.normalise(language) == i18n.CHINESE:
            name = name.removesuffix("区")
        return i18n.translate(
            "grid.name", language, district=name, area=f"{area_number:02d}", n=f"{number:02d}"
        )


def _owner(centre: shapely.Point, city_districts: Sequence[District]) -> District:
    for district in city_districts:
        if district.geometry.contains(centre):
            return district
    return min(city_districts, key=lambda d: d.geometry.distance(centre))


@functools.cache
def city_grid_names() -> GridNames | None:
    """The names of the demo city's grids (Shenzhen's districts from the shared data); ``None``
    when the district file is not there (grids are then shown by id)."""
    try:
        return GridNames(load_districts())
    except (OSError, ValueError) as exc:
        log.warning("grid names unavailable (grids shown by id): %s", exc)
        return None


def grid_label(grid: str | None, language: str) -> str:
    """A grid's human name in ``language`` (its id when it has none); empty for no grid."""
    if not grid:
        return ""
    names = city_grid_names()
    return names.label(grid, language) if names is not None else grid
