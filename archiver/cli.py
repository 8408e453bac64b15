"""``polewatch archiver``: run the archiver (or only migrate the archive's schema)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from archiver.settings import ArchiverSettings
from polewatch.settings import SettingsError, load


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "archiver", help="archive closed incidents in PostgreSQL; Redis keeps a retention window"
    )
    parser.add_argument("--burst", action="store_true", help="drain the audit streams, then exit")
    parser.add_argument("--migrate-only", action="store_true", help="apply the schema and exit")
    parser.add_argument("--consumer", help="consumer name (unique per replica)")
    parser.add_argument("--config", help="settings file (TOML, [archiver] section)")
    parser.add_argument("--redis-url", help="Redis URL (overrides settings)")
    parser.add_argument("--database-url", help="PostgreSQL URL (overrides DATABASE_URL)")
    parser.set_defaults(func=_run)


def settings_from(args: argparse.Namespace) -> ArchiverSettings:
    """The archiver's settings; exits naming the key when one is missing or invalid."""
    overrides = {
        key: value
        for key, value in (
            ("consumer", args.consumer),
            ("redis_url", args.redis_url),
            ("database_url", args.database_url),
        )
        if value
    }
    try:
        settings = load(
            ArchiverSettings, section="archiver", config_file=args.config, overrides=overrides
        )
    except SettingsError as exc:
        raise SystemExit(f"polewatch archiver: {exc}") from None
    if not settings.database_url:
        raise SystemExit(
            "polewatch archiver: setting 'database_url' is missing: set DATABASE_URL "
            "(postgresql://user@host:port/database)"
        )
    return settings


def _run(args: argparse.Namespace) -> int:
    from archiver.service import migrate, serve

    settings = settings_from(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.migrate_only:
        applied = asyncio.run(migrate(settings.database_url))
        print(f"applied migrations: {applied or 'none (up to date)'}")
        return 0
    asyncio.run(serve(settings, burst=args.burst))
    return 0
