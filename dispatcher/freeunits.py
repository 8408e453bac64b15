"""A zone's free units in the replica's memory: the shortlists' search without GEOSEARCH.

The road shortlists (:mod:`dispatcher.drive`) need, for every place of a batch, the free units
nearest by air: the ``shortlist`` nearest, then every one within the radius the best drive
proves needed (several km with the city's fastest road). Asked of Redis, those searches were
most of the Redis CPU an alarm cost by road. Here the zone's free set is read whole
(``ZRANGE <free set> 0 -1 WITHSCORES``: a GEO set is a sorted set whose scores are 52-bit
geohashes), its positions decoded the way Redis decodes them (so they equal ``GEOPOS``), and
searched in a KD-tree over points on the sphere, all places of a batch at once. Distances are
Redis' own haversine, so a search here answers what ``GEOSEARCH ... BYRADIUS r m ASC COUNT n
WITHDIST WITHCOORD`` answers on the same set.

The copy is as old as its read (:attr:`FreeUnits.read_at`). The Function's reply names the units
each call took off the free set; the ranker masks them in its copies (:meth:`FreeUnits.take`),
so a search no longer finds them (one taken by another replica is skipped by the Function). A
unit freed since the read is missing until the next one, which the ranker makes every
``free_units_refresh_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import redis.asyncio as aioredis
from scipy.spatial import cKDTree

from polewatch import keys
from polewatch.geo import EARTH_RADIUS_M, haversine_many

_STEP = 26
"""Bits per coordinate of a Redis GEO score (``GEO_STEP_MAX``)."""
_LON = (-180.0, 180.0)
_LAT = (-85.05112878, 85.05112878)
"""The ranges Redis GEO encodes (``GEO_LONG_MIN`` ... ``GEO_LAT_MAX``)."""
_SPARE = 2
"""Neighbours asked of the tree beyond those wanted: its chord order and the haversine order
may swap two units at the same distance to a few ulps."""
_REBUILD_AFTER = 64
"""Masked units a search passes over (asking the tree for as many more) before the tree is
built again without them (about 1 ms for 4,000 units: at 1,000 alarms/s, a build after each
small batch's claims would cost half a core)."""


class Nearby(NamedTuple):
    """Free units near each of n places by air, nearest first: rows of one width."""

    member: np.ndarray
    """(n, k) positions in the :class:`FreeUnits` (:meth:`FreeUnits.name`); its length past a
    row's last unit."""
    air_m: np.ndarray
    """(n, k) straight-line metres (Redis' ``WITHDIST``); ``inf`` past a row's last unit."""
    wanted: np.ndarray
    """(n,) the count each place asked for."""
    radius: np.ndarray
    """(n,) the radius each place was searched within."""


def _other_type(unit: bytes | str) -> bytes | str:
    """A unit id as text if given bytes, and as bytes if given text."""
    return unit.decode() if isinstance(unit, bytes) else unit.encode()


def _squeeze(bits: np.ndarray) -> np.ndarray:
    """The even bits of each 64-bit word, packed into its low 32 bits."""
    x = bits & np.uint64(0x5555555555555555)
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F),
                        (4, 0x00FF00FF00FF00FF), (8, 0x0000FFFF0000FFFF),
                        (16, 0x00000000FFFFFFFF)):  # fmt: skip
        x = (x | (x >> np.uint64(shift))) & np.uint64(mask)
    return x


def decode(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes of GEO scores, as Redis decodes them (the centre of the
    geohash cell, the same float operations): equal to what ``GEOPOS`` answers."""
    bits = np.asarray(scores, dtype=np.float64).astype(np.uint64)
    lat_cell = _squeeze(bits).astype(np.float64)  # latitude in the even bits
    lon_cell = _squeeze(bits >> np.uint64(1)).astype(np.float64)
    cells = float(1 << _STEP)
    return _centre(lon_cell, cells, _LON), _centre(lat_cell, cells, _LAT)


def _centre(cell: np.ndarray, cells: float, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    scale = high - low
    first = low + (cell * 1.0 / cells) * scale
    last = low + ((cell + 1.0) * 1.0 / cells) * scale
    return np.clip((first + last) / 2, low, high)


def _on_sphere(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points in metres on the sphere: straight (chord) distance grows with the arc."""
    lo, la = np.radians(lon), np.radians(lat)
    return EARTH_RADIUS_M * np.stack(
        [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1
    )


def _chord(arc_m: float) -> float:
    half = min(arc_m, np.pi * EARTH_RADIUS_M) / (2.0 * EARTH_RADIUS_M)
    return float(2.0 * EARTH_RADIUS_M * np.sin(half))


class FreeUnits:
    """A zone's free units as one read found them: ids, positions, a tree to search."""

    def __init__(self, units: Sequence[bytes | str], scores: np.ndarray, read_at: float) -> None:
        self._units = list(units)
        self.lon, self.lat = decode(scores)
        self.read_at = read_at
        """``time.monotonic()`` when the set was read."""
        self.taken = np.zeros(len(self._units), dtype=bool)
        """Per unit: reported taken off the free set since the read (:meth:`take`)."""
        self._index: dict[bytes | str, int] | None = None
        self._points = _on_sphere(self.lon, self.lat)
        self._tree = cKDTree(self._points) if self._units else None
        self._live: np.ndarray | None = None
        """The units in the tree (positions), when some are masked; ``None``: all."""
        self._stale = 0
        """Units masked since the tree was built (still in it)."""

    def __len__(self) -> int:
        return len(self._units)

    def take(self, units: Iterable[bytes | str]) -> int:
        """Mask ``units`` (ids the Function reported taken off the free set): searches no
        longer find them. Ids the copy does not hold are ignored; how many were masked now."""
        if self._index is None:  # (ids as the read answered them: the replies' are alike)
            self._index = dict(zip(self._units, range(len(self._units)), strict=True))
        index, found = self._index, []
        for u in units:
            i = index.get(u)
            if i is None:
                i = index.get(_other_type(u))
            if i is not None:
                found.append(i)
        hits = np.array(found, dtype=np.int64)
        new = hits[~self.taken[hits]] if len(hits) else hits
        self.taken[new] = True
        self._stale += len(new)
        return len(new)

    def _search_tree(self) -> cKDTree | None:
        """The tree to search: built again without the masked units once more than
        :data:`_REBUILD_AFTER` of them are in it."""
        if self._stale > _REBUILD_AFTER:
            self._stale = 0
            self._live = np.flatnonzero(~self.taken)
            self._tree = cKDTree(self._points[self._live]) if len(self._live) else None
        return self._tree

    def name(self, member: int) -> str:
        """The unit id at position ``member`` (decoded only when a list names it)."""
        unit = self._units[member]
        return unit.decode() if isinstance(unit, bytes) else unit

    def nearest(
        self,
        places: np.ndarray,
        count: int | np.ndarray,
        radius_m: float | np.ndarray,
    ) -> Nearby:
        """The ``count`` units nearest by air to each ``[lon, lat]`` row of ``places`` within
        its radius (each a number, or one per place), nearest first, with Redis' distances:
        what ``GEOSEARCH ... BYRADIUS radius m ASC COUNT count WITHDIST`` answers."""
        at = np.asarray(places, dtype=np.float64).reshape(-1, 2)
        wanted = np.broadcast_to(np.asarray(count, dtype=np.int64), (len(at),))
        radii = np.broadcast_to(np.asarray(radius_m, dtype=np.float64), (len(at),))
        total = len(self._units)
        tree = self._search_tree()
        live = total if self._live is None else len(self._live)
        k = max(min(int(wanted.max(initial=0)) + _SPARE + self._stale, live), 1)
        if tree is None or not len(at):
            empty = np.full((len(at), k), total)
            return Nearby(empty, np.full((len(at), k), np.inf), wanted, radii)
        reach = _chord(float(radii.max())) * (1 + 1e-9) + 1.0
        _, index = tree.query(_on_sphere(at[:, 0], at[:, 1]), k=[*range(1, k + 1)],
                              distance_upper_bound=reach)  # fmt: skip
        found = index < live
        index = np.where(found, index, 0)
        if self._live is not None:
            index = self._live[index]
        found &= ~self.taken[index]  # (masked since the tree was built)
        metres = haversine_many(at[:, :1], at[:, 1:], self.lon[index], self.lat[index])
        metres = np.where(found & (metres <= radii[:, None]), metres, np.inf)
        order = np.argsort(metres, axis=1, kind="stable")
        metres = np.take_along_axis(metres, order, axis=1)
        metres[np.arange(k)[None, :] >= wanted[:, None]] = np.inf  # the count asked for
        index = np.where(np.isfinite(metres), np.take_along_axis(index, order, axis=1), total)
        return Nearby(index, metres, wanted, radii)


async def read(client: aioredis.Redis, zone: keys.Zone) -> FreeUnits:
    """The zone's free units now: one ``ZRANGE ... WITHSCORES`` of its GEO set (on a Redis
    Cluster, on the zone's own shard)."""
    read_at = time.monotonic()
    reply: Any = await cast(Any, client).execute_command(
        "ZRANGE", zone.units_free_geo, 0, -1, "WITHSCORES"
    )
    if reply and isinstance(reply[0], list | tuple):  # RESP3: [member, score] pairs
        units = [pair[0] for pair in reply]
        scores = np.array([pair[1] for pair in reply], dtype=np.float64)
    else:  # RESP2: member, score, member, score...
        units = reply[0::2]
        scores = np.array(reply[1::2]).astype(np.float64)
    return FreeUnits(units, scores, read_at)
