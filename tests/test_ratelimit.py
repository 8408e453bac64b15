"""Rate limits on the citizen door (gateway/ratelimit.py): a prank flood is stopped per client
and per pole, and a real alarm at another pole still goes through."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from gateway.ratelimit import Limiter, RateLimitSettings
from gateway.testing import TEST_POLES, gateway_client, store_poles
from polewatch import acl, keys

POLE_A, POLE_B = TEST_POLES[0].code, TEST_POLES[2].code


@pytest.fixture(autouse=True)
def behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test client is on loopback: make it a trusted proxy, so X-Forwarded-For names the
    caller, and exempt nobody."""
    monkeypatch.setenv("POLEWATCH_RATELIMIT_EXEMPT", "[]")
    monkeypatch.setenv("POLEWATCH_RATELIMIT_TRUSTED_PROXIES", '["127.0.0.1/32"]')


async def press(client: TestClient[Any, Any], pole: str, caller: str) -> tuple[int, Any]:
    resp = await client.post(
        "/api/alarms", json={"pole": pole}, headers={"X-Forwarded-For": caller}
    )
    return resp.status, (await resp.json(), resp.headers.get("Retry-After"))


async def test_a_flood_from_one_caller_is_stopped_and_another_pole_still_gets_help(
    redis_url: str,
) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        answers = [await press(client, POLE_A, "203.0.113.9") for _ in range(15)]
        assert [s for s, _ in answers] == [202] * 10 + [429] * 5
        (body, retry_after) = answers[-1][1]
        assert "too many alarms from your address" in body["error"]
        assert retry_after is not None and int(retry_after) >= 1
        # The flooder is stopped; a real caller at another pole is not.
        assert (await press(client, POLE_B, "198.51.100.7"))[0] == 202
        # Refused presses took nothing from the pole: the pole's own budget (10) is spent by
        # the ten accepted ones, so pole A now says help is already asked for.
        status, (body, _) = await press(client, POLE_A, "198.51.100.8")
        assert status == 429 and "help has been asked for there already" in body["error"]


async def test_a_flood_at_one_pole_from_many_callers_leaves_other_poles_alone(
    redis_url: str,
) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        statuses = [(await press(client, POLE_A, f"192.0.2.{n}"))[0] for n in range(1, 21)]
        assert statuses == [202] * 10 + [429] * 10
        assert (await press(client, POLE_B, "192.0.2.1"))[0] == 202
        assert (await press(client, TEST_POLES[3].code, "192.0.2.20"))[0] == 202


async def test_buckets_refill_and_are_shared_by_gateway_replicas(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLEWATCH_RATELIMIT_CLIENT_ALARMS_BURST", "2")
    monkeypatch.setenv("POLEWATCH_RATELIMIT_CLIENT_ALARMS_PER_MIN", "600")  # one per 0.1 s
    await store_poles(redis_url)
    async with gateway_client(redis_url) as one, gateway_client(redis_url) as other:
        caller = "203.0.113.50"
        assert (await press(one, POLE_A, caller))[0] == 202
        assert (await press(one, POLE_B, caller))[0] == 202
        assert (await press(other, TEST_POLES[1].code, caller))[0] == 429  # same bucket
        deadline = time.monotonic() + 5
        while (await press(other, TEST_POLES[3].code, caller))[0] != 202:
            assert time.monotonic() < deadline, "the bucket never refilled"


async def test_citizen_reads_have_their_own_looser_limit(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLEWATCH_RATELIMIT_CLIENT_READS_BURST", "5")
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        headers = {"X-Forwarded-For": "203.0.113.77"}
        statuses = [(await client.get(f"/p/{POLE_A}", headers=headers)).status for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        assert (await press(client, POLE_A, "203.0.113.77"))[0] == 202  # alarms: own bucket
        other = await client.get(f"/p/{POLE_A}", headers={"X-Forwarded-For": "203.0.113.78"})
        assert other.status == 200


async def test_loopback_callers_are_exempt_by_default(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLEWATCH_RATELIMIT_EXEMPT")
    monkeypatch.delenv("POLEWATCH_RATELIMIT_TRUSTED_PROXIES")
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        for pole in TEST_POLES:  # 4 poles x 5: past the client burst, under each pole's
            for _ in range(5):
                assert (await client.post("/api/alarms", json={"pole": pole.code})).status == 202


async def test_the_limiter_runs_as_the_gateway_acl_user(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    acl.apply(sync_redis, "gw-test", "gateway", "gw-secret-pass")
    await store_poles(redis_url)
    user_url = redis_url.replace("redis://", "redis://gw-test:gw-secret-pass@")
    async with gateway_client(user_url) as client:
        assert (await press(client, POLE_A, "203.0.113.1"))[0] == 202
    assert sync_redis.exists(keys.ratelimit("alarms", "203.0.113.1"))
    assert sync_redis.ttl(keys.ratelimit("pole", POLE_A)) > 0  # buckets expire once full
    sync_redis.acl_deluser("gw-test")


def limiter() -> Limiter:
    return Limiter(RateLimitSettings(ratelimit_trusted_proxies=("10.0.0.0/8", "127.0.0.1/32")))


@given(st.text(max_size=200), st.sampled_from(["127.0.0.1", "10.1.2.3", "203.0.113.4"]))
def test_any_forwarded_header_yields_a_caller_and_never_crashes(header: str, peer: str) -> None:
    headers = {"X-Forwarded-For": header} if header.isprintable() else {}
    request = make_mocked_request("POST", "/api/alarms", headers=headers)
    request._transport_peername = (peer, 1234)  # type: ignore[attr-defined]
    caller = limiter().client(request)
    assert isinstance(caller, str) and caller


def test_the_forwarded_client_is_the_rightmost_hop_no_proxy_added() -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.4, 10.0.0.2"}
    request = make_mocked_request("POST", "/api/alarms", headers=headers)
    request._transport_peername = ("10.0.0.1", 1234)  # type: ignore[attr-defined]
    assert limiter().client(request) == "203.0.113.4"  # 6.6.6.6 could be forged by the caller
    direct = make_mocked_request("POST", "/api/alarms", headers=headers)
    direct._transport_peername = ("198.51.100.1", 1)  # type: ignore[attr-defined]
    assert limiter().client(direct) == "198.51.100.1"  # an untrusted peer's header is ignored
