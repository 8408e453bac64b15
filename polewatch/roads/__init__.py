"""The road network: import, storage, and drive-time routing (shared core; docs/roads.md).

API for the other services (coordinates are WGS84 ``lon, lat`` floats; times in seconds,
distances in metres)::

    from polewatch.roads import load_roads, load_roads_sync, RoadNetwork, Leg, Route, Snap

    net = await load_roads(aredis, "shenzhen")   # None until `polewatch roads import` ran;
                                                 # cached: one GET per call while unchanged
    net = load_roads_sync(redis_client, "shenzhen")  # the same, synchronous client

    net.snap(lon, lat, role="any") -> Snap | None  # nearest point on the nearest road edge:
                                                 # .lon .lat .offroad_m .edge .t; role
                                                 # "source"/"target": as drive_times_to
                                                 # places units / alarms (docs/roads.md)
    net.drive_times_to(lon, lat, [(lon, lat), ...], limit_s=None) -> list[Leg | None]
        # one-to-many: each source's drive to the target, .time_s .distance_m (off-road legs
        # at net.offroad_mps included); None: off the map (> 1 km from any road),
        # unreachable (one-way, gaps in the data) or slower than limit_s. About 1 ms.
    net.route(from_lon, from_lat, to_lon, to_lat) -> Route | None
        # .time_s .distance_m .path ([lon, lat] pairs, from the origin, for drawing)
        # .roads (names of the named roads along it, in order)
        # .times (seconds from the origin at each path vertex, each road at its speed)
    net.drive_times_batch(targets, sources, of) -> Drives   # a whole batch at once: numpy
        # [lon, lat] rows, of[i] = the target of source i; the same drives as drive_times_to,
        # from a junction-to-junction table once net.build_table() ran (in a thread), snaps
        # cached (docs/drive-time-speed.md)
    net.placed(points) -> bool array   # whether an alarm at each point meets the roads
    net.fastest_mps   # no drive beats straight-line distance / fastest_mps: a unit farther
                      # by air than fastest_mps * best_time_s cannot be faster than best
    net.version, net.city

    await RoadStore(aredis, city).features() -> bytes | None   # the roads as GeoJSON, for maps

Building (``polewatch roads import FILE... --city shenzhen`` does all of this)::

    report = read_roads(paths, zones=zone_map)      # GeoJSON or .osm.pbf (pyosmium): ways,
                                                    # problems by file and feature number
    net = build_network(report.ways, profile)       # Profile: speeds, snapping, one-way
    version = await RoadStore(aredis, city).store(net, to_geojson(report.ways))

Every call on a network is thread-safe and pure CPU (about a millisecond): call it directly
from asyncio code. Networks are immutable; a new import gives a new version.
"""

from __future__ import annotations

from collections.abc import Sequence

from polewatch.roads.features import (
    FeatureError,
    FeatureProblem,
    ImportReport,
    parse_feature,
    read_roads,
    to_geojson,
)
from polewatch.roads.graph import build
from polewatch.roads.network import Leg, RoadNetwork, Route, Snap
from polewatch.roads.profile import Profile, RoadSettings
from polewatch.roads.store import RoadStore, load_roads, load_roads_sync
from polewatch.roads.ways import RoadsError, Way

__all__ = [
    "FeatureError",
    "FeatureProblem",
    "ImportReport",
    "Leg",
    "Profile",
    "RoadNetwork",
    "RoadSettings",
    "RoadStore",
    "RoadsError",
    "Route",
    "Snap",
    "Way",
    "build_network",
    "load_roads",
    "load_roads_sync",
    "parse_feature",
    "read_roads",
    "to_geojson",
]


def build_network(
    ways: Sequence[Way], profile: Profile | None = None, *, city: str = ""
) -> RoadNetwork:
    """The routable network of ``ways`` (see :mod:`polewatch.roads.graph`)."""
    profile = profile or Profile()
    arrays, _ = build(ways, profile)
    return RoadNetwork(
        arrays,
        profile=profile,
        names=[w.name for w in ways],
        highways=[w.highway for w in ways],
        city=city,
    )
