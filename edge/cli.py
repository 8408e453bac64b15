"""``polewatch edge ...``: the edge agents' commands (door, button; video registers its own).

Every edge agent module adds its subcommand under ``polewatch edge`` through
:func:`edge_subparsers`, which creates the ``edge`` command on first use, so the order of the
modules in ``polewatch.cli.COMMAND_MODULES`` does not matter.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec

from edge.spool import SpoolError
from polewatch import logs, settings

SPOOLS = "~/.local/state/polewatch/spool"
"""Where agents started from the command line keep their spool unless told otherwise."""


def edge_subparsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The ``polewatch edge`` command's subcommands (created if missing)."""
    parser = sub.choices.get("edge")
    if parser is None:
        parser = sub.add_parser("edge", help="edge agents (video, doors, pole buttons)")
        parser.add_subparsers(dest="edge_command", required=True, metavar="AGENT")
    assert parser._subparsers is not None
    for action in parser._subparsers._group_actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the edge command has no subcommands")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = edge_subparsers(sub)
    door = agents.add_parser("door", help="access-control agent: door events in, alarms out")
    door.add_argument("--config", required=True, help="doors and settings (TOML)")
    door.add_argument("--redis-url", help="Redis URL (overrides settings)")
    door.add_argument("--spool-dir", help=f"store-and-forward directory (default {SPOOLS}/NAME)")
    door.set_defaults(func=_door)

    button = agents.add_parser("button", help="a pole's alarm button: SOS in, feedback out")
    button.add_argument("--pole", required=True, help="the pole's code")
    button.add_argument("--config", help="polewatch settings file ([button] section)")
    button.add_argument("--redis-url", help="Redis URL (overrides settings)")
    button.add_argument("--http-port", type=int, help="serve POST /press and GET /status")
    button.add_argument("--stdin", action="store_true", help="Enter on stdin presses the button")
    button.add_argument(
        "--spool-dir", help=f"store-and-forward directory (default {SPOOLS}/button-CODE)"
    )
    button.set_defaults(func=_button)


def _door(args: argparse.Namespace) -> int:
    from edge.door import agent, config

    try:
        conf = config.load(args.config, **_url(args))
        if args.spool_dir or not conf.spool_dir:
            conf = msgspec.structs.replace(conf, spool_dir=args.spool_dir or _spool(conf.name))
    except settings.SettingsError as exc:
        print(f"polewatch edge door: {exc}", file=sys.stderr)
        return 2
    logs.setup(conf.name, conf.log_level)
    try:
        asyncio.run(agent.serve(conf))
    except (settings.SettingsError, SpoolError) as exc:
        print(f"polewatch edge door: {exc}", file=sys.stderr)
        return 2
    return 0


def _button(args: argparse.Namespace) -> int:
    from edge.button import ButtonSettings, serve

    overrides = {"pole": args.pole, **_url(args)}
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    if args.stdin:
        overrides["stdin"] = True
    try:
        conf = settings.load(
            ButtonSettings, section="button", config_file=args.config, overrides=overrides
        )
        if args.spool_dir or not conf.spool_dir:
            spool = args.spool_dir or _spool(f"button-{conf.pole}")
            conf = msgspec.structs.replace(conf, spool_dir=spool)
    except settings.SettingsError as exc:
        print(f"polewatch edge button: {exc}", file=sys.stderr)
        return 2
    logs.setup(f"button:{conf.pole}", conf.log_level)
    try:
        asyncio.run(serve(conf))
    except (settings.SettingsError, SpoolError) as exc:
        print(f"polewatch edge button: {exc}", file=sys.stderr)
        return 2
    return 0


def _spool(name: str) -> str:
    return str(Path(SPOOLS).expanduser() / name)


def _url(args: argparse.Namespace) -> dict[str, str]:
    return {"redis_url": args.redis_url} if args.redis_url else {}
