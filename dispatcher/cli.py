"""``polewatch dispatcher``: run one dispatcher replica."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch.settings import SettingsError, load

log = logging.getLogger("polewatch.dispatcher")


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


async def serve(settings: DispatcherSettings, *, burst: bool = False) -> Dispatcher:
    """Run a replica with SIGTERM/SIGINT handled (finish the batch in flight, then stop)."""
    dispatcher = Dispatcher(settings, burst=burst)
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(dispatcher.run())

    def on_signal() -> None:
        dispatcher.stop()
        # Bounded: a batch stuck on an unreachable Redis must not hold the replica forever.
        loop.call_later(settings.shutdown_grace_s, running.cancel)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    close_metrics = (
        dispatcher.metrics.serve(settings.metrics_port, settings.metrics_addr)
        if settings.metrics_port
        else None
    )
    log.info("dispatcher %s starting (burst=%s)", dispatcher.consumer, burst)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await running
        if running.cancelled():
            log.warning("dispatcher %s stopped after the %.0f s grace period", dispatcher.consumer,
                        settings.shutdown_grace_s)  # fmt: skip
    finally:
        if close_metrics:
            close_metrics()
    log.info("dispatcher %s stopped: %s", dispatcher.consumer, dict(dispatcher.totals))
    return dispatcher
