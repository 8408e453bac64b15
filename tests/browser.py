"""Headless Chromium for the page tests: Debian's ``/usr/bin/chromium`` driven by Playwright
(never ``playwright install``), launched with the same arguments by every module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.testing import operator_token

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright
    from playwright.sync_api import Browser as SyncBrowser
    from playwright.sync_api import Playwright as SyncPlaywright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run")  # fmt: skip
WEBGL = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")
"""WebGL drawn on the CPU (SwiftShader): the street map needs it, no GPU is lent."""

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
"""Where page tests leave screenshots for people to look at."""

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed")


def arguments(*extra: str, webgl: bool = False) -> list[str]:
    return [*ARGS, *(WEBGL if webgl else ()), *extra]


async def launch(playwright: Playwright, *extra: str, webgl: bool = False) -> Browser:
    """Chromium, headless, with the house arguments (plus ``extra``; SwiftShader if ``webgl``)."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=arguments(*extra, webgl=webgl)
    )


def launch_sync(playwright: SyncPlaywright, *extra: str, webgl: bool = False) -> SyncBrowser:
    """:func:`launch` for Playwright's synchronous API."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=arguments(*extra, webgl=webgl)
    )


async def console_page(browser: Browser, gateway: str, locale: str) -> Any:
    """A new desktop-sized page in ``locale`` on the command centre, signed in as ``ada``."""
    context = await browser.new_context(locale=locale, viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await signed_in(page, gateway)
    return page


async def signed_in(page: Any, gateway: str) -> None:
    """The command centre, signed in with an operator's token (as the token login keeps it)."""
    session = {"login": "ada", "role": "operator", "token": operator_token("ada")}
    await page.add_init_script(
        f"sessionStorage.setItem('pw.console.session', {json.dumps(json.dumps(session))})"
    )
    await page.goto(f"{gateway}/console/")
