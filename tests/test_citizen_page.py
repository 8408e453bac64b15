"""The pole's help page in a real browser (headless Chromium): the place, the Help button, and
the live status as the incident moves on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import launch
from playwright.async_api import Browser, async_playwright, expect

from gateway.testing import TEST_POLES, gateway_client, store_poles, write_incident
from polewatch import keys, wire

POLE = TEST_POLES[0]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await launch(pw)
        yield browser
        await browser.close()


async def test_help_button_raises_the_alarm_and_the_page_follows_it(
    client: TestClient[Any, Any], browser: Browser, aredis: aioredis.Redis
) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(str(client.make_url(f"/p/{POLE.code}")))
    await expect(page.locator("#code")).to_have_text(POLE.code)
    await expect(page.locator("#place")).to_have_text("Keyuan Rd, Nanshan")

    await page.locator("#help").click()
    await expect(page.locator("#status")).to_have_text("Your call for help was received.")
    await expect(page.locator("#help")).to_be_disabled()
    (entry,) = await aredis.xrange(keys.ALARMS)
    alarm = wire.decode_entry(entry[1], wire.Alarm)
    assert alarm.pole == POLE.code and alarm.source == "gateway:citizen"

    await aredis.hset(keys.unit("U1"), mapping={"id": "U1", "lon": POLE.lon, "lat": 22.53})
    await write_incident(aredis, alarm.id, "dispatched", units="U1")
    await expect(page.locator("#status")).to_have_text("A patrol unit has been dispatched.")
    await expect(page.locator("#detail")).to_have_text("Unit U1: 1.1 km away, about 2 min")
    await write_incident(aredis, alarm.id, "on_scene", units="U1")
    await expect(page.locator("#status")).to_have_text("The patrol unit is at the pole.")
    await write_incident(aredis, alarm.id, "resolved", units="U1")
    await expect(page.locator("#status")).to_have_text("The incident is resolved.")
    await expect(page.locator("#help")).to_be_enabled()
    assert errors == []  # no script errors, no CSP violations


async def test_unknown_code_page_offers_the_poles_that_were_meant(
    client: TestClient[Any, Any], browser: Browser
) -> None:
    page = await browser.new_page()
    response = await page.goto(str(client.make_url("/p/3101202")))
    assert response is not None and response.status == 404
    links = page.locator("#cands a")
    await expect(links).to_have_count(2)
    await links.first.click()
    await expect(page.locator("#help")).to_be_visible()
    assert page.url.endswith("/p/3101201") or page.url.endswith("/p/3101203")
