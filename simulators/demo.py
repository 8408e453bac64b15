"""``polewatch demo``: the whole system on one machine, with a living city.

It starts (or reuses, with ``REDIS_URL``) a Redis, or with ``--cluster N`` a Redis Cluster of N
masters whose dispatch zones are the city's districts (see :mod:`simulators.system`), makes
sure the Shenzhen demo city is in the pole registry, starts dispatcher replicas, the gateway
and the edge agents as real processes (every one given the same Redis and zones), then runs the
simulated patrol fleet, citizens and a supervisor (who closes resolved incidents with an
evaluation, which is what fills the incident archive) against the gateway's real API. It
prints where to look and a one-line summary every few seconds. Ctrl-C (or SIGTERM) stops
everything in order: simulators, gateway, dispatchers, then the private Redis (every node of a
private cluster); no process is left behind.

The city stands on Shenzhen's real roads where the shared data has them (``data/roads``): at
start the demo imports them as the city's road graph when Redis holds none yet (the same
importer as ``polewatch roads import``, so every service routes on the same graph), stands
the poles along them (:func:`polewatch.poles.city.generate_city`) and lets the simulated
patrols drive along them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import redis.asyncio as aioredis

from polewatch import keys, wire
from polewatch.embedded import EmbeddedCluster, EmbeddedRedis, free_port
from polewatch.poles.model import Pole
from polewatch.roads import load_roads
from polewatch.settings import load
from simulators.system import (
    PIDS,
    ArchiveTally,
    Processes,
    Store,
    start_archive,
    start_private,
)

if TYPE_CHECKING:
    from simulators.doors import DemoDoor
    from simulators.edge import Camera

log = logging.getLogger("polewatch.demo")

ENV_FILE = "env"
"""The demo's environment, in its run folder (``source .run/env``)."""
GATEWAY_PROCESSES = 2
"""Gateway processes behind the demo's one port (``polewatch gateway --processes``)."""


@dataclass(frozen=True)
class DemoOptions:
    redis_url: str | None
    run_dir: Path
    city: str = "shenzhen"
    poles: int = 100_000
    units: int = 300
    rate: float = 0.2
    """Citizen alarms per second."""
    dispatchers: int = 2
    port: int = 8080
    seed: int = 7
    time_scale: float = 5.0
    duration_s: float | None = None
    host: str = "127.0.0.1"
    cameras: int = 3
    """Cameras replaying video through the real video agent (0: none)."""
    doors: int = 4
    """Doors whose simulated controllers feed the real door agent (0: none)."""
    door_rate: float = 0.2
    """Visits per door per second."""
    cluster: int = 0
    """Start a private Redis Cluster of this many masters (0: a single redis-server)."""
    redis_cluster: bool = False
    """``redis_url`` names a node of a Redis Cluster."""
    zones: str = ""
    """The dispatch zones file every service is given (empty: one zone)."""
    database_url: str | None = None
    """The incident archive (``DATABASE_URL``); ``None``: a private PostgreSQL under the run
    folder."""


def project_run_dir() -> Path:
    """``.run/`` in the project checkout (or the current directory for an installed copy)."""
    root = Path(__file__).resolve().parent.parent
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / ".run"


def run(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C or ``duration_s``; returns the exit status."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    (options.run_dir / PIDS).write_text("")
    server: EmbeddedRedis | EmbeddedCluster | None = None
    if options.redis_url is None:
        store, server = start_private(options.run_dir, masters=options.cluster, zones=options.zones)
    else:
        store = Store(options.redis_url, cluster=options.redis_cluster, zones=options.zones)
    archive = start_archive(options.run_dir) if options.database_url is None else None
    database_url = options.database_url or (archive.url if archive is not None else None)
    try:
        return asyncio.run(_demo(options, store, database_url))
    finally:
        if server is not None:
            server.stop()
        if archive is not None:
            archive.stop()


async def _demo(options: DemoOptions, store: Store, database_url: str | None) -> int:
    from gateway.auth import mint  # the demo is a composition root: it may know the gateway
    from gateway.console.accounts import demo_console
    from polewatch.poles.city import generate_city
    from polewatch.poles.registry import PoleRegistry
    from simulators.citizens import Citizens
    from simulators.doors import DoorControllers, plan_doors, write_doors
    from simulators.patrols import PatrolBehaviour, PatrolFleet, make_units
    from simulators.supervisors import Supervisor

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    client = store.client("demo")
    roads = await _import_roads(client, options.city)
    registry = PoleRegistry(client, options.city)
    if await registry.count() == 0:
        print(f"polewatch demo: generating the {options.city} city ({options.poles} poles)...")
        started = time.monotonic()
        city = generate_city(count=options.poles, seed=options.seed, city=options.city,
                             roads=roads)  # fmt: skip
        await registry.store(city)
        real = sum(p.source == "osm" for p in city)
        print(f"polewatch demo: city ready in {time.monotonic() - started:.1f} s "
              f"({real} poles on real roads, {len(city) - real} on generated ones)")  # fmt: skip
    network = await load_roads(client, options.city)
    index = await registry.load_index()
    poles: list[Pole] = index.sample(5000, seed=options.seed)

    secret = secrets.token_urlsafe(24)
    port = options.port or free_port()
    env = dict(os.environ, **store.env(), POLEWATCH_SECRET=secret, POLEWATCH_CITY=options.city)
    archive_env = {"DATABASE_URL": database_url} if database_url else {}
    env.update(archive_env)
    password = secrets.token_urlsafe(6)  # the command centre's demo login (see the banner)
    env["POLEWATCH_CONSOLE"] = demo_console("demo", password)
    procs = Processes(options.run_dir, env)
    base = f"http://{options.host}:{port}"
    env_file = write_env(options.run_dir, {**store.env(), "POLEWATCH_SECRET": secret,
                         "POLEWATCH_CITY": options.city, "POLEWATCH_GATEWAY": base,
                         **archive_env})  # fmt: skip
    try:
        for n in range(options.dispatchers):
            procs.start(f"dispatcher-{n + 1}", "dispatcher", "--consumer", f"demo-{n + 1}")
        # two gateway processes share the port (SO_REUSEPORT), as a city runs several
        procs.start("gateway", "gateway", "--host", options.host, "--port", str(port),
                    "--processes", str(GATEWAY_PROCESSES))  # fmt: skip
        if database_url:
            procs.start("archiver", "archiver", "--consumer", "demo-archiver")
        cameras = _start_cameras(options, poles, procs)
        doors = plan_doors(poles, options.doors, options.seed) if options.doors > 0 else []
        door_url = ""
        if doors:
            door_port = free_port()
            conf = write_doors(options.run_dir, doors, door_port)
            procs.start("door-agent", "edge", "door", "--config", str(conf))
            door_url = f"http://127.0.0.1:{door_port}"
        await _wait_http(f"{base}/api/openapi.json", procs, stop)
        if door_url:
            await _wait_http(f"{door_url}/status", procs, stop)
        operator = mint(secret, "supervisor", "demo", 12 * 3600)
        phone = mint(secret, "unit", "PHONE-1", 12 * 3600)
        print(
            "\npolewatch demo is running\n"
            f"  command centre:     {base}/console/  (login demo, password {password})\n"
            f"  patrol app (phone): {base}/patrol/?token={phone}\n"
            f"  gateway / API:      {base}/api/openapi.json\n"
            f"  a pole's help page: {base}/p/{poles[0].code}\n"
            f"  operator token:     {operator}\n"
            f"  cameras:            {_cameras_line(cameras)}\n"
            f"  doors:              {_doors_line(doors)}\n"
            f"  redis:              {store.describe()}\n"
            f"  incident archive:   {database_url or 'none'}\n"
            f"  logs:               {options.run_dir}/\n"
            f"  another shell:      source {env_file}  (then e.g. polewatch token unit U0001)\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        units = make_units(options.units, [(p.lon, p.lat, p.grid) for p in poles], options.seed)
        fleet = PatrolFleet(
            base,
            units,
            lambda unit: mint(secret, "unit", unit, 12 * 3600),
            PatrolBehaviour(time_scale=options.time_scale),
            roads=network,
        )
        citizens = Citizens(base, poles, options.rate * options.time_scale, options.seed)
        edge = EdgeTally(len(cameras), len(doors))
        # a supervisor closes resolved incidents (with an evaluation): what fills the archive
        chief = mint(secret, "supervisor", "sim-supervisor", 12 * 3600)
        supervisor = Supervisor(base, chief, options.seed, time_scale=options.time_scale)
        archive = ArchiveTally(database_url)
        tasks = [
            asyncio.create_task(fleet.run(stop)),
            asyncio.create_task(citizens.run(stop)),
            asyncio.create_task(supervisor.run(stop)),
            asyncio.create_task(
                _report(client, store, fleet, procs, stop, edge, supervisor, archive)
            ),
        ]
        if door_url:
            controllers = DoorControllers(door_url, doors, options.seed, options.door_rate)
            tasks.append(asyncio.create_task(controllers.run(stop)))
        if options.duration_s is not None:
            loop.call_later(options.duration_s, stop.set)
        await stop.wait()
        print("\npolewatch demo: stopping...", flush=True)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                log.error("demo task failed: %r", result)
        return 0
    finally:
        procs.stop()
        env_file.unlink(missing_ok=True)  # its secret and Redis are gone with the demo
        await client.aclose()


def write_env(run_dir: Path, values: dict[str, str]) -> Path:
    """``run_dir/env``: the demo's settings as shell ``export`` lines (the Redis, its zones,
    the token secret), readable by the owner only, so that ``source .run/env`` gives a second
    shell the CLI of the running demo (``polewatch token unit X``, ``polewatch poles ...``)."""
    path = run_dir / ENV_FILE
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    path.unlink(missing_ok=True)  # a fresh file, so it is created with the mode below
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


async def _import_roads(client: Any, city: str) -> list[Path]:
    """The road files of the shared data (none without it); imported as the city's road
    graph unless Redis already holds one (a new import: ``polewatch roads import``)."""
    from polewatch.poles.city import find_data_dir
    from polewatch.poles.streets import road_files
    from polewatch.roads import RoadSettings, RoadStore, build_network, read_roads, to_geojson

    try:
        files = road_files(find_data_dir())
    except FileNotFoundError:
        return []
    store = RoadStore(client, city)
    if files and await store.version() == 0:
        started = time.monotonic()
        profile = load(RoadSettings, section="roads").profile()
        report = await asyncio.to_thread(read_roads, files)
        network = await asyncio.to_thread(build_network, report.ways, profile, city=city)
        version = await store.store(network, to_geojson(report.ways))
        print(f"polewatch demo: imported {len(report.ways)} roads of {city} "
              f"({len(report.problems)} features refused; graph version {version}) "
              f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    return files


def _start_cameras(options: DemoOptions, poles: list[Pole], procs: Processes) -> list[Camera]:
    """Camera configs in the run folder and one video agent process for all of them."""
    from polewatch.poles.city import find_data_dir
    from simulators.edge import write_cameras

    if options.cameras <= 0:
        return []
    try:
        data: Path | None = find_data_dir()
    except FileNotFoundError:
        data = None
    cameras = write_cameras(options.run_dir, poles, options.cameras, options.seed, data)
    args = [arg for camera in cameras for arg in ("--camera", str(camera.config))]
    procs.start("video-agent", "edge", "video", *args)
    return cameras


def _cameras_line(cameras: list[Camera]) -> str:
    if not cameras:
        return "none (--cameras 0)"
    return ", ".join(f"{c.id} on pole {c.pole.code} ({c.pole.district})" for c in cameras)


def _doors_line(doors: list[DemoDoor]) -> str:
    if not doors:
        return "none (--doors 0)"
    return ", ".join(f"{d.id} on pole {d.pole.code} ({d.pole.district})" for d in doors)


class EdgeTally:
    """Alarms of the demo's cameras and doors, counted from the new entries of the alarm
    streams (one per zone) at each report."""

    def __init__(self, cameras: int, doors: int) -> None:
        self.cameras, self.doors = cameras, doors
        self.camera_alarms = self.door_alarms = 0
        self._after: dict[str, str] = {}

    async def update(
        self, client: aioredis.Redis, streams: list[str] | None = None, batch: int = 500
    ) -> None:
        if not (self.cameras or self.doors):
            return
        for stream in streams or [keys.ALARMS]:
            while True:
                after = self._after.get(stream, "0-0")
                entries: Any = await client.xrange(stream, f"({after}", count=batch)
                for entry_id, fields in entries:
                    self._after[stream] = entry_id.decode()
                    with contextlib.suppress(wire.WireError):
                        source = wire.decode_entry(fields, wire.Alarm).source
                        self.camera_alarms += source.startswith("camera:")
                        self.door_alarms += source.startswith(("door:", "controller:"))
                if len(entries) < batch:
                    break

    def __str__(self) -> str:
        out = f"  cameras {self.cameras} ({self.camera_alarms} alarms)" if self.cameras else ""
        return out + (f"  doors {self.doors} ({self.door_alarms} alarms)" if self.doors else "")


async def _wait_http(url: str, procs: Processes, stop: asyncio.Event, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            procs.check()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {within_s:.0f} s")
            await asyncio.sleep(0.2)


async def _report(
    client: aioredis.Redis,
    store: Store,
    fleet: object,
    procs: Processes,
    stop: asyncio.Event,
    edge: EdgeTally,
    supervisor: object,
    archive: ArchiveTally,
) -> None:
    """Print a one-line picture of the city every few seconds (summed over the zones)."""
    zones = store.zone_keys
    where = f"  in {len(zones)} zones" if store.zone_map.zoned else ""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)
        procs.check()
        pipe = client.pipeline(transaction=False)
        for zone in zones:
            pipe.xlen(zone.alarms)
            pipe.zcard(zone.incidents_open)
            pipe.zcard(zone.escalated)
            pipe.zcard(zone.units_free_geo)
            pipe.zcard(zone.units_geo)
            pipe.xlen(zone.audit)
        counts = await pipe.execute()
        alarms, open_, escalated, free, on_duty, audit = (sum(counts[i::6]) for i in range(6))
        await edge.update(client, [zone.alarms for zone in zones])
        await archive.update(client, zones)
        print(
            f"[{time.strftime('%H:%M:%S')}] alarms {alarms}  open incidents {open_} "
            f"(escalated {escalated})  units free {free}/{on_duty}  "
            f"connected {getattr(fleet, 'connected', '?')}  audit events {audit}{edge}"
            f"{getattr(supervisor, 'stats', '')}{archive}{where}",
            flush=True,
        )
