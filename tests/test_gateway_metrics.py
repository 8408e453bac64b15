"""The gateway's ``/metrics``: a group of processes (``--processes``) answers with every
process' figures whichever process takes the scrape, and only Prometheus gets them (the
``metrics_token`` bearer token, or without one the loopback interface only)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from test_fleet_processes import _connect, _listening

from gateway.metrics import LOOPBACK_ONLY, NEED_TOKEN, refusal
from gateway.settings import GatewaySettings, check
from gateway.testing import TEST_CITY, TEST_SECRET, bearer, gateway_client
from polewatch.embedded import free_port
from polewatch.settings import SettingsError

TOKEN = "scrape-token-0123456789"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus text answer."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no {name} {labels} in the answer")


async def test_a_group_of_processes_answers_with_the_figures_of_all_of_them(redis_url: str) -> None:
    port = free_port()
    env = dict(os.environ, POLEWATCH_REDIS_URL=redis_url, POLEWATCH_SECRET=TEST_SECRET,
               POLEWATCH_CITY=TEST_CITY, POLEWATCH_METRICS_TOKEN=TOKEN)  # fmt: skip
    cmd = [sys.executable, "-m", "polewatch.cli", "gateway", "--port", str(port)]
    group = await asyncio.create_subprocess_exec(*cmd, "--processes", "2", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        children = await _listening(group, port, 2)
        async with aiohttp.ClientSession() as units:  # the units stay connected throughout
            sockets = [await _connect(units, port, f"M{i}") for i in range(24)]
            assert len(sockets) == 24
            held = [
                sum(1 for c in child.net_connections("tcp")
                    if c.laddr.port == port and c.status == "ESTABLISHED")
                for child in children
            ]  # fmt: skip
            assert min(held) > 0, held  # both processes hold some of the units
            # a new connection per request, so the kernel spreads them over the processes
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                for _ in range(10):
                    assert (await s.get(f"{base}/api/openapi.json")).status == 200
                for _ in range(6):  # whichever process answers, it answers for the group
                    answer = await s.get(f"{base}/metrics", headers=bearer(TOKEN))
                    assert answer.status == 200
                    text = await answer.text()
                    assert sample(text, "polewatch_gateway_websocket_clients") == 24
                    assert sample(text, "polewatch_gateway_requests_total",
                                  route="/api/openapi.json", status="200") == 10  # fmt: skip
                refused = await s.get(f"{base}/metrics")
                assert refused.status == 401 and "metrics_token" in (await refused.json())["error"]
    finally:
        if group.returncode is None:
            group.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(group.wait(), 30) == 0


async def test_with_a_token_set_metrics_want_it(redis_url: str) -> None:
    async with gateway_client(redis_url, metrics_token=TOKEN) as client:
        missing = await client.get("/metrics")
        assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert "metrics_token" in (await missing.json())["error"]
        wrong = await client.get("/metrics", headers=bearer(TOKEN[:-1] + "x"))
        assert wrong.status == 401
        right = await client.get("/metrics", headers=bearer(TOKEN))
        assert right.status == 200
        assert sample(await right.text(), "polewatch_gateway_websocket_clients") == 0


async def test_without_a_token_metrics_answer_the_loopback_interface_only(
    redis_url: str,
) -> None:
    async with gateway_client(redis_url) as client:
        assert (await client.get("/metrics")).status == 200  # the test client is on loopback
        proxied = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status == 403 and "metrics_token" in (await proxied.json())["error"]
    assert refusal("10.1.2.3", {}, "") == LOOPBACK_ONLY
    assert refusal("203.0.113.9", {}, "") == LOOPBACK_ONLY
    assert refusal(None, {}, "") == LOOPBACK_ONLY
    assert refusal("::1", {}, "") is None and refusal("127.0.0.1", {}, "") is None
    assert refusal("10.1.2.3", {"Authorization": f"Bearer {TOKEN}"}, TOKEN) is None
    assert refusal("127.0.0.1", {}, TOKEN) == NEED_TOKEN  # a token set binds loopback too


@given(remote=st.one_of(st.none(), st.text(max_size=40)), auth=st.text(max_size=60))
def test_any_peer_and_authorization_header_is_answered_or_refused(
    remote: str | None, auth: str
) -> None:
    refused = refusal(remote, {"Authorization": auth}, TOKEN)
    assert (refused is None) == (auth.partition(" ")[2] == TOKEN
                                 and auth.partition(" ")[0].lower() == "bearer")  # fmt: skip
    assert refusal(remote, {"Authorization": auth}, "") in (None, LOOPBACK_ONLY)


@pytest.mark.parametrize("token", ["short", "sixteen chars ok", "tab\tinside-0123456789"])
def test_a_bad_metrics_token_fails_at_start_naming_the_key(token: str) -> None:
    with pytest.raises(SettingsError, match="'metrics_token'"):
        check(GatewaySettings(secret=TEST_SECRET, metrics_token=token))


def test_the_command_refuses_a_bad_metrics_token_before_serving() -> None:
    env = dict(os.environ, POLEWATCH_SECRET=TEST_SECRET, POLEWATCH_METRICS_TOKEN="short")
    cmd = [sys.executable, "-m", "polewatch.cli", "gateway", "--port", str(free_port())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "'metrics_token'" in done.stderr
