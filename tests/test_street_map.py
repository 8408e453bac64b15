"""The offline street map in a real browser (Debian's chromium, WebGL through SwiftShader):
the command centre at city and street zoom with the streets' Chinese names and the
OpenStreetMap notice, the patrol app with a road route, and the proof that the console, the
patrol app and the citizen page fetch nothing from outside the gateway.

Screenshots go to ``artifacts/screenshots/``; ``PW_MAP_SCREENSHOTS=docs/screenshots`` (a
folder) writes the documentation's copies there as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from aiohttp import web
from browser import launch, needs_chromium, signed_in

from gateway.console.settings import ConsoleSettings
from gateway.testing import (
    TEST_CITY,
    TEST_POLES,
    served_gateway,
    store_poles,
    unit_token,
)
from polewatch import keys
from polewatch.roads import RoadStore, build_network, read_roads, to_geojson

playwright_api = pytest.importorskip("playwright.async_api")

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
FUTIAN_STREET = (114.0545, 22.5415)
"""Shennan Boulevard (深南大道) at Futian: a street every operator knows."""
SCENE = (114.0600, 22.5420)
UNIT = (114.0400, 22.5430)
"""A unit 2 km west of the scene along Shennan Boulevard."""
SCENE_UNITS = [(114.0512, 22.5436, "available"), (114.0580, 22.5412, "dispatched"),
               (114.0455, 22.5398, "busy"), (114.0620, 22.5445, "available")]  # fmt: skip
SCENE_INCIDENTS = [(114.0560, 22.5420, 1, "new"), (114.0498, 22.5385, 2, "dispatched"),
                   (114.0640, 22.5430, 3, "new")]  # fmt: skip
CJK = re.compile(r"[\u4e00-\u9fff]")

pytestmark = needs_chromium

SETTLED = """m => new Promise((done) => {
  const check = () => (m.gl.loaded() && !m.gl.isMoving() ? done(true) : m.gl.once('idle', check));
  check();
})"""
"""Resolves once MapLibre has drawn everything of the current view."""
RENDERED = """([m, layers]) => m.gl.queryRenderedFeatures({ layers })
  .map((f) => f.properties.name || f.properties.code || '')"""


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[str]:
    """The real gateway on a loopback port; its base URL."""
    await store_poles(redis_url, TEST_POLES)
    async with served_gateway(redis_url) as (host, port):
        yield f"http://{host}:{port}"


async def store_roads(redis: Any, data_dir: Path) -> None:
    """Central Shenzhen's roads imported as ``polewatch roads import`` stores them."""
    report = read_roads([data_dir / "roads" / "shenzhen_central_roads.geojson"])
    network = build_network(report.ways, city=TEST_CITY)
    await RoadStore(redis, TEST_CITY).store(network, to_geojson(report.ways))


async def live_scene(redis: Any) -> None:
    """Stand in for the dispatcher (the records' contract, :mod:`polewatch.records`): units on
    duty along Shennan Boulevard and a few open incidents, so the map has live layers."""
    now = time.time()
    for n, (lon, lat, status) in enumerate(SCENE_UNITS):
        unit = f"P-{n + 1}"
        await redis.sadd(keys.DEFAULT.units, unit)
        await redis.hset(keys.DEFAULT.unit(unit), mapping={
            "id": unit, "duty": "on_duty", "status": status, "lon": lon, "lat": lat, "seen": now,
        })  # fmt: skip
    for n, (lon, lat, priority, state) in enumerate(SCENE_INCIDENTS):
        iid = f"I{n + 1}"
        await redis.zadd(keys.DEFAULT.incidents_open, {iid: now + n})
        await redis.hset(keys.DEFAULT.incident(iid), mapping={
            "id": iid, "state": state, "priority": priority, "type": "citizen_sos",
            "group": "citizen_sos", "lon": lon, "lat": lat, "created": now, "reports": 1,
            "units": "P-2" if state == "dispatched" else "", "wanted": 1, f"t_{state}": now,
        })  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        launched = await launch(pw, webgl=True)
        try:
            yield launched
        finally:
            await launched.close()


async def page_on(browser: Any, size: dict[str, int]) -> tuple[Any, list[str], list[str]]:
    """A new page, the URLs of every request it makes and every CSP violation it reports."""
    context = await browser.new_context(viewport=size, service_workers="block")
    page = await context.new_page()
    requests: list[str] = []
    violations: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    return page, requests, violations


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name))
    if folder := os.environ.get("PW_MAP_SCREENSHOTS"):
        await page.screenshot(path=str(Path(folder) / name))


def only_from(base: str, requests: list[str]) -> list[str]:
    """The requests that went anywhere but the gateway (blob: and data: stay in the page)."""
    origin = urlsplit(base)
    return [
        u
        for u in requests
        if urlsplit(u).scheme not in ("blob", "data")
        and (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)
    ]


async def test_console_map_draws_streets_with_chinese_names_from_the_gateway_only(
    gateway: str, aredis: Any, data_dir: Path, browser: Any
) -> None:
    await store_roads(aredis, data_dir)
    await live_scene(aredis)
    page, requests, violations = await page_on(browser, {"width": 1440, "height": 900})
    await signed_in(page, gateway)
    await page.wait_for_selector("#map[data-roads=loaded]", timeout=30_000)
    street_map = await page.evaluate_handle("document.getElementById('map').streetMap")
    await page.wait_for_function(
        "m => m.gl.querySourceFeatures('districts').length > 0", arg=street_map
    )
    await page.evaluate(SETTLED, street_map)

    # City zoom: the arterials of the whole city and the district names, with the notice.
    city_zoom = await page.evaluate("m => m.zoom", street_map)
    assert city_zoom < 12.5
    roads = await page.evaluate(RENDERED, [street_map, ["road-motorway", "road-primary"]])
    assert len(roads) > 200
    attribution = page.locator(".maplibregl-ctrl-attrib")
    assert "© OpenStreetMap contributors" in await attribution.inner_text()
    assert await attribution.is_visible()
    await shot(page, "command-centre-city.png")

    # Street zoom: the streets carry their Chinese names, the poles show.
    await page.evaluate("([m, c]) => m.setView(c, 16.4)", [street_map, list(FUTIAN_STREET)])
    await page.evaluate(SETTLED, street_map)
    await page.wait_for_selector(
        "#map[data-incidents~='I1'][data-incidents~='I2']", state="attached"
    )
    names = await page.evaluate(RENDERED, [street_map, ["road-names"]])
    assert any(CJK.search(n) for n in names), names
    assert "深南大道" in names
    await shot(page, "command-centre-street.png")

    # The dispatched incident's detail: its unit's route along the streets.
    async with page.expect_response(lambda r: "/api/route?" in r.url) as routed:
        await page.click("#queue li[data-id=I2]")
    answer = await (await routed.value).json()
    assert answer["source"] == "road" and len(answer["coords"]) > 2, answer
    figures = page.locator("#detail [data-road-unit='P-2']")
    await figures.filter(has_text="by road").wait_for()
    assert re.fullmatch(r"\d+(\.\d)? k?m by road, about \d+ min", await figures.inner_text())
    await page.wait_for_function(
        "m => m.gl.querySourceFeatures('routes').length > 0", arg=street_map
    )

    assert only_from(gateway, requests) == []
    assert any("/console/static/vendor/maplibre-gl-worker.mjs" in u for u in requests)
    assert violations == []


async def test_citizen_page_fetches_nothing_from_elsewhere(gateway: str, browser: Any) -> None:
    page, requests, violations = await page_on(browser, {"width": 390, "height": 800})
    await page.goto(f"{gateway}/p/{TEST_POLES[0].code}")
    await page.wait_for_load_state("networkidle")
    assert requests[0].startswith(gateway)
    assert only_from(gateway, requests) == []
    assert violations == []


async def test_patrol_app_shows_the_road_route_and_eta(
    gateway: str, aredis: Any, data_dir: Path, browser: Any
) -> None:
    await store_roads(aredis, data_dir)
    job = {"k": "dispatch", "incident": "I-42", "type": "call", "priority": 2,
           "lon": SCENE[0], "lat": SCENE[1], "ack_by": 0, "phase": "en_route"}  # fmt: skip
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, service_workers="block",
        geolocation={"longitude": UNIT[0], "latitude": UNIT[1]}, permissions=["geolocation"],
    )  # fmt: skip
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await page.add_init_script(
        f"localStorage.setItem('pw.patrol.job', {json.dumps(json.dumps(job))})"
    )
    await page.goto(f"{gateway}/patrol/?token={unit_token('P-7')}")
    await page.wait_for_selector("#minimap[data-roads=loaded]", timeout=30_000)
    road = page.locator("#job-road")
    await road.wait_for(state="visible")
    assert re.fullmatch(r"\d+\.\d km by road, about \d+ min", await road.inner_text())
    street_map = await page.evaluate_handle("document.getElementById('minimap').streetMap")
    await page.wait_for_function(
        "m => m.gl.querySourceFeatures('routes').length > 0", arg=street_map
    )
    await page.evaluate(SETTLED, street_map)
    drawn = await page.evaluate(
        "m => m.gl.querySourceFeatures('routes')[0].geometry.coordinates.length", street_map
    )
    assert drawn > 2  # along the streets, not the straight line
    await page.locator(".minimap").scroll_into_view_if_needed()
    await shot(page, "patrol-route.png")
    assert any("/api/route?" in u for u in requests)
    assert only_from(gateway, requests) == []


async def test_console_without_webgl_falls_back_to_the_flat_map(gateway: str) -> None:
    async with playwright_api.async_playwright() as pw:
        browser = await launch(pw, "--disable-3d-apis")
        try:
            page, requests, violations = await page_on(browser, {"width": 1280, "height": 720})
            await signed_in(page, gateway)
            await page.wait_for_selector("#map[data-map=flat]", state="attached")
            await page.wait_for_selector("#conn.live")
            assert await page.locator(".streets").count() == 0
            assert only_from(gateway, requests) == []
            assert violations == []
        finally:
            await browser.close()


def test_bench_map_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from polewatch.cli import main

    assert main(["bench", "map", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["bench"] == "map" and figures["units"] == 300
    for case in ("city_0_units", "city_300_units", "street_0_units", "street_300_units"):
        assert (
            figures[case]["frames"] > 3 and 0 < figures[case]["p50_ms"] <= figures[case]["p95_ms"]
        )
    assert figures["city_300_units"]["unit_layer_p95_ms"] > 0
    assert "SwiftShader" in figures["renderer"]


@contextlib.asynccontextmanager
async def tile_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A raster tile server on another origin (another port): its URL template and the paths
    it was asked for."""
    asked: list[str] = []
    ok, png = cv2.imencode(".png", np.full((256, 256, 3), 40, np.uint8))
    assert ok

    async def tile(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=png.tobytes(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{z}/{x}/{y}.png", tile)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png", asked
    finally:
        await runner.cleanup()


async def test_a_configured_tile_url_draws_under_the_streets(redis_url: str, browser: Any) -> None:
    async with tile_server() as (template, asked):
        console = ConsoleSettings(tile_url=template)
        async with served_gateway(redis_url, console=console) as (host, port):
            gateway = f"http://{host}:{port}"
            page, requests, violations = await page_on(browser, {"width": 1024, "height": 700})
            await signed_in(page, gateway)
            await page.wait_for_selector("#map[data-roads=loaded]", timeout=30_000)
            street_map = await page.evaluate_handle("document.getElementById('map').streetMap")
            await page.evaluate(SETTLED, street_map)
    assert asked and all(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in asked)
    tiles_origin = template.split("/{z}")[0]
    assert [u for u in only_from(gateway, requests) if not u.startswith(tiles_origin)] == []
    assert violations == []


KEPT_ETAG = """() => caches.match('/api/console/map/roads')
  .then((kept) => (kept ? kept.headers.get('ETag') : null))"""
"""The ETag of the service worker's copy of the road document (``null``: none kept)."""


async def test_patrol_app_keeps_its_streets_offline(
    gateway: str, aredis: Any, data_dir: Path, browser: Any
) -> None:
    """A phone that reloads the patrol app without signal still draws the streets: the service
    worker keeps the road document (with its ETag) from the last load that had a network."""
    await store_roads(aredis, data_dir)
    job = {"k": "dispatch", "incident": "I-43", "type": "call", "priority": 2,
           "lon": SCENE[0], "lat": SCENE[1], "ack_by": 0, "phase": "en_route"}  # fmt: skip
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        geolocation={"longitude": UNIT[0], "latitude": UNIT[1]}, permissions=["geolocation"],
    )  # fmt: skip
    page = await context.new_page()
    await page.add_init_script(
        f"localStorage.setItem('pw.patrol.job', {json.dumps(json.dumps(job))})"
    )
    roads = "m => m.gl.querySourceFeatures('roads').length"
    await page.goto(f"{gateway}/patrol/?token={unit_token('P-8')}")
    await page.wait_for_function("() => !!navigator.serviceWorker?.controller")
    await page.reload()  # now under the worker: this load's road document is kept
    await page.wait_for_selector("#minimap[data-roads=loaded]", timeout=30_000)
    kept = await page.evaluate(KEPT_ETAG)
    assert kept and kept.startswith('"')  # the gateway's ETag, kept with the document
    await context.set_offline(True)
    served: list[bool] = []

    def answered(response: Any) -> None:
        if "/map/roads" in response.url:
            served.append(response.from_service_worker)

    page.on("response", answered)
    await page.reload()
    await page.wait_for_selector("#minimap[data-roads=loaded]", timeout=30_000)
    street_map = await page.evaluate_handle("document.getElementById('minimap').streetMap")
    await page.evaluate(SETTLED, street_map)
    assert await page.evaluate(roads, street_map) > 100
    assert served == [True]  # from the service worker's copy: the network is gone
    await context.close()
