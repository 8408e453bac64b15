"""``polewatch demo``: run the whole system with a simulated city (see simulators.demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulators.system import masters_arg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole system on an embedded Redis with a simulated city",
        description="Starts a private redis-server (or a Redis Cluster with --cluster N, or "
        "uses REDIS_URL, with POLEWATCH_REDIS_CLUSTER and POLEWATCH_ZONES for a cluster), the "
        "demo city, dispatchers, the gateway, camera and door agents fed with simulated video "
        "and door controllers, patrol units and citizens. Ctrl-C stops everything.",
    )
    demo.add_argument("--units", type=int, default=300, help="patrol units (default 300)")
    demo.add_argument("--rate", type=float, default=0.2, help="citizen alarms per simulated second")
    demo.add_argument("--dispatchers", type=int, default=2, help="dispatcher replicas")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (0: any free)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--poles", type=int, default=100_000, help="poles in a new demo city")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--time-scale", type=float, default=5.0, help="simulated time speed-up")
    demo.add_argument(
        "--cameras", type=int, default=3, help="cameras replaying video (default 3; 0: none)"
    )
    demo.add_argument(
        "--doors", type=int, default=4, help="doors with simulated controllers (default 4; 0: none)"
    )
    demo.add_argument(
        "--door-rate", type=float, default=12.0, help="visits per door per minute (default 12)"
    )
    demo.add_argument(
        "--cluster",
        type=masters_arg,
        default=0,
        metavar="N",
        help="start a private Redis Cluster of N masters, dispatch zones the districts "
        "(default 0: one redis-server)",
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--run-dir", type=Path, help="where Redis data and logs go (.run/)")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from polewatch import logs
    from polewatch.settings import Settings, SettingsError, load
    from simulators.demo import DemoOptions, project_run_dir, run
    from simulators.system import zones_for

    class DemoSettings(Settings, frozen=True, kw_only=True):
        redis_url: str = ""
        """Empty: start a private redis-server under the run folder."""
        database_url: str = ""
        """The incident archive (``DATABASE_URL``); empty: a private PostgreSQL."""

    try:
        settings = load(DemoSettings, section="demo")
        zones = zones_for(settings, args.cluster)
    except SettingsError as exc:
        print(f"polewatch demo: {exc}", file=sys.stderr)
        return 2
    logs.setup("demo", settings.log_level, json_output=False)
    return run(
        DemoOptions(
            redis_url=settings.redis_url or None,
            database_url=settings.database_url or None,
            cluster=args.cluster,
            redis_cluster=settings.redis_cluster,
            zones=zones,
            city=settings.city,
            run_dir=args.run_dir or project_run_dir(),
            units=args.units,
            rate=args.rate,
            dispatchers=args.dispatchers,
            port=args.port,
            host=args.host,
            poles=args.poles,
            seed=args.seed,
            time_scale=args.time_scale,
            duration_s=args.duration,
            cameras=args.cameras,
            doors=args.doors,
            door_rate=args.door_rate / 60.0,
        )
    )
