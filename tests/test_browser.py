"""The command centre and the patrol app in a real browser (Debian's chromium driven by
Playwright) against the running system: a redis-server, the real gateway on a real port, the
real dispatcher consuming continuously, units on duty through the real patrol API.

Screenshots land in ``artifacts/screenshots/`` for people to look at.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser import launch, needs_chromium
from waiting import until_written

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import (
    TEST_CITY,
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
)
from polewatch import geo, keys, records, wire
from polewatch.connection import connect
from polewatch.poles.city import generate_city
from polewatch.poles.model import Pole

playwright_api = pytest.importorskip("playwright.async_api")

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
FUTIAN = (114.055, 22.540)
MARKUP_POLE = TEST_POLES[3]
PASSWORD = "night-shift-2026"
CONSOLE = ConsoleSettings(
    users={"ada": Account(role="supervisor", password=hash_password(PASSWORD))}
)
TEXT = "Two men fighting outside the metro exit, one has a bottle"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">help!'
BACKGROUND = [
    "call",
    "intrusion",
    "citizen_sos",
    "loitering",
    "door_forced",
    "crowd",
    "tamper",
    "call",
]

BACKGROUND_DESK = bearer(operator_token("desk"))
pytestmark = needs_chromium


def city() -> tuple[list[Pole], Pole, list[Pole]]:
    """Generated poles of the test city (none clashing with the test poles' codes), the one
    nearest Futian's centre where the test's incident happens, and the poles 600 m to 2 km
    from it where the background activity happens."""
    taken = {p.code[:4] for p in TEST_POLES}
    made = generate_city(count=20_000, seed=3, city=TEST_CITY)
    poles = [p for p in made if p.code[:4] not in taken]

    def metres(p: Pole, lon: float, lat: float) -> float:
        return geo.haversine_m(p.lon, p.lat, lon, lat)

    main = min(poles, key=lambda p: metres(p, *FUTIAN))
    near = [p for p in poles if 500 < metres(p, main.lon, main.lat) < 1800]
    return poles, main, sorted(near, key=lambda p: p.code)


@pytest.fixture
async def system(redis_url: str) -> AsyncIterator[dict[str, Any]]:
    """The gateway (real port) and a dispatcher consuming in the background."""
    poles, main, near = city()
    await store_poles(redis_url, TEST_POLES + tuple(poles))
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, block_ms=100))
    running = asyncio.create_task(dispatcher.run())
    try:
        async with gateway_client(redis_url, console=CONSOLE) as client:
            yield {"client": client, "main": main, "near": near, "redis_url": redis_url}
    finally:
        dispatcher.stop()
        await asyncio.wait_for(running, 10)


async def report(client: Any, unit: str, incident: str, action: str) -> None:
    """A unit's answer through the real patrol API."""
    path = f"/api/patrol/incidents/{incident}/status"
    answer = await client.post(path, headers=bearer(unit_token(unit)), json={"action": action})
    assert answer.status == 202


async def open_incidents(client: Any) -> list[dict[str, Any]]:
    who = bearer(operator_token("test"))
    found: list[dict[str, Any]] = (await (await client.get("/api/incidents", headers=who)).json())[
        "incidents"
    ]
    return found


async def background_city(client: Any, redis_url: str, near: list[Pole]) -> tuple[int, str]:
    """A busy night nearby: a camera, units on duty, incidents taken and worked on."""
    rng = random.Random(5)
    roads: dict[str, list[Pole]] = {}
    for pole in near:
        roads.setdefault(pole.road or "", []).append(pole)
    spots: list[Pole] = []
    while len(spots) < len(BACKGROUND) + 10:  # spread over every road nearby
        for on_road in roads.values():
            spots.append(on_road.pop(rng.randrange(len(on_road))))
    spots = spots[: len(BACKGROUND) + 10]
    for n, pole in enumerate(spots):
        for k in range(2 if n < len(BACKGROUND) else 1):
            unit = f"P{n:02d}{k}"
            await client.post("/api/patrol/duty", headers=bearer(unit_token(unit)), json={
                "duty": "on_duty", "grid": pole.grid, "capabilities": ["car"],
                "lon": pole.lon + 0.0004 * (k + 1), "lat": pole.lat + 0.0003})  # fmt: skip
    await camera_on_duty(redis_url, spots[len(BACKGROUND)])
    for n, (kind, pole) in enumerate(zip(BACKGROUND, spots, strict=False)):
        body = {"pole": pole.code, "type": kind} | ({"text": XSS} if n == 0 else {})
        if kind in ("citizen_sos", "call"):  # the citizen door takes citizen types only
            answer = await client.post("/api/alarms", json=body)
        else:  # a camera's or a door's alarm, as a call-taker raises it
            answer = await client.post("/api/incidents", json=body, headers=BACKGROUND_DESK)
        assert answer.status == 202

    async def all_dispatched() -> list[dict[str, Any]] | None:
        found = await open_incidents(client)
        reports = sum(i["reports"] for i in found)  # two reports close together may merge
        ok = reports == len(BACKGROUND) + 1 and all(i["state"] == "dispatched" for i in found)
        return found if ok else None

    audit = connect(redis_url, name="test-until")
    try:  # every change of an incident is an audit entry: look again after each one
        background = await until_written(
            audit, keys.AUDIT, all_dispatched, "the background alarms all dispatched", 10
        )
    finally:
        await audit.aclose()
    for n, incident in enumerate(background):
        for unit in incident["units"]:
            steps = ["acknowledged", "en_route", "on_scene"][: 1 + n % 3]
            for action in steps:
                await report(client, unit, incident["id"], action)
    return len(background), spots[0].code


def street_scene(label: str) -> bytes:
    """A dark synthetic street at night with someone at the fence, as JPEG."""
    import cv2
    import numpy as np

    img = np.zeros((360, 640, 3), np.uint8)
    img[:] = (28, 24, 20)
    cv2.rectangle(img, (0, 230), (640, 360), (45, 42, 38), -1)
    for x in range(0, 640, 80):
        cv2.line(img, (x + 20, 300), (x + 60, 300), (90, 110, 120), 3)
    cv2.rectangle(img, (380, 120), (630, 230), (60, 55, 50), 2)
    cv2.ellipse(img, (450, 190), (14, 40), 0, 0, 360, (120, 130, 150), -1)
    cv2.circle(img, (450, 140), 11, (120, 130, 150), -1)
    cv2.rectangle(img, (425, 95), (478, 236), (60, 95, 255), 2)
    cv2.putText(img, label, (12, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200, 200, 200), 1)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(jpeg)


async def camera_on_duty(redis_url: str, pole: Pole) -> None:
    """What a video agent writes: a heartbeat, its latest frame, an alarm with a snapshot."""
    redis = connect(redis_url, name="test-camera")
    try:
        now = time.time()
        hb = wire.Heartbeat(source="camera:cam-keyuan", kind="camera", status="online",
                            ts=now, fps=5.0, pole=pole.code)  # fmt: skip
        await redis.xadd(keys.HEARTBEATS, wire.entry(hb))
        await redis.set(keys.camera_frame("cam-keyuan"), street_scene("cam-keyuan  live"))
        await redis.set(keys.snapshot("snap-1"), street_scene("cam-keyuan  intrusion"))
        alarm = wire.Alarm(id="cam-keyuan-1", type="intrusion", source="camera:cam-keyuan",
                           ts=now, lon=pole.lon, lat=pole.lat, pole=pole.code, camera="cam-keyuan",
                           rule="fence", snapshot="snap-1", district=pole.district,
                           grid=pole.grid)  # fmt: skip
        await redis.xadd(keys.ALARMS, wire.entry(alarm))
    finally:
        await redis.aclose()


async def test_operator_and_patrol_work_an_incident_end_to_end(system: dict[str, Any]) -> None:
    from playwright.async_api import async_playwright

    client, redis_url, pole = system["client"], system["redis_url"], system["main"]
    base = str(client.make_url("")).rstrip("/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    busy, xss_pole = await background_city(client, redis_url, system["near"])
    for unit, east, north in (("U2", 0.003, 0.002), ("U3", -0.004, -0.003)):
        await client.post("/api/patrol/duty", headers=bearer(unit_token(unit)), json={
            "duty": "on_duty", "lon": pole.lon + east, "lat": pole.lat + north})  # fmt: skip

    dialogs: list[str] = []
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            desk = await browser.new_context(viewport={"width": 1600, "height": 900})
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                has_touch=True, permissions=["geolocation"],
                geolocation={"latitude": pole.lat, "longitude": pole.lon + 0.001},
            )  # fmt: skip
            console = await desk.new_page()
            patrol = await phone.new_page()
            for page in (console, patrol):
                page.on(
                    "dialog",
                    lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())),
                )

            # --- the operator signs in; the live feed connects
            await console.goto(f"{base}/console/")
            await console.fill("#login-name", "ada")
            await console.fill("#login-password", "wrong")
            await console.click("#login-submit")
            await console.wait_for_selector("#login-error:has-text('wrong password')")
            await console.fill("#login-password", PASSWORD)
            await console.click("#login-submit")
            await console.wait_for_selector("#conn.live", timeout=10_000)
            assert await console.inner_text("#who") == "ada · supervisor"
            await console.wait_for_function(
                f"document.querySelectorAll('#queue li.q').length == {busy}"
            )

            # --- the unit's phone signs in with its token, gets a fix and goes on duty
            await patrol.goto(f"{base}/patrol/?token={unit_token('U1')}")
            await patrol.wait_for_selector("#link.up")
            assert "token=" not in patrol.url  # the token left the address bar
            assert await patrol.inner_text("#unit-id") == "U1"
            installed = "navigator.serviceWorker.ready.then(r => r.active.scriptURL)"
            assert (await patrol.evaluate(installed)).endswith("/patrol/sw.js")
            await patrol.wait_for_selector(f"#fix:has-text('position: {pole.lat:.5f}')")
            await patrol.click("#duty")
            await console.wait_for_selector('#units li.u[data-id="U1"][data-status="available"]')

            # --- a citizen raises an alarm: it shows in the queue and on the map, pushed (no
            # reload). How fast is `polewatch bench` business and only printed here: a loaded
            # machine may take seconds, so the deadlines are generous and assert the outcome.
            queued = console.wait_for_function(
                "code => [...document.querySelectorAll('#queue li.q')].find(li => "
                "li.querySelector('.where').textContent.includes(`pole ${code}`))",
                arg=pole.code, polling="raf", timeout=30_000)  # fmt: skip
            started = time.monotonic()
            raised = await client.post(
                "/api/alarms", json={"pole": pole.code, "type": "call", "text": TEXT}
            )
            assert raised.status == 202
            row = await queued
            incident = await row.evaluate("li => li.dataset.id")
            await console.wait_for_function(
                "id => document.getElementById('map').dataset.incidents.split(' ').includes(id)",
                arg=incident, polling="raf", timeout=30_000)  # fmt: skip
            seen_after = time.monotonic() - started
            print(f"alarm raised -> in the queue and on the map: {seen_after * 1000:.0f} ms")

            # --- the patrol phone rings; the unit accepts
            await patrol.wait_for_selector(f"#job-type:has-text('{incident}')", timeout=10_000)
            metres = geo.haversine_m(pole.lon + 0.001, pole.lat, pole.lon, pole.lat)
            assert await patrol.inner_text("#job-distance") == f"{round(metres)} m"
            assert (await patrol.inner_text("#job-bearing")).endswith("W")
            await patrol.wait_for_selector("#minimap[data-poles]:not([data-poles='0'])")
            await patrol.screenshot(path=ARTIFACTS / "patrol-app.png")
            await patrol.click("#accept")
            await patrol.wait_for_selector("#progress:not([hidden])")

            # --- the phone loses its connection: it resumes from the last id it saw
            await patrol.reload()
            await patrol.wait_for_selector("#link.up")
            assert await patrol.evaluate("localStorage.getItem('pw.patrol.last')")
            await patrol.wait_for_selector("#progress:not([hidden])")  # the job is still there
            assert await patrol.locator("#log li", has_text="dispatch").count() == 0  # not again
            await console.wait_for_selector(
                f'#queue li.q[data-id="{incident}"][data-state="acknowledged"]'
            )

            # --- the operator opens it: timeline, the report (escaped), the unit's ETA
            await console.click(f'#queue li.q[data-id="{incident}"]')
            await console.wait_for_selector("#timeline li.acknowledged")
            assert await console.inner_text("#alarms .text") == TEXT
            assert "ETA" in await console.inner_text("#detail .assigned")

            # --- reassign to U2: U1's phone is told, U2 gets it
            await console.select_option("#reassign-unit", "U2")
            await console.click("#do-reassign")
            await console.wait_for_selector("#detail .assigned li:has-text('U2')", timeout=10_000)
            await patrol.wait_for_selector("#idle:not([hidden])", timeout=10_000)
            await console.wait_for_selector("#timeline li:has-text('ada')")
            await console.wait_for_selector("#map[data-poles]:not([data-poles='0'])")
            await console.screenshot(path=ARTIFACTS / "command-centre.png")

            # --- U2 works it through the patrol API; the operator closes it with an evaluation
            for action in ("acknowledged", "on_scene", "resolved"):
                await report(client, "U2", incident, action)
            await console.wait_for_selector("#do-close:not([disabled])", timeout=10_000)
            await console.select_option("#evaluation", "4")
            await console.click("#do-close")
            await console.wait_for_selector(f'#queue li.q[data-id="{incident}"]', state="detached")

            # --- the call-taker: a misread code gives candidates; markup in data stays text
            await console.fill("#call-code", "3101200")
            await console.click("#call-form button")
            await console.wait_for_selector("#candidates li")
            assert "3101201" in await console.inner_text("#candidates")
            await console.fill("#call-code", MARKUP_POLE.code)
            await console.click("#call-form button")
            card = await console.wait_for_selector(".pole-card")
            assert '<script>alert("x")</script>' in await card.inner_text()

            # --- markup in a report is shown as text and never runs
            marked = console.locator("#queue li.q").filter(has_text=f"pole {xss_pole}")
            marked_id = await marked.get_attribute("data-id")
            await marked.click()
            await console.wait_for_selector(f"#detail .title:has-text('#{marked_id}')")
            assert await console.inner_text("#alarms .text") == XSS
            assert await console.locator("#detail img").count() == 0
            assert await console.evaluate("window.__xss") is None

            # --- the camera wall: live view, health, the latest alarm's snapshot
            await console.click("#tabs button[data-view=cameras]")
            cam = console.locator('.cam[data-id="cam-keyuan"]')
            await cam.locator(".chip.online").wait_for()
            await console.wait_for_function(
                "() => [...document.querySelectorAll('.cam img')].every(i => i.naturalWidth > 0)"
            )
            assert "intrusion (fence)" in await cam.locator(".last").inner_text()
            await console.screenshot(path=ARTIFACTS / "camera-wall.png")

            # --- analytics: response-time charts of what just happened, report links
            await console.click("#tabs button[data-view=analytics]")
            await console.wait_for_selector(".chart svg rect")
            assert "token=" in (await console.get_attribute("#report-csv", "href") or "")
            await console.screenshot(path=ARTIFACTS / "analytics.png")
            assert await patrol.evaluate("window.__xss") is None
            assert dialogs == []
        finally:
            await browser.close()

    redis = connect(redis_url, name="test-check")
    try:
        closed = records.incident_from_hash(await redis.hgetall(keys.incident(incident)))
        assert closed is not None and closed.state == "closed" and closed.evaluation == 4
        stored = await redis.lrange(keys.incident_timeline(incident), 0, -1)
        timeline = [wire.decode(e, wire.IncidentEvent) for e in stored]
        by_ada = {e.event for e in timeline if e.actor == "ada"}
        assert "closed" in by_ada and by_ada & {"reassigned", "dispatched", "released"}
        assert any(e.event == "acknowledged" and e.unit == "U1" for e in timeline)
    finally:
        await redis.aclose()
    for name in ("command-centre.png", "patrol-app.png"):
        assert (ARTIFACTS / name).stat().st_size > 20_000
