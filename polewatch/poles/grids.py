"""Responsibility grids: the small cells each with its own named staff.

Shenzhen has about 12,000 grids over its ~2,000 km² (0.17 km² each, 300-500 m across, 1,000 to
3,000 residents). polewatch uses H3 cells at resolution 9: 0.105 km² on average (edge ~174 m,
about 350 m across), the H3 size nearest to the real grids: resolution 8 (0.74 km², ~1 km) is
four times too coarse, resolution 10 (0.015 km²) far too fine. H3 rather than a city-specific
square grid because every city gets the same scheme, cells are near-equal in area, neighbours
are cheap (``grid_disk``) for "the next grid's staff", and any service recomputes a grid from
coordinates alone, so a pole, a unit and an incident agree on theirs without a lookup.
"""

from __future__ import annotations

from typing import Final

import h3

GRID_RESOLUTION: Final = 9


def grid_of(lon: float, lat: float) -> str:
    """The responsibility grid (H3 cell, resolution 9, hex string) holding a point."""
    return str(h3.latlng_to_cell(lat, lon, GRID_RESOLUTION))
