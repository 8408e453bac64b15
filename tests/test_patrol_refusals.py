"""A patrol's answer that the dispatcher refuses reaches that unit's phone, not another's: the
gateway had said "ok", the real dispatcher dead-letters the answer with its reason, and the
unit's socket gets a ``refused`` frame naming the answer's entry, the reason and its catalogue
key, again after a reconnect. In Chromium the patrol app shows the refusal in the officer's
language and puts the job back as the dispatcher holds it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp.test_utils import TestClient
from browser import launch, needs_chromium
from hypothesis import given
from hypothesis import strategies as st
from test_details_pages import SHOTS, client  # noqa: F401 (its fixture)
from test_gateway_cluster import NANSHAN, Run, dispatch_round, zoned_gateway  # noqa: F401
from test_patrol_api import receive, socket_url
from waiting import until

from gateway.refusals import refused_answer
from gateway.testing import TEST_POLES, bearer, store_poles, unit_token
from polewatch import keys, wire


async def answer(
    ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Send ``frame``; the entry its ``ok`` names and every frame up to its ``refused`` one."""
    await ws.send_json(frame)
    seen: list[dict[str, Any]] = []
    entry = None
    while True:
        got = await receive(ws)
        seen.append(got)
        if got["type"] == "ok" and got["ref"] == frame["ref"]:
            entry = got["entry"]
        if got["type"] == "refused" and entry is not None and got["entry"] == entry:
            return entry, seen


async def test_a_refused_answer_reaches_only_its_units_sockets(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    u1 = await client.ws_connect(socket_url("U1"))
    u2 = await client.ws_connect(socket_url("U2"))
    hello = await receive(u1)
    assert (await receive(u2))["unit"] == "U2"
    entry, seen = await answer(u1, {"type": "ack", "incident": "999", "ref": 1})
    refused = seen[-1]
    assert refused == {
        "type": "refused", "entry": entry, "incident": "999", "action": "acknowledged",
        "error": "unknown incident 999", "error_key": "reject.unknown_incident",
        "error_args": {"incident": "999"}}  # fmt: skip
    # U2's own refusal comes after U1's in the dead-letter stream: U1's would have come first
    other, seen = await answer(u2, {"type": "decline", "incident": "998", "ref": 7})
    assert [f["entry"] for f in seen if f["type"] == "refused"] == [other]
    assert seen[-1]["action"] == "declined" and seen[-1]["error_args"] == {"incident": "998"}
    # a phone that was away when it happened hears of it when it comes back
    await u1.close()
    u1 = await client.ws_connect(socket_url("U1", last=hello["last"]))
    assert (await receive(u1))["type"] == "hello"
    assert await receive(u1) == refused
    await u1.close()
    await u2.close()


async def test_with_zones_on_a_cluster_the_refusal_comes_from_the_units_zone(
    cluster_url: str,
    zones_file: Path,
    dispatch_round: Run,  # noqa: F811
) -> None:
    await store_poles(cluster_url, cluster=True)
    async with zoned_gateway(cluster_url, zones_file) as client:  # noqa: F811
        ws = await client.ws_connect(socket_url("U1"))
        assert (await receive(ws))["type"] == "hello"
        await ws.send_json({"type": "duty", "duty": "on_duty", "lon": NANSHAN.lon,
                            "lat": NANSHAN.lat, "ref": 0})  # fmt: skip
        assert (await receive(ws))["ref"] == 0
        await ws.send_json({"type": "ack", "incident": "nanshan-999", "ref": 1})
        ok = await receive(ws)
        assert ok["ref"] == 1
        await dispatch_round()  # the Nanshan dispatcher dead-letters it in Nanshan
        while (refused := await receive(ws))["type"] != "refused":
            pass
        assert (refused["entry"], refused["error_key"]) == (ok["entry"], "reject.unknown_incident")
        await ws.close()


@given(st.dictionaries(st.sampled_from([b"stream", b"raw:m", b"id", b"reason", b"x"]),
                       st.binary(max_size=40)))  # fmt: skip
def test_any_dead_letter_is_a_refusal_frame_or_nothing(fields: dict[bytes, bytes]) -> None:
    found = refused_answer(fields, keys.DEFAULT)
    if found is not None:  # only a unit's answer on the patrol-event stream
        assert json.loads(found[1])["type"] == "refused"


@given(st.text(max_size=60), st.sampled_from(["acknowledged", "declined", "resolved"]))
def test_a_units_answer_on_the_patrol_stream_is_its_refusal(reason: str, action: Any) -> None:
    answer = wire.PatrolStatus(unit="P-7", incident="I-3", action=action, ts=1.0)
    fields = {b"stream": keys.DEFAULT.patrol_events.encode(), b"id": b"5-0",
              b"raw:m": wire.entry(answer)[b"m"], b"reason": reason.encode()}  # fmt: skip
    assert (found := refused_answer(fields, keys.DEFAULT)) is not None
    assert found[0] == "P-7"
    assert msgspec.json.decode(found[1])["error"] == reason
    elsewhere = {**fields, b"stream": keys.DEFAULT.commands.encode()}
    assert refused_answer(elsewhere, keys.DEFAULT) is None


EXPECTED = {"zh-CN": "只能拒绝尚未确认的派警",
            "en-US": "only an unacknowledged dispatch can be declined"}  # fmt: skip
NO_LOCATION = {"zh-CN": "本页面未获准使用位置", "en-US": "this page may not use the location"}
"""What the app says where the browser refuses it the position (its own text is English)."""


@needs_chromium
async def test_the_patrol_app_shows_a_refused_decline_and_keeps_the_job(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    """Both units acknowledged their dispatch on another phone; the app still rings, the officer
    declines there, and the dispatcher refuses: the app says why and shows the job as taken."""
    from playwright.async_api import async_playwright, expect

    iid = await dispatched(client, ("U1", "U2"))
    async with async_playwright() as p:
        browser = await launch(p)
        for unit, (locale, reason) in zip(("U1", "U2"), EXPECTED.items(), strict=True):
            context = await browser.new_context(
                locale=locale, viewport={"width": 390, "height": 844}
            )
            page = await context.new_page()
            await page.goto(str(client.make_url(f"/patrol/?token={unit_token(unit)}")))
            await expect(page.locator("#answer")).to_be_visible()
            await page.click("#decline")
            await expect(page.locator("#notice")).to_contain_text(f"#{iid}")
            await expect(page.locator("#notice")).to_contain_text(reason)
            await expect(page.locator("#progress")).to_be_visible()  # the job is still its
            await expect(page.locator("#answer")).to_be_hidden()
            await expect(page.locator("#fix")).to_contain_text(NO_LOCATION[locale])
            if SHOTS:
                await page.screenshot(path=str(Path(SHOTS) / f"patrol-refused-{locale[:2]}.png"))
            await context.close()
        await browser.close()


async def dispatched(http: TestClient[Any, Any], units: tuple[str, ...]) -> str:
    """An incident (a citizen's SOS: it wants two units) dispatched to ``units``, on duty
    beside it, which acknowledged it through the REST door; its id."""
    place = TEST_POLES[3]
    for unit in units:
        resp = await http.post("/api/patrol/duty", headers=bearer(unit_token(unit)), json={
            "duty": "on_duty", "lon": place.lon, "lat": place.lat})  # fmt: skip
        assert resp.status == 202
    resp = await http.post("/api/alarms", json={"pole": place.code, "text": "help"})
    alarm = (await resp.json())["alarm"]

    async def statuses(wanted: str) -> Any:
        view = await (await http.get(f"/api/alarms/{alarm}")).json()
        found = {u["unit"]: u["status"] for u in view.get("units", ())}
        return view["incident"] if found == dict.fromkeys(units, wanted) else None

    iid: str = await until(lambda: statuses("dispatched"))
    for unit in units:
        ack, headers = {"action": "acknowledged"}, bearer(unit_token(unit))
        resp = await http.post(f"/api/patrol/incidents/{iid}/status", headers=headers, json=ack)
        assert resp.status == 202
    await until(lambda: statuses("busy"))
    return iid
