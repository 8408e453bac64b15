"""What an operator and an officer read around a dispatch, in their language: the console's map
labels an incident by its type's name (not the stored ``citizen_sos``), the timeline names the
dispatcher's own actions, the unit board names a unit's kit, the officer's phone gives the
bearing's compass point and logs an answer by its incident number; the analytics bars leave
room for their figures. Real dispatcher and gateway, Chromium in zh-CN and en-US.

The unit board's column heads fit on one line in Chinese.

``POLEWATCH_SCREENSHOTS=docs/screenshots`` keeps ``console-incident-{zh,en}.png``,
``patrol-job-{zh,en}.png`` (phone size) and ``console-analytics-{zh,en}.png``."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import needs_chromium
from test_console_workflow import until
from test_details_pages import FUTIAN, PASSWORD, client, incident_state  # noqa: F401
from test_i18n_pages import browser  # noqa: F401

from analytics.simulation import known_week, write_incidents
from gateway.testing import bearer, unit_token
from polewatch import keys

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = needs_chromium
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")
UNIT = {"lon": FUTIAN.lon + 0.003, "lat": FUTIAN.lat}
"""U1 and U2 stand east of the pole: the scene is due west of them."""
UNITS = ("U1", "U2")
READS = {
    "zh-CN": {"type": "群众求助", "actor": "自动调度", "kit": "巡逻，医疗救护", "west": "西",
              "acknowledged": "#{iid}：已接警", "en_route": "#{iid}：赶往现场"},
    "en-US": {"type": "citizen SOS", "actor": "dispatcher", "kit": "patrol, medic", "west": "W",
              "acknowledged": "#{iid}: acknowledged", "en_route": "#{iid}: en route"},
}  # fmt: skip


async def dispatched_to_both(gateway: TestClient[Any, Any], redis: aioredis.Redis) -> str:
    """U1 and U2 (patrols with a medic's kit) on duty, then a citizen's alarm: a citizen in
    danger gets two units, so both are sent; the incident's id."""
    for unit in UNITS:
        resp = await gateway.post("/api/patrol/duty", headers=bearer(unit_token(unit)),
                                 json={"duty": "on_duty", "capabilities": ["patrol", "medic"],
                                       **UNIT})  # fmt: skip
        assert resp.status == 202

    async def available() -> bool:
        states = [await redis.hget(keys.DEFAULT.unit(u), "status") for u in UNITS]
        return states == [b"available"] * len(UNITS)

    await until(available)
    resp = await gateway.post("/api/alarms", json={"pole": FUTIAN.code, "text": "help"})
    assert resp.status == 202
    alarm = (await resp.json())["alarm"]

    async def incident() -> Any:
        return (await (await gateway.get(f"/api/alarms/{alarm}")).json()).get("incident")

    iid: str = await until(incident)

    async def both_sent() -> bool:
        body = await incident_state(gateway, iid, "dispatched")
        return bool(body) and sorted(body["incident"]["units"]) == list(UNITS)

    await until(both_sent)
    return iid


async def signed_in(chromium: Browser, url: str, locale: str) -> Page:
    context = await chromium.new_context(
        locale=locale, timezone_id="UTC", viewport={"width": 1440, "height": 900}
    )
    page = await context.new_page()
    await page.goto(url)
    await page.fill("#login-name", "ada")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    return page


async def shot(page: Page, name: str, locale: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"{name}-{locale[:2]}.png"))


async def test_a_dispatch_reads_in_the_operators_and_the_officers_language(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
    aredis: aioredis.Redis,
) -> None:
    from playwright.async_api import expect

    iid = await dispatched_to_both(client, aredis)
    for locale, reads in READS.items():
        page = await signed_in(browser, str(client.make_url("/console/")), locale)
        kit = page.locator("#units li.u[data-id='U1'] .grid")
        await expect(kit).to_have_text(reads["kit"])
        await expect(kit).to_have_attribute("title", reads["kit"])  # whole, where the cell is not
        # the board's column heads each on one line and whole ("最近上报" wrapped in two)
        heads = await page.locator(".unit-head span").evaluate_all(
            "(spans) => spans.map((s) => [s.offsetHeight, s.scrollWidth <= s.clientWidth])"
        )
        assert len({height for height, _ in heads}) == 1 and all(w for _, w in heads), heads
        await page.click(f"#queue li.q[data-id='{iid}']")
        await expect(page.locator("#timeline li.new")).to_contain_text(f" · {reads['actor']}")
        await expect(page.locator("#map")).to_have_attribute(
            "data-labels", re.compile(rf"(^|\n)#{iid} {reads['type']}($|\n)")
        )
        await shot(page, "console-incident", locale)
        await page.context.close()
    for (locale, reads), unit in zip(READS.items(), UNITS, strict=True):  # one phone each
        context = await browser.new_context(
            locale=locale, timezone_id="UTC", viewport={"width": 390, "height": 844},
            device_scale_factor=2, permissions=["geolocation"],
            geolocation={"latitude": UNIT["lat"], "longitude": UNIT["lon"]},
        )  # fmt: skip
        page = await context.new_page()
        await page.goto(str(client.make_url(f"/patrol/?token={unit_token(unit)}")))
        await expect(page.locator("#job-bearing")).to_have_text(
            re.compile(rf"^\d+° {reads['west']}$")
        )
        await page.click("#accept")
        answer = reads["acknowledged"].format(iid=iid)
        await expect(page.locator("#log li").first).to_contain_text(answer)
        await page.click("#en-route")
        answer = reads["en_route"].format(iid=iid)
        await expect(page.locator("#log li").first).to_contain_text(answer)
        await shot(page, "patrol-job", locale)
        await context.close()


async def test_the_analytics_bars_leave_room_for_their_figures(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
    aredis: aioredis.Redis,
) -> None:
    from playwright.async_api import expect

    await write_incidents(aredis, known_week(time.time() - 8 * 86_400))
    for locale in READS:
        page = await signed_in(browser, str(client.make_url("/console/")), locale)
        await page.click("[data-view=analytics]")
        figures = page.locator(".chart text.v")
        await expect(figures.first).to_be_visible()
        # every figure ends inside its chart's drawing (none cut off at the right edge)
        overflow = await figures.evaluate_all(
            "(ts) => ts.map((t) => t.getBBox().x + t.getBBox().width"
            " - t.ownerSVGElement.viewBox.baseVal.width).filter((d) => d > 0)"
        )
        assert await figures.count() >= 3
        assert overflow == [], (locale, overflow)
        await shot(page, "console-analytics", locale)
        await page.context.close()
