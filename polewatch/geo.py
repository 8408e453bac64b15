"""Distances and bearings on the sphere, with the same Earth radius Redis GEO uses, so the
numbers polewatch shows agree with what GEOSEARCH computed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EARTH_RADIUS_M = 6372797.560856
"""Redis' ``EARTH_RADIUS_IN_METERS`` (geohash_helper.c)."""


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    la1, la2 = math.radians(lat1), math.radians(lat2)
    dlat = la2 - la1
    dlon = math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_many(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    """:func:`haversine_m` over arrays (or numbers) that broadcast, in the float operations of
    Redis' ``geohashGetDistance``, so a distance equals the one ``GEOSEARCH ... WITHDIST``
    answers."""
    la1, lo1 = np.radians(lat1), np.radians(lon1)
    la2, lo2 = np.radians(lat2), np.radians(lon2)
    u, v = np.sin((la2 - la1) / 2), np.sin((lo2 - lo1) / 2)
    a = u * u + np.cos(la1) * np.cos(la2) * v * v
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    la1, la2 = math.radians(lat1), math.radians(lat2)
    dlon = math.radians(lon2 - lon1)
    x = math.sin(dlon) * math.cos(la2)
    y = math.cos(la1) * math.sin(la2) - math.sin(la1) * math.cos(la2) * math.cos(dlon)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


def plausible(lon: float, lat: float) -> bool:
    """Inside the valid range and not the (0, 0) 'null island' of a missing value."""
    return (
        math.isfinite(lon)
        and math.isfinite(lat)
        and -180.0 <= lon <= 180.0
        and -85.05112878 <= lat <= 85.05112878  # the range Redis GEO can index
        and not (lon == 0.0 and lat == 0.0)
    )
