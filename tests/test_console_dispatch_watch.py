"""The command centre warns when dispatch is not keeping up: alarms, patrol answers or operators'
commands that wait for a dispatcher longer than ``dispatch_alert_s`` (nobody reads them, or a
replica read them and died holding them) put one line on every console, in the reader's
language, until they are done. Real Redis, real gateway and dispatcher, real Chromium."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from browser import ARTIFACTS, console_page, launch, needs_chromium
from test_console import dispatch_round, sse_event

from gateway.console.backlog import Waiting, behind
from gateway.console.settings import ConsoleSettings
from gateway.testing import TEST_POLES, gateway_client, operator_token, served_gateway, store_poles
from polewatch import keys, wire

POLE = TEST_POLES[0]
FUTIAN = keys.Zone("futian")
FAST = {"console": ConsoleSettings(dispatch_alert_s=0.3, dispatch_check_s=0.05)}
"""Warn after 0.3 s, checked every 50 ms: the tests wait for the warning, not for a clock."""


def alarm(n: int) -> dict[Any, Any]:
    message = wire.Alarm(id=f"watch-{n}", source="test", type="button", lon=POLE.lon,
                         lat=POLE.lat, ts=time.time(), pole=POLE.code)  # fmt: skip
    return wire.entry(message)


def aged(seconds: float, seq: int = 0) -> str:
    """A stream id written ``seconds`` ago."""
    return f"{int((time.time() - seconds) * 1000)}-{seq}"


async def test_alarms_no_dispatcher_ever_read_wait_from_their_first_entry(
    aredis: aioredis.Redis,
) -> None:
    await aredis.xadd(keys.ALARMS, alarm(1), id=aged(30))
    await aredis.xadd(keys.ALARMS, alarm(2), id=aged(5))
    [found] = await behind(aredis, [keys.DEFAULT], alert_s=10)
    assert (found.kind, found.count, found.exact, found.zones) == ("alarms", 2, True, [""])
    assert 29 <= found.age_s <= 40
    assert await behind(aredis, [keys.DEFAULT], alert_s=60) == []


async def test_what_a_dispatcher_holds_and_what_it_has_not_read_both_wait(
    aredis: aioredis.Redis,
) -> None:
    ids = [await aredis.xadd(keys.ALARMS, alarm(n), id=aged(age))
           for n, age in enumerate((40, 30, 20))]  # fmt: skip
    await aredis.xgroup_create(keys.ALARMS, keys.DISPATCH_GROUP, "0")
    # A replica read the oldest and died holding it: it waits as much as the unread ones.
    await aredis.xreadgroup(keys.DISPATCH_GROUP, "gone", {keys.ALARMS: ">"}, count=1)
    [found] = await behind(aredis, [keys.DEFAULT], alert_s=10)
    assert (found.kind, found.count, found.exact) == ("alarms", 3, True)
    assert found.age_s >= 39

    # All read and acknowledged: nothing waits, however old the entries.
    await aredis.xreadgroup(keys.DISPATCH_GROUP, "live", {keys.ALARMS: ">"})
    await aredis.xack(keys.ALARMS, keys.DISPATCH_GROUP, *ids)
    assert await behind(aredis, [keys.DEFAULT], alert_s=10) == []


async def test_a_count_redis_cannot_make_is_said_to_be_a_lower_bound(
    aredis: aioredis.Redis,
) -> None:
    for n, age in enumerate((40, 30, 20)):
        await aredis.xadd(keys.ALARMS, alarm(n), id=aged(age, n))
    await aredis.xgroup_create(keys.ALARMS, keys.DISPATCH_GROUP, "0")
    await aredis.xreadgroup(keys.DISPATCH_GROUP, "gone", {keys.ALARMS: ">"}, count=1)
    unread: Any = await aredis.xrange(keys.ALARMS, count=2)
    await aredis.xdel(keys.ALARMS, unread[1][0])  # deleted before the group read it
    [found] = await behind(aredis, [keys.DEFAULT], alert_s=10)
    assert found.exact is False and found.count >= 1


async def test_each_kind_names_the_zones_where_it_waits(aredis: aioredis.Redis) -> None:
    command = wire.Command(op="cancel", incident="futian-1", actor="ada", ts=time.time())
    await aredis.xadd(FUTIAN.commands, wire.entry(command), id=aged(20))  # type: ignore[arg-type]
    await aredis.xadd(FUTIAN.patrol_events, alarm(9), id=aged(1))  # young: not yet a warning
    found = await behind(aredis, [keys.DEFAULT, FUTIAN], alert_s=10)
    assert [(w.kind, w.count, w.zones) for w in found] == [("commands", 1, ["futian"])]


async def test_every_console_hears_the_warning_and_that_it_is_over(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url, **FAST) as client:
        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        assert (await sse_event(live, "picture"))["dispatch"] == []
        await aredis.xadd(keys.ALARMS, alarm(1))
        [warning] = await sse_event(live, "dispatch")
        assert (warning["kind"], warning["count"], warning["zones"]) == ("alarms", 1, [""])
        assert warning["age_s"] >= 0.3

        await dispatch_round(redis_url)
        while await sse_event(live, "dispatch"):  # the readings made before the round ended
            pass
        # A console that connects now gets the latest reading with its picture.
        again = await client.get(f"/api/console/live?token={operator_token('bo')}")
        assert (await sse_event(again, "picture"))["dispatch"] == []


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[str]:
    await store_poles(redis_url)
    async with served_gateway(redis_url, **FAST) as (host, port):
        yield f"http://{host}:{port}"


@needs_chromium
@pytest.mark.parametrize(
    ("locale", "words"),
    [("zh-CN", ("调度未跟上", "1 条报警等待调度")), ("en-US", ("Dispatch is not keeping up",
                                                        "alarms waiting for dispatch: 1"))],
)  # fmt: skip
async def test_the_console_shows_the_warning_in_its_language_until_dispatch_catches_up(
    gateway: str, redis_url: str, aredis: aioredis.Redis, locale: str, words: tuple[str, ...]
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await launch(p)
        try:
            page = await console_page(browser, gateway, locale)
            await page.wait_for_selector("#conn.live")
            banner = page.locator("#dispatch-alert")
            await expect(banner).to_be_hidden()
            await aredis.xadd(keys.ALARMS, alarm(1), id=aged(35))  # (its age, for the picture)
            await expect(banner).to_be_visible()
            for word in words:
                await expect(banner).to_contain_text(word)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"console-dispatch-behind-{locale}.png"))
            await dispatch_round(redis_url)
            await expect(banner).to_be_hidden()
        finally:
            await browser.close()


def test_a_waiting_reading_is_plain_json() -> None:
    """What the feed sends is what the page reads (no class names, no extra fields)."""
    import msgspec

    sent = msgspec.json.decode(msgspec.json.encode([Waiting("alarms", 2, True, 12.5, [""])]))
    assert sent == [{"kind": "alarms", "count": 2, "exact": True, "age_s": 12.5, "zones": [""]}]
