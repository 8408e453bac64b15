"""``polewatch dispatcher``: run one dispatcher replica."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from dispatcher.service import serve
from dispatcher.settings import DispatcherSettings
from polewatch.settings import SettingsError, load


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dispatcher", help="run a dispatcher replica (alarms -> incidents -> nearest unit)"
    )
    parser.add_argument("--burst", action="store_true", help="drain the streams, then exit")
    parser.add_argument("--consumer", help="consumer name (unique per replica)")
    parser.add_argument("--config", help="settings file (TOML, [dispatcher] section)")
    parser.add_argument("--redis-url", help="Redis URL (overrides settings)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {}
    if args.consumer:
        overrides["consumer"] = args.consumer
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    try:
        settings = load(
            DispatcherSettings, section="dispatcher", config_file=args.config, overrides=overrides
        )
    except SettingsError as exc:
        raise SystemExit(f"polewatch dispatcher: {exc}") from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings, burst=args.burst))
    return 0
