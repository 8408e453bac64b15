"""Shared fixtures: real redis-server processes on free loopback ports, the real data set."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import settings

from polewatch.embedded import EmbeddedCluster, EmbeddedRedis
from polewatch.embedded_pg import EmbeddedPostgres
from polewatch.poles.index import PoleIndex
from polewatch.poles.model import Pole

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

# Hypothesis profiles. "ci" (the default) explores the same examples on every run, so a suite that
# passed here cannot fail in CI by the luck of the draw, and has no deadline, since a loaded
# machine makes any per-example time limit a coin toss (and a FlakyFailure when the replay is
# fast). "stress" (HYPOTHESIS_PROFILE=stress, with `-p no:timeout` or a long --timeout) draws
# fresh examples, STRESS_FACTOR times as many as each test asks for: run it by hand to find the
# rare failures before CI does.
STRESS_FACTOR = 20
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("stress", deadline=None, derandomize=False, print_blob=True)
settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile named by HYPOTHESIS_PROFILE, if set (else "ci", or the hypothesis plugin's
    --hypothesis-profile); test modules are imported after this, so their @settings inherit it."""
    if os.environ.get("HYPOTHESIS_PROFILE"):
        settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under "stress", multiply every hypothesis test's own max_examples by STRESS_FACTOR."""
    if settings.get_current_profile_name() != "stress":
        return
    stressed: set[object] = set()
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and getattr(test, "is_hypothesis_test", False):
            test._hypothesis_internal_use_settings = _stressed(own)  # type: ignore[union-attr]
        machine = getattr(item, "cls", None)  # a RuleBasedStateMachine's TestCase
        if isinstance(getattr(machine, "settings", None), settings) and machine not in stressed:
            stressed.add(machine)
            machine.settings = _stressed(machine.settings)  # type: ignore[union-attr]


def _stressed(own: settings) -> settings:
    return settings(own, max_examples=own.max_examples * STRESS_FACTOR, derandomize=False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``: the real public data set (poles, video, boundaries, standards)."""
    assert DATA.is_dir(), f"the shared data set is missing at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session; tests get it flushed (see ``redis_url``)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session's redis-server, emptied before the test (data, scripts, functions)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.function_flush()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """A real 3-master Redis Cluster for the session; tests get it flushed (``cluster_url``)."""
    with EmbeddedCluster(tmp_path_factory.mktemp("cluster"), masters=3) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: EmbeddedCluster) -> str:
    """URL of a node of the session's 3-master cluster, every node emptied before the test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(scope="session")
def zones_file(data_dir: Path) -> Path:
    """The Shenzhen districts as dispatch zones (the ``zones`` setting)."""
    return data_dir / "boundaries" / "shenzhen_districts.geojson"


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[type[EmbeddedRedis]]:
    """Factory for extra private servers (fault tests that stop and restart Redis)."""
    started: list[EmbeddedRedis] = []

    class Factory(EmbeddedRedis):
        def start(self, timeout: float = 10.0) -> EmbeddedRedis:
            started.append(self)
            return super().start(timeout)

    yield Factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shenzhen_poles(data_dir: Path) -> list[Pole]:
    """The Shenzhen demo city (seed 0, >= 100,000 poles), generated once per session."""
    from polewatch.poles.city import generate_city

    return generate_city(seed=0, boundaries=data_dir / "boundaries" / "shenzhen_districts.geojson")


@pytest.fixture(scope="session")
def shenzhen_index(shenzhen_poles: list[Pole]) -> PoleIndex:
    """A :class:`PoleIndex` of :func:`shenzhen_poles` (no Redis behind it)."""
    return PoleIndex(shenzhen_poles)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL (with PostGIS) for the session, holding a migrated template archive
    that ``database_url`` copies for each test."""
    import asyncio

    import psycopg

    from archiver.service import migrate

    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"))
    with server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE archive_template")
        asyncio.run(migrate(server.url.rsplit("/", 1)[0] + "/archive_template"))
        yield server
    server.remove()


@pytest.fixture
def database_url(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    """``DATABASE_URL`` of a fresh, migrated, empty archive for the test (dropped after)."""
    import uuid

    import psycopg

    name = f"archive_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE archive_template")
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
    if postgres_server.process is not None:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
