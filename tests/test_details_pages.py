"""The dispatcher's machine-written details in the reader's language, end to end: the real
dispatcher writes an escalation and a straight-line dispatch into an incident's timeline, the
gateway's incident detail and live feed carry their catalogue keys beside the stored text, a
refused console action carries one too, a withdrawn unit's phone gets one; in Chromium the
timeline, the activity feed and the refusal read in Chinese under zh-CN and in English under en.

``POLEWATCH_SCREENSHOTS=docs/screenshots`` keeps ``console-timeline-zh.png`` and ``-en.png``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient
from browser import launch, needs_chromium
from redis import Redis
from waiting import until

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway import frames
from gateway.console.accounts import hash_password
from gateway.console.live import refusal
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import TEST_POLES, bearer, gateway_client, operator_token, store_poles
from gateway.testing import unit_token as token
from polewatch import details, i18n, keys, wire

if TYPE_CHECKING:
    from playwright.async_api import Browser

PASSWORD = "night-desk-2026"
CONSOLE = ConsoleSettings(users={"ada": Account(role="operator", password=hash_password(PASSWORD))})
DESK = bearer(operator_token("desk"))
FUTIAN = TEST_POLES[3]
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")
EXPECTED = {
    "zh-CN": ("30 km范围内没有空闲警力", "直线距离 ", "不能将事件合并到其自身", "事件 #999 不存在"),
    "en-US": ("no free unit within 30 km", "straight line ",
              "cannot merge an incident into itself", "unknown incident #999"),
}  # fmt: skip
"""Per browser language: the escalation, the dispatch, the merge the gateway refuses, the one
the dispatcher refuses (the dispatch's reason is the catalogue's text of the key the API gave)."""


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, block_ms=100))
    running = asyncio.create_task(dispatcher.run())
    try:
        async with gateway_client(redis_url, console=CONSOLE) as client:
            yield client
    finally:
        dispatcher.stop()
        await asyncio.wait_for(running, 10)


async def escalated_then_dispatched(client: TestClient[Any, Any]) -> dict[str, Any]:
    """An alarm nobody is free for (escalated), then a unit coming on duty nearby (dispatched
    to it in a straight line: this deployment has no road graph); the incident's detail."""
    resp = await client.post("/api/alarms", json={"pole": FUTIAN.code, "text": "help"})
    assert resp.status == 202
    alarm = (await resp.json())["alarm"]

    async def incident() -> Any:
        return (await (await client.get(f"/api/alarms/{alarm}")).json()).get("incident")

    iid = await until(incident)

    await until(lambda: incident_state(client, iid, "escalated"))
    resp = await client.post("/api/patrol/duty", headers=bearer(token("U1")), json={
        "duty": "on_duty", "lon": FUTIAN.lon + 0.003, "lat": FUTIAN.lat})  # fmt: skip
    assert resp.status == 202
    found: dict[str, Any] = await until(lambda: incident_state(client, iid, "dispatched"))
    return found


async def incident_state(client: TestClient[Any, Any], iid: str, state: str) -> Any:
    """The incident's detail once it is in ``state`` (else None)."""
    body = await (await client.get(f"/api/incidents/{iid}", headers=DESK)).json()
    return body if body["incident"]["state"] == state else None


async def test_the_detail_api_and_a_refusal_carry_keys(
    client: TestClient[Any, Any], sync_redis: Redis
) -> None:
    found = await escalated_then_dispatched(client)
    by_event = {e["event"]: e for e in found["timeline"]}
    escalated, dispatched = by_event["escalated"], by_event["dispatched"]
    assert escalated["detail"] == "no free unit within 30000 m"  # stored as written
    assert (escalated["detail_key"], escalated["detail_args"]) == (
        "detail.no_free_unit",
        {"radius_m": 30000},
    )
    assert dispatched["detail"].startswith("straight-line ")
    assert dispatched["detail_key"] == "detail.straight_line"
    assert abs(dispatched["detail_args"]["distance_m"] - dispatched["distance_m"]) <= 0.5
    assert dispatched["detail_args"]["reason"]["key"] in details.WHY_FORMS  # no road graph here
    assert "detail_key" not in by_event["new"]
    iid = found["incident"]["id"]
    resp = await client.post(f"/api/incidents/{iid}/merge", headers=DESK, json={"other": iid})
    assert (resp.status, await resp.json()) == (422, {
        "error": "cannot merge an incident into itself", "error_key": "reject.merge_self",
        "error_args": {}})  # fmt: skip
    # accepted by the gateway, refused by the dispatcher: the console hears of it from the feed
    resp = await client.post(f"/api/incidents/{iid}/merge", headers=DESK, json={"other": "999"})
    assert resp.status == 202

    async def dead_letter() -> Any:
        return sync_redis.xrange(keys.DEFAULT.deadletter)

    [(_, fields)] = await until(dead_letter)
    assert refusal(fields, keys.DEFAULT) == {
        "incident": iid, "op": "merge", "actor": "desk", "error": "unknown incident 999",
        "error_key": "reject.unknown_incident", "error_args": {"incident": "999"}}  # fmt: skip


def test_a_withdrawn_units_phone_gets_the_reasons_key() -> None:
    cancel = wire.DispatchCancel(incident="I-9", unit="U1", ts=1.0, reason="closed by ada")
    frame = json.loads(frames.encode_inbox("1-0", wire.entry(cancel)))
    assert frame["message"]["reason"] == "closed by ada"
    assert (frame["message"]["reason_key"], frame["message"]["reason_args"]) == (
        "detail.closed_by", {"actor": "ada"})  # fmt: skip


@needs_chromium
async def test_the_console_reads_details_in_the_browsers_language(
    client: TestClient[Any, Any],
) -> None:
    from playwright.async_api import async_playwright, expect

    found = await escalated_then_dispatched(client)
    iid = found["incident"]["id"]
    why = next(e for e in found["timeline"] if e["event"] == "dispatched")["detail_args"]["reason"]
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            for locale, expected in EXPECTED.items():
                reason = i18n.translate(why["key"], locale)
                await read_in(browser, str(client.make_url("/console/")), iid, locale,
                              (*expected, reason))  # fmt: skip
            # the unit's phone, told in Chinese why the incident was taken away
            resp = await client.post(f"/api/incidents/{iid}/cancel", headers=DESK,
                                     json={"reason": "caller called back"})  # fmt: skip
            assert resp.status == 202
            await until(lambda: incident_state(client, iid, "cancelled"))
            context = await browser.new_context(locale="zh-CN")
            page = await context.new_page()
            await page.goto(str(client.make_url(f"/patrol/?token={token('U1')}")))
            await expect(page.locator("#log")).to_contain_text(f"#{iid} 已撤回：已由 desk 撤销")
            await context.close()
        finally:
            await browser.close()


async def read_in(
    browser: Browser, url: str, iid: str, locale: str, expected: tuple[str, ...]
) -> None:
    """The incident's timeline, the activity feed and a refused merge, read under ``locale``."""
    from playwright.async_api import expect

    escalation, dispatch, refused, refused_later, why = expected
    context = await browser.new_context(
        locale=locale, timezone_id="UTC", viewport={"width": 1440, "height": 900}
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(url)
    await page.fill("#login-name", "ada")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.click(f"#queue li.q[data-id='{iid}']")
    timeline = page.locator("#timeline")
    await expect(timeline.locator("li.escalated .detail")).to_have_text(f" · {escalation}")
    await expect(timeline.locator("li.dispatched .detail")).to_contain_text(dispatch)
    await expect(timeline.locator("li.dispatched .detail")).to_contain_text(why)
    await expect(page.locator("#activity")).to_contain_text(escalation)
    await page.fill("#merge-other", iid)
    await page.click("#do-merge")
    await expect(page.locator("#notices li.error span")).to_have_text(f"#{iid}: {refused}")
    await page.fill("#merge-other", "999")
    await page.click("#do-merge")
    await expect(page.locator("#notices li.error span").nth(1)).to_have_text(
        f"#{iid}: {refused_later}"
    )
    if SHOTS:
        name = f"console-timeline-{locale[:2]}.png"
        await page.locator("#detail").screenshot(path=str(Path(SHOTS) / name))
    assert not problems, problems
    await context.close()
