"""What the simulated clients act on: poles sampled from the registry, unit tokens, the mix.

Everything here is read once per locust process (the sync redis client is fine under gevent)
and shared by its users. Only the key names and the dispatch zones of the core are used: the
load test is a client of the system, it does not reuse the services' code. On a zoned
deployment each sampled pole knows its zone, so an edge user appends its alarm to that zone's
stream, as a real edge agent does.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import redis
from redis.cluster import RedisCluster

from polewatch import keys
from polewatch.zones import ZoneMap

CLASS_OF: Final = {
    "citizen": "CitizenUser",
    "patrol": "PatrolUser",
    "edge": "EdgeUser",
    "viewer": "ViewerUser",
}
"""Mix name -> locust user class name."""
DEFAULT_MIX: Final = "citizen=4,patrol=6,edge=2,viewer=1"
SAMPLE: Final = 5000


class PopulationError(ValueError):
    """The load test cannot run with what it was given; the message says why."""


@dataclass(frozen=True)
class Place:
    """A pole the simulated clients use: its code and position."""

    code: str
    lon: float
    lat: float
    zone: str = ""
    """The dispatch zone the pole lies in (``""`` without zones)."""


def parse_mix(text: str) -> dict[str, int]:
    """``citizen=6,patrol=3`` -> weights per mix name (every name known, weights >= 0)."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in CLASS_OF:
            raise PopulationError(
                f"bad mix entry {part!r}: use NAME=WEIGHT with NAME one of {', '.join(CLASS_OF)}"
            )
        try:
            weight = int(value)
        except ValueError:
            raise PopulationError(f"bad mix weight {value!r} for {name}") from None
        if weight < 0:
            raise PopulationError(f"mix weight of {name} must be >= 0")
        mix[name] = weight
    if not any(mix.values()):
        raise PopulationError("the mix has no user with a positive weight")
    return mix


def patrol_share(mix: dict[str, int], users: int) -> int:
    """An upper bound of the patrol users locust will start for ``users`` users."""
    total = sum(mix.values())
    return min(users, -(-users * mix.get("patrol", 0) // total) + len(mix))


def redis_client(url: str, *, cluster: bool, name: str) -> redis.Redis:
    """A blocking client of the system's Redis (a cluster client on a cluster)."""
    if cluster:
        return cast(redis.Redis, RedisCluster.from_url(url, client_name=name, socket_timeout=10))
    return redis.Redis.from_url(url, client_name=name, socket_timeout=10)


def sample_poles(
    url: str,
    city: str,
    count: int = SAMPLE,
    seed: int = 7,
    *,
    cluster: bool = False,
    zones: ZoneMap | None = None,
) -> list[Place]:
    """Up to ``count`` random poles of ``city`` (code, position, zone) from the registry."""
    zones = zones or ZoneMap.single()
    client = redis_client(url, cluster=cluster, name="loadtest:poles")
    try:
        codes: list[bytes] = client.hrandfield(keys.poles(city), count) or []  # type: ignore[assignment]
        if not codes:
            raise PopulationError(f"the pole registry of {city!r} is empty")
        positions = client.geopos(keys.poles_geo(city), *codes)
    finally:
        client.close()
    places = [
        Place(code.decode(), float(pos[0]), float(pos[1]), zones.locate(pos[0], pos[1]))
        for code, pos in zip(codes, positions, strict=True)
        if pos is not None
    ]
    random.Random(seed).shuffle(places)
    return places


def read_tokens(path: str | Path) -> list[tuple[str, str]]:
    """``(unit, token)`` pairs of a tokens file (``UNIT TOKEN`` a line)."""
    pairs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        unit, _, token = line.strip().partition(" ")
        if not token:
            raise PopulationError(f"{path}:{number}: expected 'UNIT TOKEN'")
        pairs.append((unit, token.strip()))
    return pairs


class Shared:
    """Per-process shared state: the pole sample, the unit pool, recently raised alarms."""

    def __init__(self) -> None:
        self.places: list[Place] = []
        self.units: list[tuple[str, str]] = []
        self.recent_alarms: list[str] = []
        self._lock = threading.Lock()
        self._next_unit = itertools.count()
        self._rng = random.Random()
        self._operator: str | None = None

    def load(
        self,
        url: str,
        city: str,
        tokens: str | None,
        worker: int,
        workers: int,
        *,
        cluster: bool = False,
        zones: str = "",
    ) -> None:
        """Read the poles (with their zones, from the ``zones`` file) and this process' share
        of the unit tokens (once)."""
        with self._lock:
            if self.places:
                return
            self.places = sample_poles(url, city, cluster=cluster, zones=ZoneMap.load(zones))
            if tokens and Path(tokens).exists():  # without: patrol users report no token
                pairs = read_tokens(tokens)
                self.units = pairs[worker :: max(workers, 1)]

    def operator_token(self, path: str) -> str:
        """The viewers' token, from its file (empty without one: the gateway answers 401)."""
        with self._lock:
            if self._operator is None:
                file = Path(path) if path else None
                self._operator = file.read_text().strip() if file and file.exists() else ""
            return self._operator

    def place(self) -> Place:
        return self._rng.choice(self.places)

    def take_unit(self) -> tuple[str, str]:
        """A unit (id, token) no other user of this process holds."""
        n = next(self._next_unit)
        if n >= len(self.units):
            raise PopulationError(
                f"no unit token left for patrol user {n + 1} (the tokens file has "
                f"{len(self.units)} for this process)"
            )
        return self.units[n]

    def remember_alarm(self, alarm_id: str) -> None:
        self.recent_alarms.append(alarm_id)
        if len(self.recent_alarms) > 200:
            del self.recent_alarms[:100]

    def recent_alarm(self) -> str | None:
        return self._rng.choice(self.recent_alarms) if self.recent_alarms else None


SHARED = Shared()
