"""Console login: lockout with backoff per account and per address, shared by gateway
replicas through Redis, audited; tokens (sessions) expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import launch, needs_chromium

from gateway.auth import TokenError, mint, verify
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings, LoginLimits
from gateway.testing import TEST_SECRET, gateway_client
from polewatch import keys

PASSWORD = "correct horse battery staple"
USERS = {"ada": Account(role="supervisor", password=hash_password(PASSWORD))}


def console(**limits: Any) -> ConsoleSettings:
    return ConsoleSettings(users=USERS, login=LoginLimits(**limits))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    async with gateway_client(redis_url, console=console()) as client:
        yield client


async def attempt(client: TestClient[Any, Any], login: str, password: str) -> tuple[int, Any]:
    resp = await client.post("/api/console/login", json={"login": login, "password": password})
    return resp.status, (await resp.json(), resp.headers.get("Retry-After"))


async def audit_outcomes(redis: aioredis.Redis) -> list[str]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.LOGIN_AUDIT))
    return [fields[b"outcome"].decode() for _, fields in entries]


async def test_fifty_wrong_passwords_in_three_seconds_leave_the_account_locked(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    started = time.monotonic()
    statuses = []
    for _ in range(50):  # as fast as the gateway answers, within 3 s
        status, _ = await attempt(client, "ada", "guess")
        statuses.append(status)
    assert time.monotonic() - started < 3.0
    checked = statuses.count(401)
    assert statuses.count(429) == 50 - checked
    assert checked <= 8  # five free tries, then one per doubling pause
    # the 51st guess, even the right one, finds the account locked
    status, (body, retry) = await attempt(client, "ada", PASSWORD)
    assert status == 429 and "account" in body["error"]
    assert retry is not None and int(retry) >= 1
    outcomes = await audit_outcomes(aredis)
    assert outcomes.count("wrong") == checked and outcomes.count("locked") == 51 - checked


async def test_concurrent_guesses_cannot_slip_past_the_count(
    client: TestClient[Any, Any],
) -> None:
    answers = await asyncio.gather(*(attempt(client, "ada", f"guess{i}") for i in range(40)))
    statuses = [status for status, _ in answers]
    assert statuses.count(401) <= 6  # counted before the (slow) password check
    assert statuses.count(429) >= 34


async def test_the_lock_passes_and_a_success_clears_the_account(redis_url: str) -> None:
    async with gateway_client(redis_url, console=console(account_free=2, backoff_s=0.2)) as c:
        assert [(await attempt(c, "ada", "x"))[0] for _ in range(3)] == [401, 401, 401]
        status, (_, retry_after) = await attempt(c, "ada", PASSWORD)
        assert status == 429  # locked for 0.2 s, announced as whole seconds
        # Time is the subject: the lock passing. A client waits the Retry-After the gateway
        # named (whole seconds: 1 for the 0.2 s backoff_s), so the test does too.
        await asyncio.sleep(float(retry_after))
        assert (await attempt(c, "ada", PASSWORD))[0] == 200
        # cleared: the free attempts are back
        assert [(await attempt(c, "ada", "x"))[0] for _ in range(2)] == [401, 401]


async def test_one_address_guessing_many_accounts_is_locked(redis_url: str) -> None:
    async with gateway_client(redis_url, console=console(address_free=4)) as c:
        statuses = [(await attempt(c, f"user{i}", "x"))[0] for i in range(6)]
        assert statuses[:4] == [401] * 4 and 429 in statuses[4:]
        status, (body, _) = await attempt(c, "ada", PASSWORD)
        assert status == 429 and "address" in body["error"]


async def test_replicas_share_the_lockout(redis_url: str) -> None:
    async with (
        gateway_client(redis_url, console=console(account_free=3)) as one,
        gateway_client(redis_url, console=console(account_free=3)) as two,
    ):
        for c in (one, two, one, two):
            await attempt(c, "ada", "x")
        assert (await attempt(two, "ada", PASSWORD))[0] == 429
        assert (await attempt(one, "ada", PASSWORD))[0] == 429


async def test_a_right_password_gets_an_expiring_token(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    status, (session, _) = await attempt(client, "ada", PASSWORD)
    assert status == 200 and session["role"] == "supervisor"
    assert 0 < session["expires"] - time.time() <= 10 * 3600 + 5
    assert await audit_outcomes(aredis) == ["ok"]
    me = await client.get(
        "/api/console/me", headers={"Authorization": f"Bearer {session['token']}"}
    )
    assert me.status == 200
    expired = mint(TEST_SECRET, "supervisor", "ada", 1.0, now=time.time() - 10)
    with pytest.raises(TokenError, match="expired"):
        verify(TEST_SECRET, expired)
    me = await client.get("/api/console/me", headers={"Authorization": f"Bearer {expired}"})
    assert me.status == 401


@needs_chromium
async def test_the_console_says_when_to_try_again(redis_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    async with gateway_client(redis_url, console=console(account_free=1, backoff_s=60)) as c:
        base = str(c.make_url("")).rstrip("/")
        async with async_playwright() as p:
            browser = await launch(p)
            try:
                page = await browser.new_page(locale="en-US")
                await page.goto(f"{base}/console/")
                await page.fill("#login-name", "ada")
                for _ in range(2):
                    await page.fill("#login-password", "wrong")
                    await page.click("#login-submit")
                    await expect(page.locator("#login-error")).not_to_be_empty()
                await page.fill("#login-password", PASSWORD)
                await page.click("#login-submit")
                await expect(page.locator("#login-error")).to_contain_text("try again in 60 s")
                assert await page.locator("#app").is_hidden()
            finally:
                await browser.close()
