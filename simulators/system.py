"""The system's Redis and its service processes, as ``polewatch demo`` and ``polewatch
loadtest`` start them.

:class:`Store` is the Redis the system runs on: a private ``redis-server`` or a private Redis
Cluster of N masters under the run folder (:func:`start_private`), or one named by
``REDIS_URL`` (with ``POLEWATCH_REDIS_CLUSTER`` and ``POLEWATCH_ZONES`` for a cluster). Its
:meth:`Store.env` is what every child service is started with, so the dispatchers, the
gateway, the edge agents and the locust processes all see the same Redis and the same dispatch
zones. :class:`Processes` starts those services and stops them in reverse order.
"""

from __future__ import annotations

import argparse
import functools
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from polewatch import keys
from polewatch.connection import connect, connect_sync
from polewatch.embedded import EmbeddedCluster, EmbeddedRedis, die_with_parent
from polewatch.embedded_pg import EmbeddedPostgres, PostgresNotFound
from polewatch.settings import Settings, SettingsError
from polewatch.zones import ZoneMap

PIDS = "demo.pids"
"""File of the run folder listing ``PID NAME`` of every process started (Redis included)."""


def masters_arg(text: str) -> int:
    """The ``--cluster N`` option's value: a count of masters (0: no cluster)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of masters, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the number of masters must be >= 0")
    return value


def default_zones() -> str:
    """The Shenzhen districts file of the shared data: the dispatch zones of a private
    cluster when no ``zones`` setting names others (``FileNotFoundError`` without it)."""
    from polewatch.poles.city import BOUNDARIES_FILE, find_data_dir

    return str(find_data_dir() / BOUNDARIES_FILE)


def zones_for(settings: Settings, masters: int) -> str:
    """The zones file of a run on ``settings`` that starts a private cluster of ``masters``
    (0: none; a private cluster without a ``zones`` setting gets :func:`default_zones`);
    :class:`SettingsError` says what does not fit together."""
    if not masters:
        if settings.redis_cluster and not settings.redis_url:
            raise SettingsError("redis_cluster: set REDIS_URL to a node of the cluster, or "
                                "start a private one with --cluster N")  # fmt: skip
        return settings.zones
    if settings.redis_url:
        raise SettingsError(f"--cluster starts a private Redis Cluster, yet REDIS_URL is set "
                            f"({settings.redis_url}): unset it, or drop --cluster")  # fmt: skip
    try:
        return settings.zones or default_zones()
    except FileNotFoundError as exc:
        raise SettingsError(f"--cluster needs dispatch zones: set 'zones' ({exc})") from None


@dataclass(frozen=True)
class Store:
    """The Redis of a running system: its URL, whether it is a cluster, its zones file."""

    url: str
    cluster: bool = False
    zones: str = ""
    masters: int = 0
    """Masters of a private cluster this process started (0: not started here)."""

    @functools.cached_property
    def zone_map(self) -> ZoneMap:
        """The dispatch zones (one default zone without a zones file)."""
        return ZoneMap.load(self.zones)

    @property
    def zone_keys(self) -> list[keys.Zone]:
        """The keys of every zone (the default zone's alone without zones)."""
        return self.zone_map.all_keys()

    def env(self) -> dict[str, str]:
        """The settings every service of the system is started with (environment)."""
        return {
            "REDIS_URL": self.url,
            "POLEWATCH_REDIS_CLUSTER": "true" if self.cluster else "false",
            "POLEWATCH_ZONES": self.zones,
        }

    def client(self, name: str) -> aioredis.Redis:
        """An asyncio client (a cluster client on a cluster)."""
        if self.cluster:
            return connect(self.url, name=name, cluster=True)
        return aioredis.Redis.from_url(self.url)

    def sync_client(self, name: str) -> redis.Redis:
        """A blocking client (a cluster client on a cluster)."""
        return connect_sync(self.url, name=name, cluster=self.cluster)

    def describe(self) -> str:
        """The Redis and zones, for a banner."""
        if not self.cluster:
            where = self.url
        elif self.masters:
            where = f"{self.url}  (Redis Cluster of {self.masters} masters)"
        else:
            where = f"{self.url}  (Redis Cluster)"
        if self.zone_map.zoned:
            where += f"; {len(self.zone_map.names)} dispatch zones from {self.zones}"
        return where


def start_private(
    run_dir: Path, *, masters: int = 0, zones: str = ""
) -> tuple[Store, EmbeddedRedis | EmbeddedCluster]:
    """Start a private ``redis-server`` (``masters`` 0, data in ``run_dir/redis``) or a Redis
    Cluster of ``masters`` (``run_dir/redis-cluster``, fresh each run: no persistence),
    tied to this process so that nothing outlives it; the servers' PIDs go to :data:`PIDS`.
    The caller stops the returned server."""
    server: EmbeddedRedis | EmbeddedCluster
    if masters > 0:
        server = EmbeddedCluster(run_dir / "redis-cluster", masters=masters, tied_to_parent=True)
        nodes = server.start().nodes
    else:
        server = EmbeddedRedis(run_dir / "redis", tied_to_parent=True).start()
        nodes = [server]
    with (run_dir / PIDS).open("a") as pids:
        for node in nodes:
            assert node.process is not None
            pids.write(f"{node.process.pid} redis-server\n")
    return Store(server.url, cluster=masters > 0, zones=zones, masters=masters), server


def start_archive(run_dir: Path) -> EmbeddedPostgres | None:
    """Start the private PostgreSQL of the incident archive (data in ``run_dir/postgres``,
    kept between runs), tied to this process; ``None`` (with a note) when PostgreSQL is not
    installed: the demo then runs without an archive. The caller stops the server."""
    try:
        server = EmbeddedPostgres(run_dir / "postgres", tied_to_parent=True).start()
    except PostgresNotFound as exc:
        print(f"polewatch demo: no incident archive ({exc})", flush=True)
        return None
    assert server.process is not None
    with (run_dir / PIDS).open("a") as pids:
        pids.write(f"{server.process.pid} postgres\n")
    return server


class Processes:
    """Child processes of the demo, stopped in reverse order of start."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        logfile = (self.run_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "polewatch.cli", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
            preexec_fn=die_with_parent,
        )
        logfile.close()
        self.children.append((name, proc))
        with (self.run_dir / PIDS).open("a") as pids:
            pids.write(f"{proc.pid} {name}\n")
        return proc

    def check(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                tail = (self.run_dir / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, grace_s: float = 8.0) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _name, proc in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()


class ArchiveTally:
    """The incident archive's progress for the demo's status line: incidents archived in
    PostgreSQL, and the archivers' lag (audit entries not yet read by their group, summed over
    the zones)."""

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self.archived: int | None = None
        self.lag: int | None = None

    async def update(self, client: aioredis.Redis, zones: list[keys.Zone]) -> None:
        if not self.database_url:
            return
        import psycopg  # only a demo with an archive needs the driver

        lag = 0
        try:
            for zone in zones:
                groups: Any = await client.xinfo_groups(zone.audit)
                lag += sum(int(g.get("lag") or 0) for g in groups
                           if _text(g.get("name")) == keys.ARCHIVE_GROUP)  # fmt: skip
            self.lag = lag
        except redis.RedisError:  # no audit stream yet, or no group yet
            self.lag = None
        try:
            async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
                row = await (await conn.execute("SELECT count(*) FROM incident")).fetchone()
            self.archived = int(row[0]) if row else 0
        except psycopg.Error:
            self.archived = None

    def __str__(self) -> str:
        if not self.database_url:
            return ""
        show = ["?" if v is None else str(v) for v in (self.archived, self.lag)]
        return f"  archived {show[0]} (archive lag {show[1]} entries)"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
