"""An incident a unit resolved waits for an operator to close it with an evaluation. It leaves
the open queue, so the console keeps a "to close" list (the zone's ``resolved`` index, kept by
the dispatcher's Function), the API lists it (``state=resolved``), and closing it takes it off.
Real Redis, real dispatcher and gateway, real Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from browser import ARTIFACTS, console_page, launch, needs_chromium
from test_console import sse_event

from dispatcher import scenario as sc
from dispatcher.scenario import step
from gateway.testing import bearer, gateway_client, operator_token, served_gateway, store_poles
from polewatch import keys

LON, LAT = 114.05, 22.55
DESK = bearer(operator_token("ada"))


async def resolved_city(redis_url: str, client: redis.Redis) -> None:
    """Incident 1 resolved by unit ``near``; incident 2 still open with unit ``next``."""
    sc.units_east(client, LON, LAT, {"near": 200, "next": 5000})
    await step(redis_url, client, sc.alarm(LON, LAT))
    await step(redis_url, client, sc.status("near", "1", "resolved", detail="settled"))
    await step(redis_url, client, sc.alarm(LON + 0.05, LAT))


async def test_the_api_and_the_picture_list_what_waits_to_be_closed(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await store_poles(redis_url)
    await resolved_city(redis_url, sync_redis)
    async with gateway_client(redis_url) as client:
        listed = await (await client.get("/api/incidents?state=resolved", headers=DESK)).json()
        assert [(i["id"], i["state"]) for i in listed["incidents"]] == [("1", "resolved")]
        opened = await (await client.get("/api/incidents", headers=DESK)).json()
        assert [i["id"] for i in opened["incidents"]] == ["2"]

        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(live, "picture")
        assert [i["id"] for i in picture["resolved"]] == ["1"]
        assert [i["id"] for i in picture["incidents"]] == ["2"]

        await step(redis_url, sync_redis, sc.command("close", "1", evaluation=5, actor="ada"))
        listed = await (await client.get("/api/incidents?state=resolved", headers=DESK)).json()
        assert listed["incidents"] == []
    assert sync_redis.zcard(keys.RESOLVED) == 0


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[str]:
    await store_poles(redis_url)
    async with served_gateway(redis_url) as (host, port):
        yield f"http://{host}:{port}"


@needs_chromium
@pytest.mark.parametrize(("locale", "heading"), [("zh-CN", "待结案"), ("en-US", "To close")])
async def test_the_console_lists_it_until_the_operator_closes_it(
    gateway: str, redis_url: str, sync_redis: redis.Redis, locale: str, heading: str
) -> None:
    from playwright.async_api import async_playwright, expect

    await resolved_city(redis_url, sync_redis)
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            page = await console_page(browser, gateway, locale)
            panel = page.locator("#to-close")
            await expect(panel).to_be_visible()
            await expect(panel.locator("h2")).to_contain_text(heading)
            await expect(page.locator("#to-close-count")).to_have_text("1")
            await expect(panel.locator("li[data-id='1']")).to_contain_text("near")
            await expect(page.locator("#queue li.q")).to_have_count(1)  # incident 2, open
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"console-to-close-{locale}.png"))

            await panel.locator("li[data-id='1']").click()
            await page.select_option("#evaluation", "4")
            await page.click("#do-close")
            await expect(page.locator("#notices li.ok")).to_contain_text("#1")  # sent
            await step(redis_url, sync_redis)  # the dispatcher carries out the close
            await expect(panel).to_be_hidden()
        finally:
            await browser.close()
    assert sc.incident(sync_redis).evaluation == 4
