"""Errors that say what to do, in the reader's language: the call-taker told that nothing reads
like the code heard (not "did the caller mean:" over an empty list), that a typed code is not a
code (not the gateway's regular expression) and that the caller's position was not understood
(not the API's English), an officer whose token is refused told to ask for a new one (not
"invalid token"), a citizen whose call for help did not go out told to press again or call 110
(not the browser's "Failed to fetch"). Chromium in zh-CN and en-US against the real gateway.
``POLEWATCH_SCREENSHOTS=docs/screenshots`` keeps ``console-call-error-{zh,en}.png`` and
``citizen-not-sent-{zh,en}.png``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp.test_utils import TestClient
from browser import needs_chromium, signed_in
from playwright.async_api import Route, expect
from test_i18n_pages import POLE, browser, client  # noqa: F401

from polewatch import i18n

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = needs_chromium
LANGUAGES = {"zh-CN": "zh-CN", "en-US": "en"}
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")


async def consoles(
    gateway_client: TestClient[Any, Any], chromium: Browser
) -> AsyncIterator[tuple[Page, str]]:
    """The command centre, signed in, once per browser language (with the catalogue's)."""
    gateway = str(gateway_client.make_url("/")).rstrip("/")
    for locale, language in LANGUAGES.items():
        page = await (await chromium.new_context(locale=locale)).new_page()
        await signed_in(page, gateway)
        yield page, language
        await page.context.close()


async def test_the_call_taker_is_told_what_to_do_next(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    async for page, language in consoles(client, browser):
        result = page.locator("#call-result")
        for code, key in (("QQQ", "console.no_pole_none"), ("a<b>", "call.code_invalid")):
            await page.fill("#call-code", code)
            await page.click("#call-form button[type=submit]")
            await expect(result).to_have_text(i18n.translate(key, language, code=code))
        await page.fill("#call-where", "somewhere over there")
        await page.fill("#call-code", POLE.code)
        await page.click("#call-form button[type=submit]")
        await expect(result).to_have_text(i18n.translate("call.where_invalid", language))
        if SHOTS:
            await page.locator("#call").screenshot(
                path=f"{SHOTS}/console-call-error-{language[:2]}.png"
            )
        await page.fill("#call-where", "")  # and without it the pole is found
        await page.click("#call-form button[type=submit]")
        await expect(page.locator("#call-raise")).to_be_visible()


async def test_a_refused_token_tells_the_officer_what_to_do(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    for locale, language in LANGUAGES.items():
        context = await browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(str(client.make_url("/patrol/?token=not.a-token")))
        await expect(page.locator("#signin-error")).to_have_text(
            i18n.translate("patrol.token_refused", language)
        )
        await expect(page.locator("#signin")).to_be_visible()
        await context.close()


async def test_a_call_for_help_that_did_not_go_out_says_what_to_do(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    async def refused(route: Route) -> None:  # the gateway's own refusal, in English
        await route.fulfill(status=429, json={"error": "too many requests; retry in 30 s"})

    for locale, language in LANGUAGES.items():
        context = await browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
        page = await context.new_page()
        said = i18n.translate("citizen.send_failed", language)
        for failure in ("no network", "refused"):
            await page.unroute("**/api/alarms")
            if failure == "no network":
                await page.route("**/api/alarms", lambda route: route.abort("internetdisconnected"))
            else:
                await page.route("**/api/alarms", refused)
            await page.goto(str(client.make_url(f"/p/{POLE.code}")))
            await expect(page.locator("#status")).to_have_text(
                i18n.translate("citizen.prompt", language)
            )
            await page.click("#help")
            await expect(page.locator("#status")).to_have_text(said)
            text = await page.inner_text("#status")
            assert "fetch" not in text and "too many" not in text, text
            await expect(page.locator("#help")).to_be_enabled()  # pressed again, it tries again
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/citizen-not-sent-{locale[:2]}.png")
        await context.close()


async def test_a_server_out_of_reach_is_said_in_the_readers_language(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    async for page, language in consoles(client, browser):
        await page.route("**/api/poles/**", lambda route: route.abort("internetdisconnected"))
        await page.route("**/api/console/history**", lambda route: route.fulfill(status=502))
        await page.fill("#call-code", POLE.code)
        await page.click("#call-form button[type=submit]")
        # not the browser's "Failed to fetch", nor a bare "HTTP 502"
        await expect(page.locator("#call-result")).to_have_text(
            i18n.translate("common.unreachable", language)
        )
        await page.click("#history-form button[type=submit]")
        await expect(page.locator("#history-list li.error")).to_have_text(
            i18n.translate("common.http_error", language, status=502)
        )
