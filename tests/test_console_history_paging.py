"""The command centre's history finds whatever Redis holds, however far back its end lies in
the audit stream: a page reads at most ``history_scan`` entries and, when it has not reached
the stream's end, gives a cursor to go on (even when it found nothing), saying how far back it
has searched. Page after page, every finished incident shows exactly once, in order, with or
without an archive, across zones, whatever the page size and the read budget."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import redis.asyncio as aioredis
from browser import launch, needs_chromium
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_console_history_archive import (
    CONSOLE,
    DESK,
    WEEK,
    _archived_week,
    _expected,
    _finished,
    _old,
    _week,
    search_in_console,
)

from analytics.simulation import SimulatedIncident, Step, write_incidents
from archiver.service import Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from gateway.archive import searching
from gateway.endings import FINAL
from gateway.history import MAX_RESULTS
from gateway.settings import GatewaySettings, check
from gateway.state import GATEWAY
from gateway.testing import TEST_SECRET, gateway_client
from polewatch import keys, wire
from polewatch.settings import SettingsError
from polewatch.zones import ZoneMap

FILLER_START = WEEK + 8 * 86_400
SHENZHEN = ZoneInfo("Asia/Shanghai")


async def _fill(redis: aioredis.Redis, count: int, step: float = 0.01) -> None:
    """``count`` audit entries after everything else, ``step`` seconds apart: dispatches, and
    every tenth the close of an incident Redis no longer holds (no hash: nothing to show)."""
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            closed = n % 10 == 0
            event = wire.IncidentEvent(
                incident=f"gone-{n}" if closed else "busy-1",
                event="closed" if closed else "dispatched",
                ts=FILLER_START + n * step,
            )
            fields: dict[Any, Any] = wire.entry(event)  # redis-py's stubs take no bytes dict
            pipe.xadd(keys.AUDIT, fields)
        await pipe.execute()


async def _page(client: Any, **query: str) -> dict[str, Any]:
    answer = await client.get("/api/console/history", params=query, headers=DESK)
    assert answer.status == 200, await answer.text()
    body: dict[str, Any] = await answer.json()
    assert len(body["incidents"]) <= int(query.get("limit", "50"))
    assert (body["next"] is None) == (body["searched_to"] is None)
    return body


async def _pages(client: Any, **query: str) -> list[list[str]]:
    """The ids of every page of a search, following ``next`` to the end."""
    pages: list[list[str]] = []
    body = await _page(client, **query)
    while True:
        pages.append([i["id"] for i in body["incidents"]])
        if body["next"] is None:
            return pages
        assert len(pages) < 1000, "the search never ends"
        body = await _page(client, **query, before=body["next"])


def _joined(pages: list[list[str]]) -> list[str]:
    ids = [iid for page in pages for iid in page]
    assert len(ids) == len(set(ids)), "an incident shows twice"
    return ids


async def test_a_resolved_incident_past_the_first_20000_entries_is_found_by_paging(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    week = _week(4)
    target = week[-2]  # resolved, never archived: Redis alone has it
    assert target.state == "resolved"
    target.text = "lost bicycle, 自行车"
    await write_incidents(aredis, [target])
    await _fill(aredis, 25_000)
    async with gateway_client(redis_url, history_scan=20_000) as client:
        first = await _page(client, q="自行车")
        assert first["incidents"] == [] and first["next"] is not None
        assert first["searched_to"] >= FILLER_START  # it has not got past the filler yet
        assert await _pages(client, q="自行车") == [[], [target.id]]
        assert await _pages(client, state="resolved", limit="1") == [[], [target.id]]


async def test_every_incident_shows_once_in_order_through_a_long_stream_with_the_archive(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    week = await _archived_week(aredis, database_url)
    await _fill(aredis, 25_000)
    old = {i.id for i in _old(week)}
    async with gateway_client(redis_url, database_url=database_url,
                              history_scan=20_000) as client:  # fmt: skip
        pages = await _pages(client, limit=str(MAX_RESULTS))
        assert pages[0] == []  # the archive's are older than what the first page searched
        assert _joined(pages) == _expected(week)
        for state in FINAL:
            assert _joined(await _pages(client, state=state, limit="7")) == _expected(week, state)
        found = _joined(await _pages(client, q="电动车"))
        assert found == [week[2].id] and week[2].id in old
    async with gateway_client(redis_url, history_scan=20_000) as client:
        pages = await _pages(client, limit=str(MAX_RESULTS))
        assert _joined(pages) == [iid for iid in _expected(week) if iid not in old]


async def _ended_together(redis: aioredis.Redis, ts: float) -> list[str]:
    """Incidents 7001 and 7002 cancelled at ``ts`` (in one call of the dispatcher: one time),
    the time kept in their hashes to the microsecond, as the dispatcher keeps it."""
    base = _week(4)[0]
    both = [msgspec.structs.replace(base, id=iid, created=ts, steps=[Step("cancelled", 0.0)])
            for iid in ("7001", "7002")]  # fmt: skip
    await write_incidents(redis, both)
    for inc in both:
        await redis.hset(keys.incident(inc.id), "t_cancelled", f"{ts:.6f}")
    return ["7002", "7001"]


async def test_a_full_page_ending_inside_one_instant_leaves_nothing_of_it_behind(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    ts = WEEK + 3600.1234562
    assert float(f"{ts:.6f}") < ts  # the hashes' time is a little before the events'
    both = await _ended_together(aredis, ts)
    async with gateway_client(redis_url) as client:
        assert await _pages(client, limit="1") == [[both[0]], [both[1]]]


async def test_a_page_that_stops_reading_inside_one_instant_leaves_nothing_of_it_behind(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    ts = WEEK + 3600.1234567
    assert float(f"{ts:.6f}") > ts  # the hashes' time is a little after the events'
    both = await _ended_together(aredis, ts)
    await _fill(aredis, 5)
    async with gateway_client(redis_url, history_scan=6) as client:  # 7002's end, not 7001's
        assert _joined(await _pages(client)) == both


def test_a_bad_read_budget_stops_the_gateway_naming_the_key() -> None:
    for bad in (0, 10_000_001):
        with pytest.raises(SettingsError, match="history_scan"):
            check(GatewaySettings(secret=TEST_SECRET, history_scan=bad))


async def test_only_the_history_search_runs_without_parallel_workers(
    redis_url: str, database_url: str
) -> None:
    show = "SHOW max_parallel_workers_per_gather"
    async with gateway_client(redis_url, database_url=database_url,
                              database_pool_size=1) as client:  # fmt: skip
        gw = client.app[GATEWAY]
        async with searching(gw) as conn:
            assert await (await conn.execute(show)).fetchone() == ("0",)
        assert gw.archive is not None
        async with gw.archive.connection() as conn:  # the same one, as the reports get it
            assert await (await conn.execute(show)).fetchone() != ("0",)


def _zoned_city(zones: ZoneMap) -> list[SimulatedIncident]:
    week = _week(4)
    out = [msgspec.structs.replace(i, id=f"{zones.locate(i.lon, i.lat)}-{i.id}") for i in week]
    assert len({i.id.rpartition("-")[0] for i in out}) > 1
    return out


async def _archive_zones(
    redis: aioredis.Redis, database_url: str, week: list[SimulatedIncident], zones: ZoneMap
) -> set[str]:
    """The closed and cancelled incidents archived; those of the week's first days then gone
    from Redis (hash and audit entries), as retention and the audit stream's cap do."""
    settings = ArchiverSettings(database_url=database_url, batch=100)
    for name in zones.names:
        await ZoneArchiver(redis, settings, keys.zone(name), Metrics()).run(burst=True)
    gone = {i.id for i in _old(week)}
    for name in zones.names:
        zone = keys.zone(name)
        entries: Any = await redis.xrange(zone.audit)
        drop = [e for e, f in entries
                if wire.decode_entry(f, wire.IncidentEvent).incident in gone]  # fmt: skip
        if drop:
            await redis.xdel(zone.audit, *drop)
    for iid in gone:
        await redis.delete(keys.zone_of_incident(iid).incident(iid))
    return gone


@pytest.fixture
def zoned_city(redis_url: str, database_url: str, zones_file: Path) -> list[SimulatedIncident]:
    """A week in two zones, its t_<state> kept to the microsecond as the dispatcher keeps them,
    archived, the first days gone from Redis; written once for all of a test's examples."""
    zones = ZoneMap.load(zones_file)
    week = _zoned_city(zones)

    async def write() -> None:
        async with aioredis.Redis.from_url(redis_url) as redis:
            await write_incidents(redis, week, zones=zones)
            for inc in week:
                if (finished := _finished(inc)) is not None:
                    zone = keys.zone_of_incident(inc.id)
                    await redis.hset(zone.incident(inc.id), f"t_{inc.state}", f"{finished:.6f}")
            await _archive_zones(redis, database_url, week, zones)

    asyncio.run(write())
    return week


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 9), budget=st.integers(1, 120), archive=st.booleans())
def test_no_incident_shows_twice_or_goes_missing_whatever_the_page_size_and_budget(
    redis_url: str,
    database_url: str,
    zones_file: Path,
    zoned_city: list[SimulatedIncident],
    limit: int,
    budget: int,
    archive: bool,
) -> None:
    more = {"database_url": database_url} if archive else {}

    async def every_page() -> list[list[str]]:
        async with gateway_client(redis_url, zones=str(zones_file), history_scan=budget,
                                  **more) as client:  # fmt: skip
            return await _pages(client, limit=str(limit))

    ids = _joined(asyncio.run(every_page()))
    gone = {i.id for i in _old(zoned_city)} if not archive else set()
    assert ids == [i for i in _expected(zoned_city) if i not in gone]


def _shenzhen(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, SHENZHEN).strftime("%H:%M")


@needs_chromium
@pytest.mark.parametrize(("locale", "searched"),
                         [("en-US", "Searched back to"), ("zh-CN", "已搜索至")])  # fmt: skip
async def test_the_console_offers_more_and_says_how_far_back_it_searched(
    redis_url: str, aredis: aioredis.Redis, locale: str, searched: str
) -> None:
    from playwright.async_api import async_playwright, expect

    target = _week(4)[-2]
    await write_incidents(aredis, [target])
    await _fill(aredis, 120, step=600.0)  # each page's edge at another minute
    async with gateway_client(redis_url, console=CONSOLE, history_scan=50) as client:
        edges = []  # how far back each page has searched, as the API says
        body = await _page(client)
        while body["next"] is not None:
            assert body["incidents"] == []
            edges.append(body["searched_to"])
            body = await _page(client, before=body["next"])
        assert [i["id"] for i in body["incidents"]] == [target.id] and len(edges) >= 2
        base = str(client.make_url("")).rstrip("/")
        async with async_playwright() as p:
            browser = await launch(p)
            try:
                context = await browser.new_context(locale=locale, timezone_id="UTC")
                page = await context.new_page()
                await search_in_console(page, base)
                line, rows = page.locator("#history-searched"), page.locator("#history-list li.h")
                for edge in edges:
                    await expect(line).to_be_visible()
                    await expect(line).to_contain_text(searched)
                    await expect(line).to_contain_text(_shenzhen(edge))  # not the browser's UTC
                    await expect(rows).to_have_count(0)
                    await expect(page.locator("#history-more")).to_be_in_viewport()
                    await page.click("#history-more")
                await expect(rows).to_have_count(1)
                await expect(
                    page.locator(f"#history-list li[data-id='{target.id}']")
                ).to_be_visible()
                await expect(page.locator("#history-more")).to_have_count(0)
                await expect(line).to_be_hidden()
                await expect(page.locator("#history-note")).to_be_visible()
            finally:
                await browser.close()
