"""Reading OpenStreetMap files (``.osm.pbf``, ``.osm``, ``.osm.bz2``...) through pyosmium.

Every way with a ``highway`` tag becomes a GeoJSON-like feature (its tags as properties,
``osm_id`` its id), numbered in file order from 1, so that the same checks as for GeoJSON
(:func:`polewatch.roads.features.parse_feature`) decide what is kept. A way whose nodes are
not all in the file (an extract cut through it) keeps the run of nodes that are, or is
refused when fewer than two are. pyosmium is optional: ``pip install 'polewatch[osm]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polewatch.roads.ways import RoadsError

SUFFIXES = (".pbf", ".osm", ".osm.bz2", ".osm.gz", ".o5m", ".opl")
"""File names read as OpenStreetMap data rather than GeoJSON."""
TAGS = ("highway", "name", "name:en", "oneway", "maxspeed", "junction")
"""The way tags the importer reads."""


def is_osm(path: Path) -> bool:
    """Whether ``path`` names an OpenStreetMap file (by its suffix)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in SUFFIXES)


def osm_features(path: Path) -> Iterator[dict[str, Any]]:
    """The file's ``highway`` ways as GeoJSON-like features."""
    try:
        import osmium
    except ImportError:
        raise RoadsError(
            f"{path}: reading OpenStreetMap files needs pyosmium (pip install 'polewatch[osm]')"
        ) from None
    if not path.is_file():
        raise RoadsError(f"{path}: no such file")
    ways = osmium.filter.KeyFilter("highway")
    ways.enable_for(osmium.osm.WAY)  # nodes pass: their locations are needed
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(ways)
    )
    try:
        for way in processor:
            if not isinstance(way, osmium.osm.Way):
                continue  # the entity filter lets none through; this tells the type checker
            props: dict[str, Any] = {k: way.tags.get(k) for k in TAGS if k in way.tags}
            props["osm_id"] = way.id
            coords = _longest_run(
                [[n.lon, n.lat] if n.location.valid() else None for n in way.nodes]
            )
            yield {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "LineString", "coordinates": coords},
            }
    except RuntimeError as exc:  # libosmium's errors on unreadable input
        raise RoadsError(f"{path}: not a readable OpenStreetMap file ({exc})") from None


def _longest_run(points: list[list[float] | None]) -> list[list[float]]:
    """The longest run of consecutive known points."""
    best: list[list[float]] = []
    run: list[list[float]] = []
    for point in [*points, None]:
        if point is None:
            best = run if len(run) > len(best) else best
            run = []
        else:
            run.append(point)
    return best
