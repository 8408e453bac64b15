"""The citizen door in a real browser (Debian's chromium driven by Playwright): another site's
page (on another loopback port) cannot raise an alarm or act for a signed-in operator, and the
pole's own page sends the phone's position when the citizen allows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from browser import launch, needs_chromium
from waiting import until_notified

from gateway.testing import TEST_POLES, served_gateway, store_poles, stream_alarms
from polewatch import keys

playwright_api = pytest.importorskip("playwright.async_api")

POLE = TEST_POLES[0]

pytestmark = needs_chromium

EVIL_PAGE = """<!doctype html><html><body>
<form id="f" method="post" action="{gateway}/api/alarms" enctype="text/plain" target="sink">
<input name='{{"pole":"{pole}","x":"' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
window.results = {{}};
const body = JSON.stringify({{pole: "{pole}"}});
async function attempt(name, path, init) {{
  try {{ const r = await fetch("{gateway}" + path, init); results[name] = "status " + r.status; }}
  catch (e) {{ results[name] = "blocked"; }}
}}
const plain = {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}};
(async () => {{
  await attempt("json", "/api/alarms",
                {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}});
  await attempt("simple", "/api/alarms", plain);
  await attempt("cancel", "/api/incidents/I1/cancel?token=stolen", plain);
  document.getElementById("f").submit();
  results.done = true;
}})();
</script></body></html>"""


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[str]:
    await store_poles(redis_url)
    async with served_gateway(redis_url) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture
async def evil_site(gateway: str) -> AsyncIterator[str]:
    """Another origin: the same loopback address on another port."""
    page = EVIL_PAGE.format(gateway=gateway, pole=POLE.code)
    seen: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


async def stream_length(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return int(await client.xlen(keys.ALARMS))
    finally:
        await client.aclose()


async def test_another_sites_page_cannot_raise_alarms(
    redis_url: str, gateway: str, evil_site: str
) -> None:
    from playwright.async_api import async_playwright

    answered: list[tuple[str, int]] = []
    more = asyncio.Condition()

    async def on_response(response: Any) -> None:
        if "/api/" in response.url:
            answered.append((response.request.method, response.status))
            async with more:
                more.notify_all()

    def posts_answered() -> bool:  # simple, cancel, form
        return len([a for a in answered if a[0] == "POST"]) >= 3

    async with async_playwright() as p:
        browser = await launch(p)
        try:
            page = await browser.new_page()
            page.on("response", on_response)
            await page.goto(evil_site)
            await page.wait_for_function("window.results && window.results.done")
            results = await page.evaluate("window.results")
            await until_notified(more, posts_answered, "three POSTs answered", 10)
        finally:
            await browser.close()
    assert results["json"] == "blocked"  # the preflight finds no CORS
    assert results["simple"] == results["cancel"] == "status 0"  # opaque: sent, unreadable
    assert {status for method, status in answered if method == "POST"} == {403}
    assert await stream_length(redis_url) == 0


async def test_the_pole_page_sends_the_phones_position(redis_url: str, gateway: str) -> None:
    from playwright.async_api import async_playwright

    far: Any = {"latitude": POLE.lat, "longitude": POLE.lon + 0.12}  # about 12 km east
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            allowed = await browser.new_context(permissions=["geolocation"], geolocation=far)
            page = await allowed.new_page()
            await page.goto(f"{gateway}/p/{POLE.code}")
            await page.click("#help")
            await page.wait_for_selector("#steps li.done")
            refused = await browser.new_context()  # no permission: help goes out without it
            page = await refused.new_page()
            await page.goto(f"{gateway}/p/{TEST_POLES[1].code}")
            await page.click("#help")
            await page.wait_for_selector("#steps li.done")
        finally:
            await browser.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        alarms = {a.pole: a for a in await stream_alarms(client)}
    finally:
        await client.aclose()
    with_position: dict[str, Any] = dict(alarms[POLE.code].extra)
    assert with_position["caller_far_m"] > 11_000
    assert abs(with_position["caller_lon"] - far["longitude"]) < 1e-6
    assert alarms[TEST_POLES[1].code].extra == {}
