"""``polewatch loadtest``: start the system if needed, run locust headless, judge the result.

Roles (``--role``): ``run`` (the default) does everything on this machine, with ``--workers``
local worker processes; ``master`` and ``worker`` run one locust process each (docker-compose
uses them); ``tokens`` mints the patrol units' tokens file a deployment's workers read.
The system is started like ``polewatch demo`` does (embedded Redis, or with ``--cluster N`` a
Redis Cluster of N masters zoned by district; the city, dispatcher replicas, the gateway)
unless ``--host`` names a running gateway. The Redis settings (``REDIS_URL``,
``POLEWATCH_REDIS_CLUSTER``, ``POLEWATCH_ZONES``) reach the locust processes as
``--pw-redis-url``, ``--pw-redis-cluster`` and ``--pw-zones``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from simulators.system import Processes, Store, masters_arg

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
TOKENS = "units.tokens"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "loadtest",
        help="run the locust load test (starts the system if needed) and check thresholds",
        description="Runs locust headless against the gateway and Redis for --duration "
        "seconds with the given user mix, writes CSV and HTML reports to --out and exits 1 "
        "when a threshold is missed.",
    )
    p.add_argument("--users", type=int, default=50, help="simulated clients (default 50)")
    p.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument(
        "--mix",
        default="citizen=4,patrol=6,edge=2,viewer=1",
        help="user weights: citizen=..,patrol=..,edge=..,viewer=..",
    )
    p.add_argument("--max-fail-ratio", type=float, default=0.01, help="default 0.01")
    p.add_argument("--max-p99-ms", type=float, help="p99 alarm->dispatch limit (ms)")
    p.add_argument("--min-rps", type=float, help="minimum requests per second")
    p.add_argument("--workers", type=int, default=0, help="distributed: N worker processes")
    p.add_argument("--out", type=Path, default=Path(".run/loadtest"), help="report folder")
    p.add_argument("--host", help="a running gateway (default: start the system)")
    p.add_argument("--dispatchers", type=int, default=2, help="replicas started (default 2)")
    p.add_argument("--poles", type=int, default=20_000, help="poles of a new city")
    p.add_argument(
        "--cluster",
        type=masters_arg,
        default=0,
        metavar="N",
        help="start a private Redis Cluster of N masters, zones the districts (default 0)",
    )
    p.add_argument("--role", choices=["run", "master", "worker", "tokens"], default="run")
    p.add_argument("--master-host", default="127.0.0.1", help="worker role: the master")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--tokens", type=Path, help="units tokens file (default OUT/units.tokens)")
    p.set_defaults(func=_main)


def _settings() -> Any:
    from polewatch.settings import Settings, load

    class LoadtestSettings(Settings, frozen=True, kw_only=True):
        redis_url: str = ""
        """Empty: start a private redis-server (with ``--host`` this must be set)."""
        secret: str = ""
        """The gateway's token secret, to mint unit and operator tokens (POLEWATCH_SECRET)."""

    return load(LoadtestSettings, section="loadtest")


def _main(args: argparse.Namespace) -> int:
    from loadtest.population import PopulationError, parse_mix

    try:
        parse_mix(args.mix)
    except PopulationError as exc:
        print(f"polewatch loadtest: {exc}", file=sys.stderr)
        return 2
    settings = _settings()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.role == "tokens":
        _mint_files(args, settings.secret, dict(os.environ), _units_needed(args))
        return 0
    if args.role in ("run", "master"):
        for old in args.out.glob("stats_*.csv"):  # never judge an earlier run's figures
            old.unlink()
    if args.role == "worker":
        os.execv(sys.executable, [sys.executable, "-m", "locust", *_locust_args(args, settings)])
    if args.role == "master":
        from polewatch.embedded import die_with_parent

        # A child, not exec: the verdict is judged from its statistics when it ends.
        subprocess.run(
            [sys.executable, "-m", "locust", *_locust_args(args, settings)],
            preexec_fn=die_with_parent,
            check=False,
        )
        return _verdict(args, args.out / "master.log")
    return _run(args, settings)


def _locust_args(args: argparse.Namespace, settings: Any) -> list[str]:
    tokens = args.tokens or args.out / TOKENS
    operator = args.out / "operator.token"
    common = [
        "-f",
        str(LOCUSTFILE),
        "--skip-log-setup",
        "--pw-redis-url",
        settings.redis_url or "redis://127.0.0.1:6379/0",
        "--pw-zones",
        settings.zones,
        "--pw-city",
        settings.city,
        "--pw-mix",
        args.mix,
        "--pw-tokens",
        str(tokens),  # read when the first user starts: the files may be minted meanwhile
        "--pw-operator-token-file",
        str(operator),
        "--pw-workers",
        str(max(args.workers, 1)),
    ]
    if settings.redis_cluster:
        common.append("--pw-redis-cluster")
    from loadtest.population import CLASS_OF, parse_mix

    common += [CLASS_OF[name] for name, weight in parse_mix(args.mix).items() if weight > 0]
    if args.role == "worker":
        return [
            *common,
            "--worker",
            "--master-host",
            args.master_host,
            "--master-port",
            str(args.master_port),
        ]
    master = [
        *common,
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{int(args.duration)}s",
        "--host",
        args.host or "http://127.0.0.1:8080",
        "--csv",
        str(args.out / "stats"),
        "--html",
        str(args.out / "report.html"),
        "--only-summary",
        "--stop-timeout",
        "3",
        "--exit-code-on-error",
        "0",
    ]
    if args.workers:
        master += [
            "--master",
            "--expect-workers",
            str(args.workers),
            "--expect-workers-max-wait",
            "60",
            "--master-bind-port",
            str(args.master_port),
        ]
    return master


def _units_needed(args: argparse.Namespace) -> int:
    """Unit tokens to mint: locust may give any one worker all the patrol users, so each
    worker gets a full share of its own (see ``Shared.load``)."""
    from loadtest.population import parse_mix, patrol_share

    workers: int = max(args.workers, 1)
    return patrol_share(parse_mix(args.mix), args.users) * workers


def _mint(secret: str, env: dict[str, str], kind: str, subjects: list[str]) -> list[str]:
    """Tokens from the gateway's own ``polewatch token`` command (one call for all)."""
    out = subprocess.run(
        [sys.executable, "-m", "polewatch.cli", "token", kind, *subjects],
        env={**env, "POLEWATCH_SECRET": secret},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"polewatch loadtest: minting tokens failed: {out.stderr.strip()}")
    return out.stdout.split()


def _mint_files(args: argparse.Namespace, secret: str, env: dict[str, str], units: int) -> None:
    tag = secrets.token_hex(3)
    ids = [f"LT{tag}-{n:05d}" for n in range(1, units + 1)]
    tokens = _mint(secret, env, "unit", ids) if ids else []
    path = args.tokens or args.out / TOKENS
    path.write_text("".join(f"{u} {t}\n" for u, t in zip(ids, tokens, strict=True)))
    (args.out / "operator.token").write_text(_mint(secret, env, "operator", ["loadtest"])[0])


def _run(args: argparse.Namespace, settings: Any) -> int:
    from polewatch.embedded import EmbeddedCluster, EmbeddedRedis, free_port
    from polewatch.settings import SettingsError
    from simulators.system import PIDS, start_private, zones_for

    try:
        zones = zones_for(settings, args.cluster)
    except SettingsError as exc:
        print(f"polewatch loadtest: {exc}", file=sys.stderr)
        return 2
    run_dir = args.out / "system"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PIDS).write_text("")
    server: EmbeddedRedis | EmbeddedCluster | None = None
    if settings.redis_url:
        store = Store(settings.redis_url, cluster=settings.redis_cluster, zones=zones)
    else:
        if args.host:
            raise SystemExit("polewatch loadtest: with --host, set REDIS_URL of that system")
        store, server = start_private(run_dir, masters=args.cluster, zones=zones)
    secret = settings.secret or secrets.token_urlsafe(24)
    env = dict(
        os.environ,
        **store.env(),
        POLEWATCH_SECRET=secret,
        POLEWATCH_CITY=settings.city,
        POLEWATCH_RATELIMIT_ENABLED="false",
    )
    procs = Processes(run_dir, env)
    started = time.monotonic()
    try:
        if args.host is None:
            _ensure_city(procs, store, settings.city, args.poles)
            port = free_port()
            for n in range(args.dispatchers):
                procs.start(f"dispatcher-{n + 1}", "dispatcher", "--consumer", f"lt-{n + 1}")
            procs.start("gateway", "gateway", "--host", "127.0.0.1", "--port", str(port))
            args.host = f"http://127.0.0.1:{port}"
            _wait_http(f"{args.host}/api/openapi.json", procs)
        _mint_files(args, secret, env, _units_needed(args))
        print(
            f"polewatch loadtest: system ready in {time.monotonic() - started:.1f} s; "
            f"{args.users} users for {args.duration:.0f} s against {args.host}",
            flush=True,
        )
        args.master_port = free_port()
        master = procs.start("locust-master", *_role_argv(args, "master"))
        for n in range(args.workers):
            procs.start(f"locust-worker-{n + 1}", *_role_argv(args, "worker"))
        master.wait(timeout=args.duration + 120)
    finally:
        procs.stop()
        if server is not None:
            server.stop()
    return _verdict(args, run_dir / "locust-master.log")


def _verdict(args: argparse.Namespace, log: Path) -> int:
    """Judge the run from its CSV statistics; 0 passed, 1 a threshold missed, 2 no figures."""
    from loadtest.thresholds import Thresholds, judge

    stats = args.out / "stats_stats.csv"
    if not stats.exists():
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        print(f"polewatch loadtest: locust wrote no statistics:\n{tail}", file=sys.stderr)
        return 2
    verdict = judge(stats, Thresholds(args.max_fail_ratio, args.max_p99_ms, args.min_rps))
    summary = verdict.as_dict()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    for missed in verdict.missed:
        print(f"polewatch loadtest: threshold missed: {missed}", file=sys.stderr)
    return 0 if verdict.passed else 1


def _role_argv(args: argparse.Namespace, role: str) -> list[str]:
    argv = [
        "loadtest",
        "--role",
        role,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--duration",
        str(args.duration),
        "--mix",
        args.mix,
        "--workers",
        str(args.workers),
        "--out",
        str(args.out),
        "--host",
        args.host,
        "--master-port",
        str(args.master_port),
    ]
    if args.tokens:
        argv += ["--tokens", str(args.tokens)]
    for option in ("max_fail_ratio", "max_p99_ms", "min_rps"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return argv


def _ensure_city(procs: Processes, store: Store, city: str, poles: int) -> None:
    from polewatch import keys

    client = store.sync_client("loadtest")
    try:
        if client.hlen(keys.poles(city)):
            return
    finally:
        client.close()
    proc = procs.start(
        "city", "poles", "generate", "--city", city, "--count", str(poles), "--redis-url",
        store.url,
    )  # fmt: skip
    if proc.wait(timeout=300) != 0:
        raise SystemExit("polewatch loadtest: generating the city failed (see city.log)")
    procs.children.remove(("city", proc))


def _wait_http(url: str, procs: Any, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        procs.check()
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {within_s:.0f} s")
        time.sleep(0.2)
