"""``polewatch gateway`` (serve the HTTP/WebSocket front door) and ``polewatch token`` (mint
access tokens for units and operators)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from polewatch import logs
from polewatch.settings import SettingsError, load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("gateway", help="serve the citizen, patrol and operator HTTP API")
    serve.add_argument("--host", help="listen address (default: setting 'host')")
    serve.add_argument("--port", type=int, help="listen port (default: setting 'port')")
    serve.add_argument("--config", help="TOML config file (default: $POLEWATCH_CONFIG)")
    serve.add_argument(
        "--processes",
        type=int,
        help="gateway processes sharing the port with SO_REUSEPORT (default: setting "
        "'processes', 1); the kernel spreads connections over them",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="mint an access token for a patrol unit or an operator")
    token.add_argument("kind", choices=["unit", "operator"], help="who the token is for")
    token.add_argument(
        "subject", nargs="+", help="the unit id (U1) or the operator's login; several: one a line"
    )
    token.add_argument(
        "--role",
        choices=["operator", "supervisor"],
        help="operator tokens only: the role (default operator)",
    )
    token.add_argument("--ttl", type=float, help="lifetime in seconds (default: the settings')")
    token.add_argument("--config", help="TOML config file (default: $POLEWATCH_CONFIG)")
    token.set_defaults(func=_token)


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from gateway.settings import GatewaySettings, check

    try:
        return check(
            load(
                GatewaySettings,
                section="gateway",
                config_file=args.config,
                overrides={k: v for k, v in overrides.items() if v is not None},
            )
        )
    except SettingsError as exc:
        print(f"polewatch: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.processes import raise_fd_limit

    settings = _settings(args, host=args.host, port=args.port, processes=args.processes)
    logs.setup("gateway", settings.log_level)
    raise_fd_limit()  # one descriptor per unit's socket
    if settings.processes > 1 and not args.reuse_port:
        from gateway.processes import supervise

        argv = ["gateway", "--host", settings.host, "--port", str(settings.port), "--reuse-port"]
        argv += ["--config", args.config] if args.config else []
        return supervise(argv, settings.processes, settings.shutdown_grace_s + 5)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_grace_s,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.auth import mint

    settings = _settings(args)
    if args.kind == "unit":
        if args.role:
            print("polewatch: --role is for operator tokens", file=sys.stderr)
            return 2
        role, ttl = "unit", settings.unit_token_ttl_s
    else:
        role, ttl = args.role or "operator", settings.operator_token_ttl_s
    try:
        print("\n".join(mint(settings.secret, role, s, args.ttl or ttl) for s in args.subject))
    except ValueError as exc:
        print(f"polewatch: {exc}", file=sys.stderr)
        return 2
    return 0
