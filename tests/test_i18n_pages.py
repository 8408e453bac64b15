"""Chinese first, in a real browser: the citizen pole page, the patrol app and the command
centre open in Chinese for a zh-CN browser and in English for an en-US one, each with a visible
switch that sticks, times in the city's time zone, and no request leaving the origin.

Set ``POLEWATCH_SCREENSHOTS=docs/screenshots`` to keep a screenshot of each page and language
(the README shows the Chinese citizen page)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import launch
from playwright.async_api import Browser, Page, async_playwright, expect

from analytics.simulation import known_week, write_incidents
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import TEST_POLES, gateway_client, store_poles, unit_token

POLE = TEST_POLES[0]
PASSWORD = "shenzhen-night-shift"
CONSOLE = ConsoleSettings(
    users={"ada": Account(role="supervisor", password=hash_password(PASSWORD))}
)
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")
LOCALES = {"zh-CN": "zh-CN", "en-US": "en"}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url, console=CONSOLE) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await launch(pw, webgl=True)
        yield browser
        await browser.close()


async def open_page(
    browser: Browser, locale: str, url: str, **options: Any
) -> tuple[Page, list[str]]:
    context = await browser.new_context(locale=locale, timezone_id="UTC", **options)
    page = await context.new_page()
    problems: list[str] = []
    origin = re.match(r"https?://[^/]+", url)
    assert origin
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith((origin[0], "data:", "blob:"))
            else problems.append(f"left the origin: {r.url}"))  # fmt: skip
    await page.goto(url)
    return page, problems


async def shot(page: Page, name: str) -> None:
    if SHOTS:  # playwright creates the folder
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.mark.parametrize("locale", LOCALES)
async def test_citizen_page_speaks_the_browsers_language_and_switches(
    client: TestClient[Any, Any], browser: Browser, locale: str
) -> None:
    url = str(client.make_url(f"/p/{POLE.code}"))
    page, problems = await open_page(browser, locale, url, viewport={"width": 390, "height": 844})
    chinese = LOCALES[locale] == "zh-CN"
    await expect(page.locator("html")).to_have_attribute("lang", LOCALES[locale])
    await expect(page.locator("#help")).to_have_text("求助" if chinese else "Help")
    await expect(page).to_have_title(f"{POLE.code} 号杆 · 一键求助" if chinese
                                     else f"Help at pole {POLE.code}")  # fmt: skip
    await shot(page, f"citizen-page-{'zh' if chinese else 'en'}")
    # the visible switch: the other language, remembered for the next page
    await page.get_by_role("link", name="English" if chinese else "中文").click()
    await expect(page.locator("#help")).to_have_text("Help" if chinese else "求助")
    await page.goto(url)
    await expect(page.locator("#help")).to_have_text("Help" if chinese else "求助")
    await page.locator("#help").click()  # in the language switched to
    await expect(page.locator("#status")).to_have_text(
        "Your call for help was received." if chinese else "您的求助已收到。"
    )
    assert not problems, problems


@pytest.mark.parametrize("locale", LOCALES)
async def test_patrol_app_in_both_languages(
    client: TestClient[Any, Any], browser: Browser, locale: str
) -> None:
    url = str(client.make_url(f"/patrol/?token={unit_token('U1')}"))
    page, problems = await open_page(
        browser, locale, url, viewport={"width": 390, "height": 844}, device_scale_factor=2,
        permissions=["geolocation"], geolocation={"latitude": POLE.lat, "longitude": POLE.lon},
    )  # fmt: skip
    chinese = LOCALES[locale] == "zh-CN"
    await page.wait_for_selector("#link.up")
    await expect(page.locator("#link")).to_have_text("在线" if chinese else "online")
    await expect(page.locator("#duty")).to_have_text("上岗" if chinese else "Go on duty")
    await page.locator("#duty").click()
    await expect(page.locator("#duty")).to_have_text("在岗中" if chinese else "On duty")
    await expect(page.locator("#log li").first).to_contain_text("已上岗" if chinese else "on duty")
    await shot(page, f"patrol-app-{'zh' if chinese else 'en'}")
    await page.locator("#patrol select.lang-switch").select_option("en" if chinese else "zh-CN")
    await expect(page.locator("#duty")).to_have_text("On duty" if chinese else "在岗中")
    assert not problems, problems


@pytest.mark.parametrize("locale", LOCALES)
async def test_console_in_both_languages_with_city_time(
    client: TestClient[Any, Any], browser: Browser, locale: str
) -> None:
    url = str(client.make_url("/console/"))
    page, problems = await open_page(browser, locale, url, viewport={"width": 1440, "height": 860})
    chinese = LOCALES[locale] == "zh-CN"
    await expect(page.locator("#login-submit")).to_have_text("登录" if chinese else "Sign in")
    await page.fill("#login-name", "ada")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#conn.live", timeout=15_000)
    await expect(page.locator("#conn")).to_have_text("实时" if chinese else "live")
    await expect(page.locator("#who")).to_have_text(
        "ada · 值班长" if chinese else "ada · supervisor"
    )
    await expect(page.locator("[data-view=ops]")).to_have_text(
        "实时指挥" if chinese else "Operations"
    )
    await expect(page.locator("#queue")).to_have_text(
        "暂无未结警情" if chinese else "No open incidents"
    )
    # the browser runs in UTC; the clock shows Shenzhen time (UTC+8)
    await expect(page.locator("#clock")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    clock = await page.inner_text("#clock")
    utc_hour = int(await page.evaluate("new Date().getUTCHours()"))
    assert int(clock[:2]) in ((utc_hour + 8) % 24, (utc_hour + 9) % 24), clock
    await page.fill("#call-code", POLE.code)
    await page.click("#call-form button[type=submit]")
    await expect(page.locator("#call-raise")).to_have_text("立案" if chinese else "Raise incident")
    await shot(page, f"console-{'zh' if chinese else 'en'}")
    assert not problems, problems


async def test_console_analytics_names_districts_in_chinese(
    client: TestClient[Any, Any], browser: Browser, aredis: aioredis.Redis
) -> None:
    await write_incidents(aredis, known_week(time.time() - 8 * 86_400))
    url = str(client.make_url("/console/"))
    page, problems = await open_page(browser, "zh-CN", url, viewport={"width": 1440, "height": 900})
    await page.fill("#login-name", "ada")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.click("[data-view=analytics]")
    by_district = page.locator(".chart", has_text="按辖区")
    await expect(by_district.locator("svg text").first).to_have_text(re.compile("福田区|罗湖区"))
    await shot(page, "console-analytics-zh")
    assert not problems, problems
