"""The command centre's server side: login, pages and their security headers, the live feed,
map data, cameras, exports and reports, all against the real gateway on a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.console.accounts import check_password, hash_password
from gateway.console.live import FEED
from gateway.console.mapdata import parse_bbox
from gateway.console.settings import Account, ConsoleSettings
from gateway.errors import HttpError
from gateway.testing import (
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
)
from polewatch import keys, wire
from polewatch.connection import connect

POLE = TEST_POLES[0]
PASSWORD = "correct horse battery staple"
CONSOLE = ConsoleSettings(users={
    "ada": Account(role="supervisor", password=hash_password(PASSWORD)),
    "bob": Account(role="operator", password=hash_password("bob's password")),
})  # fmt: skip


async def dispatch_round(redis_url: str) -> None:
    await Dispatcher(DispatcherSettings(redis_url=redis_url), burst=True).run()


async def sse_event(resp: aiohttp.ClientResponse, wanted: str, within_s: float = 10) -> Any:
    """The data of the next event named ``wanted`` on an event stream."""
    name = None
    async with asyncio.timeout(within_s):
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == wanted:
                return json.loads(line[6:])


async def test_login_exchanges_a_password_for_a_role_token(redis_url: str) -> None:
    async with gateway_client(redis_url, console=CONSOLE) as client:
        ok = await client.post("/api/console/login", json={"login": "ada", "password": PASSWORD})
        assert ok.status == 200
        session = await ok.json()
        assert session["role"] == "supervisor" and session["login"] == "ada"
        assert session["expires"] > time.time() + 3600
        me = await client.get("/api/console/me", headers=bearer(session["token"]))
        assert (await me.json())["login"] == "ada"
        # the token opens the operator API too
        assert (await client.get("/api/incidents", headers=bearer(session["token"]))).status == 200

        for login, password in [("ada", "wrong"), ("nobody", PASSWORD), ("bob", PASSWORD)]:
            bad = await client.post(
                "/api/console/login", json={"login": login, "password": password}
            )
            assert bad.status == 401, login
            assert "wrong password" in (await bad.json())["error"]
        malformed = await client.post("/api/console/login", json={"login": "<x>", "password": "p"})
        assert malformed.status == 422
        unit = await client.get("/api/console/me", headers=bearer(unit_token("U1")))
        assert unit.status == 403


def test_password_hashes_are_salted_and_checked() -> None:
    one, two = hash_password("secret"), hash_password("secret")
    assert one != two and one.startswith("scrypt$")
    assert check_password("secret", one) and check_password("secret", two)
    assert not check_password("Secret", one)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.text(max_size=120))
def test_any_stored_hash_or_password_gives_a_yes_or_no(password: str, stored: str) -> None:
    assert check_password(password, stored) in (True, False)


@given(st.text(max_size=60))
def test_any_bbox_text_is_a_box_or_a_422(text: str) -> None:
    try:
        west, south, east, north = parse_bbox(text)
    except HttpError as exc:
        assert exc.status == 422
    else:
        assert west < east and south < north


@given(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)))
def test_any_report_period_is_a_range_or_a_422(start: str | None, end: str | None) -> None:
    from aiohttp.test_utils import make_mocked_request
    from yarl import URL

    from gateway.console.reports import period

    query = {k: v for k, v in (("from", start), ("to", end)) if v is not None}
    request = make_mocked_request("GET", str(URL("/r").with_query(query)))
    try:
        begin, finish, district = period(request, 480)
    except HttpError as exc:
        assert exc.status == 422
    else:
        assert begin < finish and district is None


async def test_pages_forbid_inline_script_and_foreign_origins(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        for path in ("/console/", "/patrol/"):
            page = await client.get(path)
            assert page.status == 200 and page.content_type == "text/html"
            policy = page.headers["Content-Security-Policy"]
            directives = dict(
                d.strip().split(" ", 1) for d in policy.split(";") if " " in d.strip()
            )
            assert directives["script-src"] == "'self'", policy
            assert "unsafe-inline" not in policy and "http" not in policy
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            html = await page.text()
            assert "<script>" not in html and " style=" not in html and "on" + "click=" not in html
        js = await client.get("/console/static/console.js")
        assert js.status == 200 and js.content_type == "text/javascript"
        for bad in ("../app.py", "..%2Fsettings.py", "nope.js", "console.py"):
            assert (await client.get(f"/console/static/{bad}")).status == 404
        moved = await client.get("/console", allow_redirects=False)
        assert moved.status == 308 and moved.headers["Location"] == "/console/"


async def test_a_configured_tile_server_is_the_only_foreign_origin(redis_url: str) -> None:
    tiles = ConsoleSettings(tile_url="https://tiles.example.org/{z}/{x}/{y}.png")
    async with gateway_client(redis_url, console=tiles) as client:
        policy = (await client.get("/console/")).headers["Content-Security-Policy"]
        assert "img-src 'self' data: blob: https://tiles.example.org;" in policy
        config = await (await client.get("/api/console/config",
                                         headers=bearer(operator_token("ada")))).json()  # fmt: skip
        assert config["tile_url"].startswith("https://tiles.example.org/")


async def test_live_feed_sends_the_picture_then_each_change(redis_url: str) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        unit = bearer(unit_token("U1"))
        await client.post("/api/patrol/duty", headers=unit, json={
            "duty": "on_duty", "lon": POLE.lon + 0.001, "lat": POLE.lat})  # fmt: skip
        await dispatch_round(redis_url)
        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        assert live.status == 200 and live.content_type == "text/event-stream"
        picture = await sse_event(live, "picture")
        assert [u["id"] for u in picture["units"]] == ["U1"] and picture["incidents"] == []

        raised = await client.post("/api/alarms", json={"pole": POLE.code, "text": "help"})
        assert raised.status == 202
        await dispatch_round(redis_url)
        incidents = await sse_event(live, "incidents")
        assert incidents[0]["pole"] == POLE.code and incidents[0]["state"] == "dispatched"
        incident = incidents[0]["id"]

        garbage = connect(redis_url, name="test-garbage")
        await garbage.xadd(keys.AUDIT, {b"m": b"\xc1 not a message"})  # a viewer skips it
        await garbage.aclose()
        moved = await client.post(f"/api/incidents/{incident}/cancel", json={"reason": "prank"},
                                  headers=bearer(operator_token("ada")))  # fmt: skip
        assert moved.status == 202
        await dispatch_round(redis_url)
        while True:  # the operator's action arrives in the audit, with who did it
            audit = await sse_event(live, "audit")
            cancelled = [e for e in audit if e["event"] == "cancelled"]
            if cancelled:
                break
        assert cancelled[0]["incident"] == incident and cancelled[0]["actor"] == "ada"
        live.close()


async def stream_reads(redis: Any) -> int:
    """XREAD and XREVRANGE commands the Redis server has answered (INFO commandstats)."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("xread", "xrevrange"))


async def test_live_feed_reads_streams_only_while_a_console_listens(
    redis_url: str, aredis: Any
) -> None:
    await store_poles(redis_url)
    redis = aredis
    async with gateway_client(redis_url) as client:
        feed = client.app[FEED]
        unit = bearer(unit_token("U1"))

        async def report(lon: float) -> None:
            answer = await client.post("/api/patrol/position", headers=unit,
                                       json={"lon": lon, "lat": POLE.lat})  # fmt: skip
            assert answer.status == 202

        await client.post("/api/patrol/duty", headers=unit, json={
            "duty": "on_duty", "lon": POLE.lon + 0.001, "lat": POLE.lat})  # fmt: skip
        await dispatch_round(redis_url)
        before = await stream_reads(redis)
        for step in range(5):  # no console: positions are written, nobody reads them back
            await report(POLE.lon + 0.0001 * step)
        assert await redis.xlen(keys.PATROL_EVENTS) >= 6
        assert await stream_reads(redis) == before
        assert feed.reads == 0 and feed.starts == 0 and feed.idle.is_set()

        live = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(live, "picture")  # the current snapshot first, as before
        assert [u["id"] for u in picture["units"]] == ["U1"]
        await report(POLE.lon + 0.002)
        while True:  # then each change
            units = await sse_event(live, "units")
            if units[0]["lon"] == pytest.approx(POLE.lon + 0.002):
                break
        assert feed.starts == 1 and feed.reads > 0
        live.close()

        await asyncio.wait_for(feed.idle.wait(), 30)  # the last console left: the reader stops
        reads = feed.reads
        await report(POLE.lon + 0.003)
        assert feed.reads == reads and feed.idle.is_set()

        await dispatch_round(redis_url)
        again = await client.get(f"/api/console/live?token={operator_token('ada')}")
        picture = await sse_event(again, "picture")  # a new console starts it again
        assert picture["units"][0]["lon"] == pytest.approx(POLE.lon + 0.003)
        assert feed.starts == 2
        again.close()


async def test_live_feed_needs_an_operator(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        assert (await client.get("/api/console/live")).status == 401
        assert (await client.get(f"/api/console/live?token={unit_token('U1')}")).status == 403


async def test_map_data_districts_grids_and_poles(redis_url: str) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        who = bearer(operator_token("ada"))
        districts = await (await client.get("/api/console/map/districts", headers=who)).json()
        names = {f["properties"]["name"] for f in districts["features"]}
        assert {"Futian", "Nanshan", "Luohu"} <= names and len(names) >= 9
        box = f"{POLE.lon - 0.003},{POLE.lat - 0.003},{POLE.lon + 0.003},{POLE.lat + 0.003}"
        grids = await (await client.get(f"/api/console/map/grids?bbox={box}", headers=who)).json()
        assert POLE.grid is not None
        assert 5 < len(grids["grids"]) < 200
        assert all(len(g["outline"]) == 6 for g in grids["grids"])
        poles = await (await client.get(f"/api/console/map/poles?bbox={box}", headers=who)).json()
        assert {p[0] for p in poles["poles"]} == {"3101201", "3101203"}
        huge = await client.get("/api/console/map/grids?bbox=113,22,115,23", headers=who)
        assert huge.status == 422 and "zoom in" in (await huge.json())["error"]
        units_may = await client.get("/api/console/map/districts", headers=bearer(unit_token("U")))
        assert units_may.status == 200


JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64 + b"\xff\xd9"


async def test_camera_wall_health_frames_and_snapshots(redis_url: str) -> None:
    await store_poles(redis_url)
    redis = connect(redis_url, name="test-camera")
    try:
        hb = wire.Heartbeat(source="camera:cam-7", kind="camera", status="online",
                            ts=time.time(), fps=4.5, pole=POLE.code)  # fmt: skip
        fields: dict[Any, Any] = wire.entry(hb)  # redis-py's stubs take no dict[bytes, bytes]
        await redis.xadd(keys.HEARTBEATS, fields)
        alarm = wire.Alarm(id="a-cam-1", type="intrusion", source="camera:cam-7", ts=time.time(),
                           lon=POLE.lon, lat=POLE.lat, camera="cam-7", rule="fence",
                           snapshot="a-cam-1")  # fmt: skip
        alarm_fields: dict[Any, Any] = wire.entry(alarm)
        await redis.xadd(keys.ALARMS, alarm_fields)
        await redis.set(keys.snapshot("a-cam-1"), JPEG)
        await redis.set(keys.camera_frame("cam-7"), JPEG)
        async with gateway_client(redis_url) as client:
            who = bearer(operator_token("ada"))
            cams = (await (await client.get("/api/console/cameras", headers=who)).json())["cameras"]
            assert len(cams) == 1
            cam = cams[0]
            assert cam["id"] == "cam-7" and cam["status"] == "online" and cam["lon"] == POLE.lon
            assert cam["alarm"]["snapshot"] == "a-cam-1" and cam["alarm"]["rule"] == "fence"
            snap = await client.get("/api/console/snapshots/a-cam-1", headers=who)
            assert snap.content_type == "image/jpeg" and await snap.read() == JPEG
            frame = await client.get("/api/console/cameras/cam-7/frame", headers=who)
            assert await frame.read() == JPEG
            assert (await client.get("/api/console/cameras/cam-8/frame", headers=who)).status == 404
            mjpeg = await client.get(
                f"/api/console/cameras/cam-7/mjpeg?token={operator_token('x')}"
            )
            assert mjpeg.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            part = b""
            async with asyncio.timeout(5):
                while JPEG not in part:
                    part += await mjpeg.content.readany()
            assert part.startswith(b"--polewatch-frame\r\nContent-Type: image/jpeg\r\n")
            mjpeg.close()
    finally:
        await redis.aclose()


async def test_exports_and_reports_of_a_real_incident(redis_url: str) -> None:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        await client.post("/api/alarms", json={"pole": POLE.code, "text": "a fight"})
        await dispatch_round(redis_url)
        who = bearer(operator_token("ada"))
        listed = (await (await client.get("/api/incidents", headers=who)).json())["incidents"]
        incident = listed[0]["id"]
        cap = await client.get(f"/api/console/incidents/{incident}/export.cap", headers=who)
        assert cap.status == 200 and cap.content_type == "application/xml"
        assert b"urn:oasis:names:tc:emergency:cap:1.2" in await cap.read()
        eido = await client.get(f"/api/console/incidents/{incident}/export.eido", headers=who)
        assert eido.content_type == "application/json" and isinstance(await eido.json(), dict)
        missing = await client.get("/api/console/incidents/I999999/export.cap", headers=who)
        assert missing.status == 404

        times = await (await client.get("/api/console/reports/times", headers=who)).json()
        assert times["incidents"] == 1 and times["by_priority"][0]["key"] == "P1"
        csv = await client.get(f"/api/console/reports/incidents.csv?token={operator_token('a')}")
        assert csv.status == 200 and incident in (await csv.text())
        assert "attachment" in csv.headers["Content-Disposition"]
        report = await client.get("/api/console/reports/assessment.html", headers=who)
        assert (
            report.status == 200 and "script-src" not in report.headers["Content-Security-Policy"]
        )
        assert "<script" not in (await report.text()).lower()
        bad = await client.get("/api/console/reports/times?from=yesterday", headers=who)
        assert bad.status == 422


async def test_console_routes_are_in_the_openapi_document(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        doc = msgspec.json.decode(await (await client.get("/api/openapi.json")).read())
        paths = doc["paths"]
        for path in (
            "/api/console/login",
            "/api/console/live",
            "/api/console/map/grids",
            "/api/console/cameras/{camera}/mjpeg",
            "/patrol/manifest.webmanifest",
        ):
            assert path in paths, path
        assert paths["/api/console/live"]["get"]["x-roles"] == ["operator", "supervisor"]


@pytest.mark.parametrize("who", ["operator", "supervisor"])
async def test_every_operator_role_reads_the_console_api(redis_url: str, who: str) -> None:
    async with gateway_client(redis_url) as client:
        token = bearer(operator_token("x", role=who))
        assert (await client.get("/api/console/cameras", headers=token)).status == 200


def test_console_user_prints_settings_with_a_hash_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from polewatch.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["console-user", "eve", "--role", "supervisor"]) == 0
    out = capsys.readouterr().out
    assert '[gateway.console.users."eve"]' in out and 'role = "supervisor"' in out
    assert "a long password" not in out
    stored = out.split('password = "')[1].split('"')[0]
    assert check_password("a long password", stored)
