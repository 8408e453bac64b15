"""Units that ignore dispatches are taken out of the rotation: after two dispatches in a row
time out (the ``unresponsive_after`` setting) a unit is ``unresponsive`` and offered nothing
until it answers (goes off and on duty again) or an operator restores it, which is audited."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from browser import launch, needs_chromium

from dispatcher import scenario as sc
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import bearer, gateway_client, operator_token
from polewatch import keys, wire

LON, LAT = 114.05, 22.54


def expire_now(client: redis.Redis) -> None:
    """Every dispatch awaiting acknowledgement reaches its deadline (as if 30 s went by)."""
    deadlines: Any = client.zrange(keys.ACK_DEADLINES, 0, -1)
    if deadlines:
        client.zadd(keys.ACK_DEADLINES, dict.fromkeys(deadlines, 0), xx=True)


async def alarm_at(url: str, client: redis.Redis, north_m: float, **kw: Any) -> str:
    """An alarm ``north_m`` north of the units' street (far enough apart not to merge); the
    incident it made."""
    await sc.step(url, client, sc.alarm(*sc.shifted(LON, LAT, north_m=north_m)), **kw)
    seq: Any = client.get(keys.INCIDENT_SEQ)
    return str(seq.decode())


async def time_out(url: str, client: redis.Redis, **kw: Any) -> None:
    expire_now(client)
    totals = await sc.drain(url, **kw)
    assert totals["expired"], "nothing timed out"


def events(client: redis.Redis, incident: str) -> list[tuple[str, str | None]]:
    return [(e.event, e.unit) for e in sc.timeline(client, incident)]


async def make_idle_unit_unresponsive(url: str, client: redis.Redis, **kw: Any) -> None:
    """'idle' (nearest) lets two dispatches time out; 'spare' (3 km away) takes them over."""
    sc.units_east(client, LON, LAT, {"idle": 50.0, "spare": 3000.0, "other": 3200.0})
    for n, north in enumerate((0.0, 1000.0), start=1):
        assert await alarm_at(url, client, north, **kw) == str(n)
        assert sc.incident(client, str(n)).units == ["idle"]
        await time_out(url, client, **kw)
        assert "idle" not in sc.incident(client, str(n)).units


async def test_two_timeouts_in_a_row_take_a_unit_out_of_the_rotation(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await make_idle_unit_unresponsive(redis_url, sync_redis)
    idle = sc.unit(sync_redis, "idle")
    assert (idle.status, idle.missed, idle.missed_incident) == ("unresponsive", 2, "2")
    assert sync_redis.zscore(keys.UNITS_FREE_GEO, "idle") is None
    assert ("unresponsive", "idle") in events(sync_redis, "2")
    assert ("unresponsive", "idle") not in events(sync_redis, "1")  # one miss is not enough
    told = sc.inbox(sync_redis, "idle")[-1]  # the phone says why, and how to come back
    assert isinstance(told, wire.DispatchCancel) and "off duty and on duty" in told.reason
    # The only unit not busy, and the nearest, yet a new incident waits rather than go to it;
    # its phone reconnecting (on duty again, positions) is no answer: nobody tapped anything.
    sc.write(sync_redis, [sc.on_duty("idle", *sc.shifted(LON, LAT, east_m=50.0))])
    third = await alarm_at(redis_url, sync_redis, 2000.0)
    assert sc.incident(sync_redis, third).state == "escalated"
    assert sc.unit(sync_redis, "idle").status == "unresponsive"
    # Going off and on duty is the officer saying "I'm here": back in the rotation, it takes
    # the waiting incident.
    await sc.step(redis_url, sync_redis, sc.off_duty("idle"),
                  sc.on_duty("idle", *sc.shifted(LON, LAT, east_m=50.0)))  # fmt: skip
    assert sc.incident(sync_redis, third).units == ["idle"]
    assert sc.unit(sync_redis, "idle").missed == 0


async def test_an_answer_in_between_starts_the_count_again(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sc.units_east(sync_redis, LON, LAT, {"u1": 50.0, "u2": 3000.0})
    await alarm_at(redis_url, sync_redis, 0.0)
    await time_out(redis_url, sync_redis)  # one miss
    second = await alarm_at(redis_url, sync_redis, 1000.0)
    await sc.step(redis_url, sync_redis, sc.status("u1", second, "declined"))  # an answer
    assert sc.unit(sync_redis, "u1").missed == 0
    third = await alarm_at(redis_url, sync_redis, 2000.0)
    assert sc.incident(sync_redis, third).units == ["u1"]
    await time_out(redis_url, sync_redis)  # one miss again, not two
    assert sc.unit(sync_redis, "u1").status == "available"


async def test_the_setting_decides_how_many_misses(redis_url: str, sync_redis: redis.Redis) -> None:
    sc.units_east(sync_redis, LON, LAT, {"idle": 50.0, "spare": 3000.0, "other": 3200.0})
    for north in (0.0, 1000.0):
        await alarm_at(redis_url, sync_redis, north, unresponsive_after=0)
        await time_out(redis_url, sync_redis, unresponsive_after=0)
    assert sc.unit(sync_redis, "idle").status == "available"  # 0: never taken out


async def test_an_operator_restores_an_unresponsive_unit_and_it_is_audited(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    await make_idle_unit_unresponsive(redis_url, sync_redis)
    headers = bearer(operator_token("li.na"))
    async with gateway_client(redis_url) as client:
        units = await (await client.get("/api/units", headers=headers)).json()
        board = {u["id"]: u["status"] for u in units["units"]}
        assert board["idle"] == "unresponsive"
        answer = await client.post("/api/units/spare/restore", json={}, headers=headers)
        assert answer.status == 409  # only an unresponsive unit can be restored
        answer = await client.post("/api/units/ghost/restore", json={}, headers=headers)
        assert answer.status == 404
        answer = await client.post("/api/units/idle/restore", json={"reason": "reached by radio"},
                                   headers=headers)  # fmt: skip
        assert answer.status == 202, await answer.text()
    await sc.drain(redis_url)
    assert sc.unit(sync_redis, "idle").status == "available"
    restored = [e for e in sc.timeline(sync_redis, "2") if e.event == "restored"]
    assert [(e.unit, e.actor, e.detail) for e in restored] == [
        ("idle", "li.na", "reached by radio")
    ]
    audit: Any = sync_redis.xrange(keys.AUDIT)
    assert any(b"restored" in fields[b"m"] for _, fields in audit)
    fifth = await alarm_at(redis_url, sync_redis, -2000.0)
    assert sc.incident(sync_redis, fifth).units == ["idle"]


PASSWORD = "night-shift-2026"


@needs_chromium
async def test_the_console_shows_an_unresponsive_unit_and_restores_it(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    """The unit board puts it first, marked, with a Restore button (its dot on the map is in
    the legend's 'unresponsive' colour); restoring it asks why and is audited."""
    from playwright.async_api import async_playwright

    await make_idle_unit_unresponsive(redis_url, sync_redis)
    console = ConsoleSettings(users={"ada": Account(role="supervisor",
                                                    password=hash_password(PASSWORD))})  # fmt: skip
    async with gateway_client(redis_url, console=console) as client, async_playwright() as p:
        browser = await launch(p)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept("reached by radio")))
            await page.goto(str(client.make_url("/console/")))
            await page.fill("#login-name", "ada")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
            row = '#units li.u[data-id="idle"]'
            await page.wait_for_selector(f'{row}[data-status="unresponsive"]', timeout=10_000)
            first = await page.get_attribute("#units li.u >> nth=0", "data-id")
            assert first == "idle"  # needs attention: top of the board
            assert await page.inner_text(f"{row} .chip") == "unresponsive"
            await page.click(f"{row} button.restore")
            await page.wait_for_selector("#unit-summary:has-text('back into the rotation')")
            await sc.drain(redis_url)  # the dispatcher carries the command out
            await page.wait_for_selector(f'{row}[data-status="available"]', timeout=10_000)
            assert await page.locator(f"{row} button.restore").count() == 0
        finally:
            await browser.close()
    restored = [e for e in sc.timeline(sync_redis, "2") if e.event == "restored"]
    assert [(e.actor, e.detail) for e in restored] == [("ada", "reached by radio")]
