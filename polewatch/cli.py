"""The ``polewatch`` console script: the composition root that knows every service.

Each area registers its own subcommands from a small ``cli`` module exposing
``register(subparsers)``; this file only lists them, so it stays short as the system grows.
Benchmarks register under ``polewatch bench NAME`` through :data:`BENCHES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

COMMAND_MODULES: tuple[str, ...] = (
    "polewatch.poles.cli",
    "polewatch.roads.cli",
    "simulators.cli",
    "edge.video.cli",
    "edge.cli",
    "polewatch.acl",
    "gateway.cli",
    "gateway.console.cli",
    "dispatcher.cli",
    "analytics.cli",
    "archiver.cli",
    "loadtest.cli",
)
"""Modules whose ``register(subparsers)`` adds top-level subcommands."""

BENCHES: dict[str, str] = {
    "dispatch": "dispatcher.bench:run",
    "lookup": "polewatch.poles.bench:run",
    "edge": "edge.bench:run",
    "gateway": "gateway.bench:run",
    "cluster": "dispatcher.cluster_bench:run",
    "route": "polewatch.roads.bench:run",
    "archive": "archiver.bench:run",
    "map": "gateway.console.mapbench:run",
    "fleet": "gateway.fleetbench:run",
    "instructions": "dispatcher.instructions:run",
    # "name": "module:function",
}
"""``polewatch bench NAME`` -> ``module:function``; the function takes the parsed args and
returns a JSON-ready dict."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polewatch",
        description="Streetlight-pole and video alarm dispatch on Redis.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _register_bench(sub)
    return parser


def _register_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="run a benchmark and print JSON")
    bench.add_argument("name", choices=[*sorted(BENCHES), "all"], help="which benchmark")
    bench.add_argument("--json", action="store_true", help="JSON only (the default output)")
    bench.add_argument("--redis-url", help="use this Redis instead of a private one")
    bench.add_argument("--quick", action="store_true", help="a short run, for smoke tests")
    fleet = bench.add_argument_group("fleet", "polewatch bench fleet only")
    fleet.add_argument("--sockets", type=int, help="patrol WebSockets to open (10000)")
    fleet.add_argument("--period", type=float, help="seconds between a unit's positions (5)")
    fleet.add_argument("--rate", type=float, help="dispatches pushed per second (100)")
    fleet.add_argument("--seconds", type=float, help="length of the measured window (20)")
    counted = bench.add_argument_group("instructions", "polewatch bench instructions only")
    counted.add_argument(
        "--profiles", type=Path, metavar="DIR", help="keep the callgrind profiles in DIR"
    )
    bench.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    import json

    names = sorted(BENCHES) if args.name == "all" else [args.name]
    results = {}
    for name in names:
        module, func = BENCHES[name].split(":")
        results[name] = getattr(importlib.import_module(module), func)(args)
    out = results if args.name == "all" else results[args.name]
    print(json.dumps(out, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
