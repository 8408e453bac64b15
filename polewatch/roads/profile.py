"""How fast a patrol car drives on each class of road, and the other build-time choices.

Settings section ``[roads]`` (or ``POLEWATCH_*`` environment variables, see
:mod:`polewatch.settings`). The defaults are urban Shenzhen averages for a car on a call, not
posted limits: expressways move, arterials crawl through lights. They are baked into the graph
at import time and stored with it, so every service routes with the same numbers.
"""

from __future__ import annotations

import msgspec

from polewatch.settings import Settings

DEFAULT_SPEEDS_KMH: dict[str, float] = {
    "motorway": 70.0,
    "trunk": 45.0,
    "primary": 35.0,
    "secondary": 30.0,
    "tertiary": 25.0,
    "unclassified": 20.0,
    "residential": 18.0,
    "living_street": 10.0,
    "service": 15.0,
    "road": 20.0,
    "motorway_link": 40.0,
    "trunk_link": 30.0,
    "primary_link": 25.0,
    "secondary_link": 22.0,
    "tertiary_link": 20.0,
}
"""km/h by OSM ``highway`` class; a class not listed drives at ``roads_default_kmh``."""


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """The build-time choices stored with a graph."""

    speeds_kmh: dict[str, float] = msgspec.field(default_factory=lambda: dict(DEFAULT_SPEEDS_KMH))
    default_kmh: float = 20.0
    offroad_kmh: float = 10.0
    """Speed of the legs between a point and its snapped position on a road."""
    maxspeed_factor: float = 0.75
    """A tagged ``maxspeed`` drives at this share of the posted limit (a limit is a maximum;
    urban averages run well below it)."""
    snap_m: float = 4.0
    """A way's dangling end this close to another way is joined to it."""
    oneway_classes: tuple[str, ...] = (
        "motorway", "motorway_link", "trunk_link", "primary_link", "secondary_link",
        "tertiary_link",
    )  # fmt: skip
    """Classes one-way along their vertices unless tagged ``oneway=no`` (OSM's implied
    one-way for motorways; slip roads in Shenzhen are one-way)."""

    def speed_kmh(self, highway: str, maxspeed_kmh: float | None) -> float:
        """The driving speed of one way."""
        if maxspeed_kmh is not None:
            return max(5.0, maxspeed_kmh * self.maxspeed_factor)
        return self.speeds_kmh.get(highway, self.default_kmh)


class RoadSettings(Settings, frozen=True, kw_only=True):
    """``[roads]``: overrides of :class:`Profile` (``roads_speeds_kmh`` is merged into the
    defaults, so ``{"primary": 30}`` changes only that class)."""

    roads_speeds_kmh: dict[str, float] = {}
    roads_default_kmh: float = 20.0
    roads_offroad_kmh: float = 10.0
    roads_snap_m: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, value in (
            *((f"roads_speeds_kmh.{k}", v) for k, v in self.roads_speeds_kmh.items()),
            ("roads_default_kmh", self.roads_default_kmh),
            ("roads_offroad_kmh", self.roads_offroad_kmh),
        ):
            if not 1.0 <= value <= 200.0:
                raise ValueError(f"{key}: {value} km/h is not a driving speed (1-200)")
        if not 0.0 <= self.roads_snap_m <= 50.0:
            raise ValueError(f"roads_snap_m: {self.roads_snap_m} m is not 0-50")

    def profile(self) -> Profile:
        """The profile these settings describe."""
        return Profile(
            speeds_kmh={**DEFAULT_SPEEDS_KMH, **self.roads_speeds_kmh},
            default_kmh=self.roads_default_kmh,
            offroad_kmh=self.roads_offroad_kmh,
            snap_m=self.roads_snap_m,
        )
