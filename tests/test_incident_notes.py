"""An operator's note on an incident (the caller called back, the suspect went north): kept in
the incident's timeline and the audit, and pushed to the phones of the units working it. Real
Redis, real dispatcher and gateway, real Chromium (the console writes it, the phone shows it)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import redis
from browser import ARTIFACTS, console_page, launch, needs_chromium
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import scenario as sc
from dispatcher.scenario import step, timeline
from gateway import bodies, frames
from gateway.errors import HttpError
from gateway.incidents import command
from gateway.testing import (
    bearer,
    gateway_client,
    operator_token,
    served_gateway,
    store_poles,
    unit_token,
)
from polewatch import keys, wire

LON, LAT = 114.05, 22.55
DESK = bearer(operator_token("ada"))
SAID = {"zh-CN": "嫌疑人穿红色外套，向北逃离", "en-US": "suspect in a red jacket, going north"}


async def two_units_one_incident(redis_url: str, client: redis.Redis) -> None:
    """Incident 1 dispatched to ``near``; ``far`` on duty and free."""
    sc.units_east(client, LON, LAT, {"near": 200, "far": 5000})
    await step(redis_url, client, sc.alarm(LON, LAT))


async def test_a_note_is_in_the_timeline_and_on_the_phones_of_the_units_on_it(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await two_units_one_incident(redis_url, sync_redis)
    said = "caller rang back: two of them, one in a red jacket"
    await step(redis_url, sync_redis, sc.command("note", "1", actor="ada", detail=said))
    last = timeline(sync_redis)[-1]
    assert (last.event, last.actor, last.detail) == ("note", "ada", said)
    *_, note = sc.inbox(sync_redis, "near")
    assert isinstance(note, wire.DispatchNote)
    assert (note.incident, note.unit, note.text, note.actor) == ("1", "near", said, "ada")
    assert sc.inbox(sync_redis, "far") == []  # not its incident

    # Resolved: still noted (the operator writes up the outcome), no phone is told any more.
    await step(redis_url, sync_redis, sc.status("near", "1", "resolved"))
    sent = len(sc.inbox(sync_redis, "near"))
    await step(redis_url, sync_redis, sc.command("note", "1", actor="ada", detail="all calm"))
    assert timeline(sync_redis)[-1].event == "note"
    assert len(sc.inbox(sync_redis, "near")) == sent

    # Closed: refused with the reason, which reaches the console that sent it.
    await step(redis_url, sync_redis, sc.command("close", "1", evaluation=5, actor="ada"))
    totals = await step(redis_url, sync_redis, sc.command("note", "1", actor="ada", detail="x"))
    assert totals["deadletter"] == 1
    last_dead: Any = sync_redis.xrevrange(keys.DEADLETTER, count=1)
    assert b"is closed" in last_dead[0][1][b"reason"]


async def test_the_api_takes_a_note_and_refuses_an_empty_one(redis_url: str) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        resp = await client.post("/api/incidents/7/note", headers=DESK, json={"text": "on foot"})
        assert resp.status == 202
        sent = (await resp.json())["command"]
        assert (sent["op"], sent["incident"], sent["actor"], sent["detail"]) == (
            "note", "7", "ada", "on foot")  # fmt: skip
        for bad in ({}, {"text": ""}, {"text": "   "}, {"text": "x" * 501}, {"text": 3}):
            resp = await client.post("/api/incidents/7/note", headers=DESK, json=bad)
            assert resp.status == 422, bad
        resp = await client.post("/api/incidents/7/note", headers=bearer(unit_token("U1")),
                                 json={"text": "from a unit"})  # fmt: skip
        assert resp.status == 403


@settings(max_examples=200)
@given(st.text(max_size=520))
def test_a_note_body_is_taken_exactly_when_it_has_a_character_to_read(text: str) -> None:
    raw = json.dumps({"text": text}).encode()
    readable = 0 < len(text) <= 500 and not text.isspace()
    try:
        body = bodies.decode(raw, bodies.Note)
    except HttpError as exc:
        assert exc.status == 422 and not readable
        return
    assert readable
    made = command("note", "1", "ada", body)
    assert made.detail == text and made.op == "note"


def test_a_note_in_an_inbox_is_a_frame_the_phone_reads() -> None:
    note = wire.DispatchNote(incident="1", unit="near", text="红衣男子向北", actor="ada", ts=1.5)
    frame = json.loads(frames.encode_inbox("5-0", wire.entry(note)))
    assert frame == {"type": "inbox", "id": "5-0", "message": {
        "k": "note", "v": 1, "incident": "1", "unit": "near", "text": "红衣男子向北",
        "actor": "ada", "ts": 1.5}}  # fmt: skip
    assert msgspec.json.decode(msgspec.json.encode(frame))["message"]["k"] == "note"


@needs_chromium
@pytest.mark.parametrize(
    ("locale", "from_centre"), [("zh-CN", "指挥中心："), ("en-US", "from the centre: ")]
)
async def test_the_console_writes_it_and_the_phone_shows_it_under_the_job(
    redis_url: str, sync_redis: redis.Redis, locale: str, from_centre: str
) -> None:
    from playwright.async_api import async_playwright, expect

    await store_poles(redis_url)
    await two_units_one_incident(redis_url, sync_redis)
    said = SAID[locale]
    async with served_gateway(redis_url) as (host, port), async_playwright() as p:
        gateway = f"http://{host}:{port}"
        browser = await launch(p)
        try:
            desk = await console_page(browser, gateway, locale)
            await desk.locator("#queue li.q[data-id='1']").click()
            await desk.fill("#note-text", said)
            await desk.click("#do-note")
            await expect(desk.locator("#notices li.ok")).to_contain_text("#1")  # sent
            await step(redis_url, sync_redis)  # the dispatcher adds it
            await expect(desk.locator("#timeline li.note")).to_contain_text(said)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await desk.screenshot(path=str(ARTIFACTS / f"console-note-{locale}.png"))

            phone = await (await browser.new_context(
                locale=locale, viewport={"width": 390, "height": 844})).new_page()  # fmt: skip
            await phone.goto(f"{gateway}/patrol/?token={unit_token('near')}")
            notes = phone.locator("#job-notes li")
            await expect(notes).to_have_count(1)
            await expect(notes).to_contain_text(from_centre + said)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await phone.screenshot(path=str(ARTIFACTS / f"patrol-note-{locale}.png"))
        finally:
            await browser.close()
