"""What a road file is read into: :class:`Way`, one drivable line as read, and
:class:`RoadsError`, raised when a file cannot be read at all.

The readers (:mod:`polewatch.roads.osm`, :mod:`polewatch.roads.features`) make ways; the
deduplication (:mod:`polewatch.roads.overlap`) and the graph (:mod:`polewatch.roads.graph`)
take them. Everything that reads or takes a way imports it from here.
"""

from __future__ import annotations

import msgspec


class RoadsError(ValueError):
    """A road file cannot be read at all; the message says why."""


class Way(msgspec.Struct, frozen=True):
    """One drivable line of a road file, as read (no routing decisions yet)."""

    source: str
    feature: int
    """The feature's number in its file, from 1."""
    coords: list[tuple[float, float]]
    """``(lon, lat)`` vertices, at least two distinct ones."""
    highway: str
    name: str | None = None
    name_en: str | None = None
    osm_id: int | None = None
    oneway: int | None = None
    """1 along the vertices, -1 against them, 0 both ways, ``None``: not tagged."""
    maxspeed_kmh: float | None = None
    """The posted limit when tagged and sane (5-150 km/h)."""
