"""What an operator and an officer read around a dispatch, in their language: the console's map
labels an incident by its type's name (not the stored ``citizen_sos``), the timeline names the
dispatcher's own actions and the alarms list who raised each, the unit board names a unit's
kit, the officer's phone gives the bearing's compass point and logs an answer by its incident
number; the analytics bars leave room for their figures; an answer tapped without a connection
says so where the officer looks. Real dispatcher and gateway, Chromium in zh-CN and en-US.

The unit board's column heads fit on one line in Chinese.

``POLEWATCH_SCREENSHOTS=docs/screenshots`` keeps ``console-incident-{zh,en}.png``,
``console-analytics-{zh,en}.png``, and at phone size ``patrol-job-{zh,en}.png`` and
``patrol-not-sent-{zh,en}.png``, ``patrol-small-{zh,en}.png`` (360 px wide)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import needs_chromium
from playwright.async_api import expect
from test_details_pages import FUTIAN, PASSWORD, client, incident_state  # noqa: F401
from test_i18n_pages import browser  # noqa: F401
from waiting import until

from analytics.simulation import known_week, write_incidents
from gateway.testing import bearer, unit_token
from polewatch import i18n, keys

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, WebSocketRoute

pytestmark = needs_chromium
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")
UNIT = {"lon": FUTIAN.lon + 0.003, "lat": FUTIAN.lat}
"""U1 and U2 stand east of the pole: the scene is due west of them."""
UNITS = ("U1", "U2")
LANGUAGES = {"zh-CN": "zh-CN", "en-US": "en"}
LIVE_MS = 15_000
"""How long a page may take to show what the live feed or the socket brings (a loaded CI)."""
READS = {
    "zh-CN": {"type": "群众求助", "actor": "自动调度", "kit": "巡逻，医疗救护", "west": "西",
              "acknowledged": "#{iid}：已接警", "en_route": "#{iid}：赶往现场",
              "source": "市民扫码求助"},
    "en-US": {"type": "citizen SOS", "actor": "dispatcher", "kit": "patrol, medic", "west": "W",
              "acknowledged": "#{iid}: acknowledged", "en_route": "#{iid}: en route",
              "source": "citizen (pole's help page)"},
}  # fmt: skip


@pytest.fixture
async def iid(client: TestClient[Any, Any], aredis: aioredis.Redis) -> str:  # noqa: F811
    """U1 and U2 (patrols with a medic's kit) on duty, then a citizen's alarm: a citizen in
    danger gets two units, so both are sent; the incident's id."""
    return await dispatched_to_both(client, aredis)


@pytest.fixture
async def week(aredis: aioredis.Redis) -> None:
    """The known week of incidents (analytics' fixture), ending a day ago."""
    await write_incidents(aredis, known_week(time.time() - 8 * 86_400))


async def dispatched_to_both(gateway: TestClient[Any, Any], redis: aioredis.Redis) -> str:
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


class Coverage:
    """The phone's link to the gateway, through Playwright's WebSocket routing: up (through to
    the real gateway) or down (every socket closed at once, as out of coverage)."""

    def __init__(self) -> None:
        self.down = False
        self.sockets: list[WebSocketRoute] = []

    async def route(self, ws: WebSocketRoute) -> None:
        if self.down:
            await ws.close(code=1001)
        else:
            ws.connect_to_server()
            self.sockets.append(ws)

    async def lost(self) -> None:
        self.down = True
        for ws in self.sockets:
            await ws.close(code=1001)


async def shot(page: Page, name: str, locale: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"{name}-{locale[:2]}.png"))


async def test_a_dispatch_reads_in_the_operators_and_the_officers_language(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
    iid: str,
) -> None:
    for locale, reads in READS.items():
        page = await signed_in(browser, str(client.make_url("/console/")), locale)
        kit = page.locator("#units li.u[data-id='U1'] .grid")
        await expect(kit).to_have_text(reads["kit"], timeout=LIVE_MS)
        await expect(kit).to_have_attribute("title", reads["kit"])  # whole, where the cell is not
        # the board's column heads each on one line and whole ("最近上报" wrapped in two)
        heads = await page.locator(".unit-head span").evaluate_all(
            "(spans) => spans.map((s) => [s.offsetHeight, s.scrollWidth <= s.clientWidth])"
        )
        assert len({height for height, _ in heads}) == 1 and all(w for _, w in heads), heads
        await page.click(f"#queue li.q[data-id='{iid}']")
        await expect(page.locator("#timeline li.new")).to_contain_text(f" · {reads['actor']}")
        # who raised the alarm, as people say it (not "gateway:citizen")
        await expect(page.locator("#alarms li .src")).to_contain_text(f" · {reads['source']} · ")
        await expect(page.locator("#map")).to_have_attribute(
            "data-labels", re.compile(rf"(^|\n)#{iid} {reads['type']}($|\n)"), timeout=LIVE_MS
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
            re.compile(rf"^\d+° {reads['west']}$"), timeout=LIVE_MS
        )
        await page.click("#accept")
        answer = reads["acknowledged"].format(iid=iid)
        await expect(page.locator("#log li").first).to_contain_text(answer)
        await page.click("#en-route")
        answer = reads["en_route"].format(iid=iid)
        await expect(page.locator("#log li").first).to_contain_text(answer)
        await shot(page, "patrol-job", locale)
        await context.close()


@pytest.mark.usefixtures("week")
async def test_the_analytics_bars_leave_room_for_their_figures(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
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


async def test_an_answer_without_a_connection_says_it_was_not_sent(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
    iid: str,
) -> None:
    for (locale, language), unit in zip(LANGUAGES.items(), UNITS, strict=True):
        context = await browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
        page = await context.new_page()
        phone = Coverage()
        await page.route_web_socket(re.compile(r"/api/patrol/ws"), phone.route)
        await page.goto(str(client.make_url(f"/patrol/?token={unit_token(unit)}")))
        await expect(page.locator("#accept")).to_be_visible()
        await page.wait_for_selector("#link.up")
        await phone.lost()
        await expect(page.locator("#link")).to_have_text(i18n.translate("patrol.offline", language))
        await page.click("#accept")
        acknowledged = i18n.translate("state.acknowledged", language)
        await expect(page.locator("#notice")).to_have_text(
            i18n.translate("patrol.not_sent", language, incident=iid, action=acknowledged)
        )
        await expect(page.locator("#accept")).to_be_visible()  # nothing changed on the job
        await shot(page, "patrol-not-sent", locale)
        # back in coverage: the app reconnects by itself, and the answer goes through
        phone.down = False
        await page.wait_for_selector("#link.up", timeout=20_000)
        await page.click("#accept")
        await expect(page.locator("#notice")).to_be_hidden()
        await expect(page.locator("#progress")).to_be_visible()
        await context.close()


@pytest.mark.usefixtures("week")
async def test_history_dates_what_is_not_today_and_names_its_poles(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    for locale, language in LANGUAGES.items():
        page = await signed_in(browser, str(client.make_url("/console/")), locale)
        await page.click("#history-form button[type=submit]")
        row = page.locator("#history-list li.h[data-id='1']")  # closed a week ago
        pole = i18n.translate("console.pole", language, code="1000001")
        await expect(row.locator(".where")).to_contain_text(pole, timeout=LIVE_MS)
        # its date, not a bare clock time that reads as today's
        await expect(row.locator(".where")).to_contain_text(re.compile(r"20\d\d"))
        await row.click()
        await expect(page.locator("#detail-raised")).to_contain_text(re.compile(r"20\d\d"))
        await expect(page.locator("#detail .assigned li")).to_have_text(
            i18n.translate("console.units_released", language)
        )
        await page.context.close()


async def test_the_patrol_header_fits_a_small_phone(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    for locale, language in LANGUAGES.items():
        context = await browser.new_context(locale=locale, viewport={"width": 360, "height": 640})
        page = await context.new_page()
        await page.goto(str(client.make_url(f"/patrol/?token={unit_token('PATROL-17')}")))
        await expect(page.locator("#link")).to_have_text(i18n.translate("patrol.online", language))
        # the unit's name on one line (it broke as "PATROL-" / "17"), every control on screen
        assert len(await page.locator("#unit-id").evaluate("(b) => [...b.getClientRects()]")) == 1
        for control in ("#unit-id", "#link", "#patrol select.lang-switch", "#duty"):
            box = await page.locator(control).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, control
        await shot(page, "patrol-small", locale)
        await context.close()
