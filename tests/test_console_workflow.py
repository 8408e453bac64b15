"""The operator's workflow against the running system (redis-server, the real dispatcher and
gateway, units answering through the patrol API): the history of resolved, closed and
cancelled incidents, searched; in Chromium: close-with-evaluation from the history, a
cancellation that asks for a reason and a confirmation, notices that stay until dismissed,
a split dialog that tells the reports apart, and the call-taker's loud far-from-caller check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import launch, needs_chromium
from waiting import until_written

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import TEST_POLES, bearer, gateway_client, operator_token, store_poles
from gateway.testing import unit_token as token
from polewatch import keys
from polewatch.connection import connect

PASSWORD = "late-shift-2026"
CONSOLE = ConsoleSettings(
    users={"ada": Account(role="supervisor", password=hash_password(PASSWORD))}
)
DESK = bearer(operator_token("desk"))
KEYUAN, TAIL, FUTIAN = TEST_POLES[0], TEST_POLES[2], TEST_POLES[3]


class Desk:
    """The system as the tests drive it: alarms, units' answers, incident reads."""

    def __init__(
        self, client: TestClient[Any, Any], audit: aioredis.Redis, dispatcher: asyncio.Task[None]
    ) -> None:
        self.client = client
        self.audit = audit
        self.dispatcher = dispatcher

    async def until(self, check: Callable[[], Awaitable[Any]], what: str) -> Any:
        """The first true result of ``check``, looked at again after each audit entry (the
        dispatcher writes one with every change of an incident)."""
        return await until_written(
            self.audit, keys.AUDIT, check, what, 15, alongside=self.dispatcher
        )

    async def alarm(self, pole: Any, text: str, **extra: Any) -> str:
        body = {"pole": pole.code, "text": text, **extra}
        resp = await self.client.post("/api/alarms", json=body)
        assert resp.status == 202
        return str((await resp.json())["alarm"])

    async def incident_of(self, alarm: str) -> dict[str, Any]:
        async def found() -> Any:
            status = await (await self.client.get(f"/api/alarms/{alarm}")).json()
            return status.get("incident")

        return await self.incident(await self.until(found, f"alarm {alarm} in an incident"))

    async def incident(self, iid: str) -> dict[str, Any]:
        body: dict[str, Any] = await (
            await self.client.get(f"/api/incidents/{iid}", headers=DESK)
        ).json()
        return body

    async def state(self, iid: str, *states: str) -> dict[str, Any]:
        async def reached() -> Any:
            detail = await self.incident(iid)
            return detail if detail["incident"]["state"] in states else None

        detail: dict[str, Any] = await self.until(reached, f"incident {iid} {'/'.join(states)}")
        return detail

    async def unit(self, unit: str, pole: Any) -> None:
        resp = await self.client.post("/api/patrol/duty", headers=bearer(token(unit)), json={
            "duty": "on_duty", "lon": pole.lon + 0.0005, "lat": pole.lat})  # fmt: skip
        assert resp.status == 202

    async def work(self, unit: str, iid: str, *actions: str) -> None:
        await self.state(iid, "dispatched")
        for action in actions:
            resp = await self.client.post(
                f"/api/patrol/incidents/{iid}/status", headers=bearer(token(unit)),
                json={"action": action},
            )  # fmt: skip
            assert resp.status == 202

    async def history(self, **query: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/api/console/history", params=query, headers=DESK)
        assert resp.status == 200, await resp.text()
        found: list[dict[str, Any]] = (await resp.json())["incidents"]
        return found


@pytest.fixture
async def desk(redis_url: str) -> AsyncIterator[Desk]:
    await store_poles(redis_url)
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, block_ms=100))
    running = asyncio.create_task(dispatcher.run())
    try:
        async with gateway_client(redis_url, console=CONSOLE) as client:
            audit = connect(redis_url, name="test-audit")
            try:
                yield Desk(client, audit, running)
            finally:
                await audit.aclose()
    finally:
        dispatcher.stop()
        await asyncio.wait_for(running, 10)


async def finished_city(desk: Desk) -> dict[str, str]:
    """Three incidents over: one resolved, one closed with an evaluation, one cancelled."""
    for unit, pole in (("U1", KEYUAN), ("U2", TAIL), ("U3", FUTIAN)):
        await desk.unit(unit, pole)
    resolved = (await desk.incident_of(await desk.alarm(KEYUAN, "a fight at the bus stop")))[
        "incident"
    ]["id"]
    closed = (await desk.incident_of(await desk.alarm(TAIL, "car window smashed")))["incident"][
        "id"
    ]
    cancelled = (await desk.incident_of(await desk.alarm(FUTIAN, "prank call")))["incident"]["id"]
    for unit, iid in (("U1", resolved), ("U2", closed)):
        await desk.work(unit, iid, "acknowledged", "on_scene", "resolved")
        await desk.state(iid, "resolved")
    resp = await desk.client.post(
        f"/api/incidents/{closed}/close", headers=DESK, json={"evaluation": 5}
    )
    assert resp.status == 202
    resp = await desk.client.post(f"/api/incidents/{cancelled}/cancel", headers=DESK,
                                  json={"reason": "caller admitted a prank"})  # fmt: skip
    assert resp.status == 202
    await desk.state(closed, "closed")
    await desk.state(cancelled, "cancelled")
    return {"resolved": resolved, "closed": closed, "cancelled": cancelled}


async def test_history_finds_finished_incidents(desk: Desk) -> None:
    ids = await finished_city(desk)
    everything = await desk.history()
    assert {i["id"]: i["state"] for i in everything} == {v: k for k, v in ids.items()}
    assert [i["finished"] for i in everything] == sorted(
        (i["finished"] for i in everything), reverse=True
    )
    for state, iid in ids.items():
        assert [i["id"] for i in await desk.history(state=state)] == [iid]
    (cancelled,) = await desk.history(state="cancelled")
    assert cancelled["reason"] == "caller admitted a prank"
    assert [i["id"] for i in await desk.history(q="WINDOW")] == [ids["closed"]]
    assert [i["id"] for i in await desk.history(q="prank")] == [ids["cancelled"]]
    assert [i["id"] for i in await desk.history(q=FUTIAN.code)] == [ids["cancelled"]]
    assert await desk.history(q="nothing like this") == []
    for bad in ({"state": "open"}, {"limit": "0"}, {"limit": "x"}, {"q": "x" * 101}):
        resp = await desk.client.get("/api/console/history", params=bad, headers=DESK)
        assert resp.status == 422, bad
    assert (await desk.client.get("/api/console/history")).status == 401


async def test_a_cancellation_needs_a_reason(desk: Desk) -> None:
    await desk.unit("U1", KEYUAN)
    iid = (await desk.incident_of(await desk.alarm(KEYUAN, "help")))["incident"]["id"]
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        resp = await desk.client.post(f"/api/incidents/{iid}/cancel", headers=DESK, json=body)
        assert resp.status == 422, body


@needs_chromium
async def test_the_operators_workflow_in_the_console(desk: Desk) -> None:
    from playwright.async_api import async_playwright, expect

    ids = await finished_city(desk)
    await desk.unit("U4", KEYUAN)
    first = await desk.alarm(KEYUAN, "two men fighting, one has a bottle", phone="13800000001",
                             lon=KEYUAN.lon + 0.0005, lat=KEYUAN.lat)  # fmt: skip
    merged = (await desk.incident_of(first))["incident"]["id"]
    resp = await desk.client.post("/api/incidents", headers=bearer(operator_token("bo")), json={
        "pole": KEYUAN.code, "type": "call", "text": "neighbour hears shouting"})  # fmt: skip
    assert resp.status == 202

    async def two_reports() -> Any:
        return len((await desk.incident(merged))["alarms"]) == 2

    await desk.until(two_reports, "the call merged into the first report")
    base = str(desk.client.make_url("")).rstrip("/")
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            page = await (
                await browser.new_context(viewport={"width": 1600, "height": 1000})
            ).new_page()
            await page.goto(f"{base}/console/")
            await page.fill("#login-name", "ada")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
            await page.wait_for_selector("#queue li.q")

            # --- the call-taker: the pole is 12 km from where the caller is: loud, and held
            await page.fill("#call-code", FUTIAN.code)
            await page.fill("#call-where", f"geo:{FUTIAN.lat},{FUTIAN.lon + 0.12}")
            await page.click("#call-form button[type=submit]")
            await expect(page.locator("#call-warning #call-far")).to_be_visible()
            await page.click("#call-raise")
            await expect(page.locator("#call-notice")).not_to_be_empty()
            assert len(await desk.history()) == 3  # nothing raised: not confirmed
            await page.check("#call-confirm")
            await page.click("#call-raise")
            await expect(page.locator("#queue li.q .chip.far")).to_have_count(1)

            # --- the split dialog tells the reports apart; its result stays until dismissed
            await page.click(f"#queue li.q[data-id='{merged}']")
            await page.click("#do-split")
            dialog = page.locator("#split-dialog")
            await expect(dialog.locator(".split-choice")).to_have_count(2)
            text = await dialog.inner_text()
            for seen in (
                "citizen (pole's help page)",  # who raised each, as people say it
                "call-taker bo",
                "two men fighting",
                "neighbour hears",
                "13800000001",
                "reporter 51 m from the pole",  # the citizen's phone was there
            ):
                assert seen in text, seen
            await dialog.locator(".split-choice", has_text="neighbour").locator("input").check()
            await page.click("#split-dialog-confirm")
            notice = page.locator("#notices li", has_text=f"#{merged}")
            await expect(notice).to_be_visible()

            async def split_done() -> Any:
                return len((await desk.incident(merged))["alarms"]) == 1

            await desk.until(split_done, "the split leaving one report")
            await page.wait_for_selector("#timeline li.split, #timeline li:has-text('split')")
            await expect(notice).to_be_visible()  # the detail re-rendered; the notice stayed
            await notice.locator("button.dismiss").click()
            await expect(notice).to_have_count(0)

            # --- cancel: backing out sends nothing; a reason is asked for, then recorded
            await page.click("#do-cancel")
            await page.click("#cancel-dialog-back")
            await page.click("#do-cancel")
            await page.click("#cancel-dialog-confirm")
            await expect(page.locator("#cancel-dialog p.error")).not_to_be_empty()
            await page.fill("#cancel-reason", "duplicate of a call already handled")
            await page.click("#cancel-dialog-confirm")
            done = await desk.state(merged, "cancelled")
            cancels = [e for e in done["timeline"] if e["event"] == "cancelled"]
            assert [e["detail"] for e in cancels] == ["duplicate of a call already handled"]

            # --- history: the resolved incident, closed with an evaluation from its detail
            await page.select_option("#history-state", "resolved")
            row = page.locator(f"#history-list li[data-id='{ids['resolved']}']")
            await row.click()
            await page.wait_for_selector("#do-close:not([disabled])")
            await page.select_option("#evaluation", "3")
            await page.click("#do-close")
            closed = await desk.state(ids["resolved"], "closed")
            assert closed["incident"]["evaluation"] == 3
            await page.fill("#history-q", "bottle")
            await page.select_option("#history-state", "cancelled")
            await expect(page.locator("#history-list li.h")).to_have_count(1)
            # no archive configured: the history says it searched Redis alone
            await expect(page.locator("#history-note")).to_be_visible()
            await expect(page.locator("#notices li")).to_have_count(2)  # cancelled, closed
        finally:
            await browser.close()
