"""Installs the command centre and the patrol app into the gateway application."""

from __future__ import annotations

from aiohttp import web

from gateway.console import accounts, cameras, language, live, mapdata, pages, reports


def install(app: web.Application) -> None:
    """Add the console's routes and its live feed (after the gateway's own resources)."""
    for table in (pages.routes, accounts.routes, live.routes, mapdata.routes, cameras.routes,
                  reports.routes, language.routes):  # fmt: skip
        app.add_routes(table)
    app.cleanup_ctx.append(live.feed_context)
    app.on_shutdown.insert(0, live.close_feed)
