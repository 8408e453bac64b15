"""The command centre's history once Redis let old incidents go: the search reads the archive
for what Redis no longer holds (each incident once, the same filters, order and pages), an
archived incident's detail opens from the archive, and without an archive the console says it
searches Redis alone. The gateway's archive connections are a pool: a bad size stops it naming
the key, a database that is down is a 503 naming it, and the pool recovers when it is back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from browser import launch, needs_chromium
from hypothesis import given
from hypothesis import strategies as st
from test_console_archive import _drop_archived

from analytics.simulation import SimulatedIncident, Step, simulate_week, write_incidents
from archiver.service import Metrics, ZoneArchiver, migrate
from archiver.settings import ArchiverSettings
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.endings import FINAL
from gateway.history import (
    MAX_RESULTS,
    Cursor,
    Search,
    cursor,
    parse_cursor,
    parse_search,
)
from gateway.settings import GatewaySettings, check
from gateway.testing import TEST_SECRET, bearer, gateway_client, operator_token
from polewatch import keys
from polewatch.embedded_pg import EmbeddedPostgres
from polewatch.settings import SettingsError, load

WEEK = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DESK = bearer(operator_token("desk"))
PASSWORD = "night-shift-2026"
CONSOLE = ConsoleSettings(
    users={"ada": Account(role="supervisor", password=hash_password(PASSWORD))}
)
OLD_DAYS = 4
"""Incidents created in the week's first days were archived and then left Redis."""


def _finished(inc: SimulatedIncident) -> float | None:
    """When the incident finished as the history tells it (None: still open)."""
    ends = [inc.created + s.after for s in inc.steps if s.event == inc.state]
    return ends[0] if inc.state in FINAL else None


def _week(per_day: int) -> list[SimulatedIncident]:
    """``7 * per_day`` incidents: a Chinese and an English description, three still resolved
    (not yet closed), one still open, the rest closed or
    cancelled."""
    week = simulate_week(WEEK, seed=31, per_day=per_day)
    week[2].text = "电动车被盗 at the gate"
    week[25].text = "Broken WINDOW, shop front"
    for inc in week[-4:-1]:
        inc.steps = [s for s in inc.steps if s.event != "closed"]
    week[-1].steps = [Step("dispatched", 1.0, "unit-1")]
    return week


async def _archived_week(
    aredis: aioredis.Redis, database_url: str, per_day: int = 4
) -> list[SimulatedIncident]:
    """The week written, archived, one incident evaluated, and the old ones gone from Redis."""
    week = _week(per_day)
    await write_incidents(aredis, week)
    await aredis.hset(keys.incident(week[2].id), "evaluation", 4)
    settings = ArchiverSettings(database_url=database_url, batch=100)
    await ZoneArchiver(aredis, settings, keys.DEFAULT, Metrics()).run(burst=True)
    await _drop_archived(aredis, {i.id for i in _old(week)})
    return week


def _old(week: list[SimulatedIncident]) -> list[SimulatedIncident]:
    return [i for i in week if i.created < WEEK + OLD_DAYS * 86_400 and i.state in FINAL]


def _expected(week: list[SimulatedIncident], state: str = "any") -> list[str]:
    found = [(f, i.id) for i in week if (f := _finished(i)) is not None
             and (state == "any" or i.state == state)]  # fmt: skip
    return [iid for _, iid in sorted(found, reverse=True)]


async def _search(client: Any, **query: str) -> dict[str, Any]:
    answer = await client.get("/api/console/history", params=query, headers=DESK)
    assert answer.status == 200, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


async def _all_pages(client: Any, **query: str) -> list[str]:
    """Every incident of a search, page after page by ``next``."""
    ids: list[str] = []
    page = await _search(client, **query)
    while True:
        ids += [i["id"] for i in page["incidents"]]
        if page["next"] is None:
            return ids
        page = await _search(client, **query, before=page["next"])


async def test_an_incident_redis_let_go_is_found_and_opens_from_the_archive(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    week = await _archived_week(aredis, database_url)
    gone = week[2]
    assert not await aredis.exists(keys.incident(gone.id))
    async with gateway_client(redis_url, database_url=database_url) as client:
        found = await _search(client, q="电动车")
        assert found["archive"] is True
        (row,) = found["incidents"]
        assert (row["id"], row["archived"], row["finished"]) == (gone.id, True, _finished(gone))
        assert [i["id"] for i in (await _search(client, q="window"))["incidents"]] == [week[25].id]
        answer = await client.get(f"/api/incidents/{gone.id}", headers=DESK)
        assert answer.status == 200, await answer.text()
        detail = await answer.json()
    assert detail["archived"] is True
    assert detail["incident"]["evaluation"] == 4
    assert detail["incident"]["units"] == sorted({s.unit for s in gone.steps if s.unit})
    assert [e["event"] for e in detail["timeline"]] == ["new"] + [s.event for s in gone.steps]
    assert [a["text"] for a in detail["alarms"]] == [gone.text]


async def test_each_incident_shows_once_in_order_and_pages_across_both_sources(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    week = await _archived_week(aredis, database_url)
    both = [i for i in week if i not in _old(week) and i.state in ("closed", "cancelled")]
    assert both and all([await aredis.exists(keys.incident(i.id)) for i in both])
    async with gateway_client(redis_url, database_url=database_url) as client:
        whole = await _search(client, limit=str(MAX_RESULTS))
        assert [i["id"] for i in whole["incidents"]] == _expected(week)
        assert whole["next"] is None
        flags = {i["id"]: i["archived"] for i in whole["incidents"]}
        assert not any(flags[i.id] for i in both)  # Redis' copy while Redis has it
        assert all(flags[i.id] for i in _old(week))
        for limit in ("1", "5", "7"):
            assert await _all_pages(client, limit=limit) == _expected(week)
        for state in FINAL:
            assert await _all_pages(client, state=state, limit="4") == _expected(week, state)


async def test_without_an_archive_the_history_says_it_searches_redis_alone(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    week = await _archived_week(aredis, database_url)
    async with gateway_client(redis_url) as client:
        found = await _search(client, limit=str(MAX_RESULTS))
        assert found["archive"] is False
        old = {i.id for i in _old(week)}
        assert [i["id"] for i in found["incidents"]] == [
            iid for iid in _expected(week) if iid not in old
        ]
        answer = await client.get(f"/api/incidents/{week[2].id}", headers=DESK)
        assert answer.status == 404
        assert "no incident archive" in (await answer.json())["error"]


async def search_in_console(page: Any, base: str) -> None:
    """Log in to the console at ``base`` as the supervisor and search the whole history."""
    await page.goto(f"{base}/console/")
    await page.fill("#login-name", "ada")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.click("#history-form button[type=submit]")


@needs_chromium
async def test_the_console_pages_the_history_and_opens_an_archived_incident(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    from playwright.async_api import async_playwright, expect

    week = await _archived_week(aredis, database_url, per_day=8)
    expected = _expected(week)
    assert len(expected) > 50  # the console asks for 50 at a time
    async with gateway_client(redis_url, database_url=database_url, console=CONSOLE) as client:
        base = str(client.make_url("")).rstrip("/")
        async with async_playwright() as p:
            browser = await launch(p)
            try:
                page = await browser.new_page()
                await search_in_console(page, base)
                rows = page.locator("#history-list li.h")
                await expect(rows).to_have_count(50)
                await page.click("#history-more")
                await expect(rows).to_have_count(len(expected))
                assert await rows.evaluate_all("(r) => r.map((li) => li.dataset.id)") == expected
                await expect(page.locator("#history-more")).to_have_count(0)
                await expect(page.locator("#history-note")).to_be_hidden()
                await page.click(f"#history-list li[data-id='{week[2].id}']")
                await expect(page.locator("#detail-archived")).to_be_visible()
                await expect(page.locator("#timeline li")).to_have_count(len(week[2].steps) + 1)
            finally:
                await browser.close()


async def test_bad_history_queries_are_a_422_naming_the_parameter(redis_url: str) -> None:
    bad = [("state", "open"), ("limit", "0"), ("before", "yesterday"), ("q", "x" * 101),
           ("before", f"1.5/x~={2**64}-0"), ("before", "1.5/x~north=1-x"),
           ("before", "1.5/x~=(0-0")]  # fmt: skip
    async with gateway_client(redis_url) as client:
        for name, value in bad:
            answer = await client.get("/api/console/history", params={name: value},
                                      headers=DESK)  # fmt: skip
            assert answer.status == 422
            assert f"'{name}'" in (await answer.json())["error"]


@given(st.dictionaries(st.sampled_from(["state", "q", "limit", "before", "other"]), st.text()))
def test_the_history_query_parser_answers_every_query(query: dict[str, str]) -> None:
    try:
        search = parse_search(query)
    except ValueError as exc:
        assert str(exc).startswith("'")
        return
    assert isinstance(search, Search) and 1 <= search.limit <= MAX_RESULTS
    assert search.before is None or math.isfinite(search.before.key[0])


@given(st.floats(allow_nan=False, allow_infinity=False),
       st.from_regex(r"\A[A-Za-z0-9_.:@#/-]{0,128}\Z"),
       st.none() | st.dictionaries(st.from_regex(r"\A[a-z0-9_]{0,24}\Z"), st.builds(
           "{}{}-{}".format, st.sampled_from(["", "("]), st.integers(1, 2**64 - 1),
           st.integers(0, 2**64 - 1))))  # fmt: skip
def test_a_page_cursor_reads_back_as_written(
    finished: float, iid: str, positions: dict[str, str] | None
) -> None:
    at = Cursor((finished, iid), positions)
    if positions is None and not iid:
        return  # an older gateway's cursor always named an incident
    assert parse_cursor(cursor(at)) == at


def test_a_bad_pool_setting_stops_the_gateway_naming_the_key() -> None:
    env = {"POLEWATCH_SECRET": TEST_SECRET, "POLEWATCH_DATABASE_POOL_SIZE": "many"}
    with pytest.raises(SettingsError, match="database_pool_size"):
        load(GatewaySettings, section="gateway", env=env)
    with pytest.raises(SettingsError, match="database_pool_size"):
        check(GatewaySettings(secret=TEST_SECRET, database_pool_size=0))
    with pytest.raises(SettingsError, match="database_timeout_s"):
        check(GatewaySettings(secret=TEST_SECRET, database_timeout_s=0.0))


async def test_an_archive_that_goes_down_is_a_503_and_the_pool_recovers(
    redis_url: str, tmp_path: Path
) -> None:
    server = EmbeddedPostgres(tmp_path / "archive").start()
    try:
        await migrate(server.url)
        async with gateway_client(redis_url, database_url=server.url,
                                  database_timeout_s=1.0) as client:  # fmt: skip
            assert (await _search(client))["archive"] is True
            server.kill()  # every pooled connection is now broken
            answer = await client.get("/api/console/history", headers=DESK)
            assert answer.status == 503
            assert "incident archive" in (await answer.json())["error"]
            server.start()  # returns once the server answers
            for _ in range(60):  # each try waits up to database_timeout_s for a connection
                answer = await client.get("/api/console/history", headers=DESK)
                if answer.status == 200:
                    break
                assert answer.status == 503, await answer.text()
            assert answer.status == 200
    finally:
        server.remove()
