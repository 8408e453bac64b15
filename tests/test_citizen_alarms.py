"""Citizens: an alarm at a pole reaches the alarm stream, unknown codes get candidates, and the
status (JSON and Server-Sent Events) follows the incident the dispatcher writes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.testing import TEST_POLES, gateway_client, store_poles, write_incident
from polewatch import keys, wire

POLE = TEST_POLES[0]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


async def test_alarm_lands_in_the_stream_with_the_poles_place(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    resp = await client.post("/api/alarms", json={"pole": POLE.code, "text": "man down"})
    assert resp.status == 202
    answer = await resp.json()
    entries = await aredis.xrange(keys.ALARMS)
    assert len(entries) == 1
    entry_id, fields = entries[0]
    assert answer["entry"] == entry_id.decode()
    alarm = wire.decode_entry(fields, wire.Alarm)
    assert alarm.id == answer["alarm"]
    assert (alarm.lon, alarm.lat, alarm.pole) == (POLE.lon, POLE.lat, POLE.code)
    assert (alarm.district, alarm.grid) == (POLE.district, POLE.grid)
    assert alarm.type == "citizen_sos" and alarm.text == "man down"
    assert abs(alarm.ts - time.time()) < 60
    assert resp.headers["Location"] == answer["status_url"] == f"/api/alarms/{alarm.id}"


async def test_a_code_read_with_spaces_and_lowercase_still_finds_the_pole(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    resp = await client.post("/api/alarms", json={"pole": " 310 1201 ", "type": "call"})
    assert resp.status == 202, await resp.text()
    alarm = wire.decode_entry((await aredis.xrange(keys.ALARMS))[0][1], wire.Alarm)
    assert alarm.pole == POLE.code and alarm.type == "call"


async def test_unknown_code_answers_404_with_ranked_candidates_and_writes_nothing(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    # one digit misheard: 3101202 is not a pole, 3101201 and 3101203 are one substitution away
    resp = await client.post(
        "/api/alarms", json={"pole": "3101202", "lon": POLE.lon, "lat": POLE.lat}
    )
    assert resp.status == 404
    body = await resp.json()
    assert "3101202" in body["error"]
    codes = [c["code"] for c in body["candidates"]]
    assert codes[:2] == ["3101201", "3101203"]  # nearest to the phone first among equals
    assert body["candidates"][0]["distance_m"] < body["candidates"][1]["distance_m"]
    assert await aredis.xlen(keys.ALARMS) == 0


async def test_status_follows_the_incident(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    alarm = (await (await client.post("/api/alarms", json={"pole": POLE.code})).json())["alarm"]
    status = await (await client.get(f"/api/alarms/{alarm}")).json()
    assert status["status"] == "received" and status["incident"] is None

    await aredis.hset(
        keys.unit("U1"), mapping={"id": "U1", "status": "dispatched", "lon": 113.93, "lat": 22.53}
    )
    await write_incident(aredis, alarm, "dispatched", units="U1")
    status = await (await client.get(f"/api/alarms/{alarm}")).json()
    assert status["status"] == "dispatched" and status["incident"] == "I7"
    (unit,) = status["units"]
    assert unit["unit"] == "U1"
    assert 1100 < unit["distance_m"] < 1120  # 0.01 degrees of latitude
    assert unit["eta_s"] == pytest.approx(unit["distance_m"] / 8.0, rel=0.01)

    # merged into another incident: the citizen follows that one
    await aredis.hset(keys.incident("I7"), mapping={"state": "merged", "merged_into": "I9"})
    await write_incident(aredis, "other-alarm", "on_scene", iid="I9")
    status = await (await client.get(f"/api/alarms/{alarm}")).json()
    assert (status["status"], status["incident"]) == ("on_scene", "I9")


async def test_status_of_an_alarm_never_issued_is_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/alarms/0123456789abcdef0123456789abcdef-000000000000")
    assert resp.status == 404
    resp = await client.get("/api/alarms/bad%20id")
    assert resp.status == 422


async def read_events(resp: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` ``status`` events of an SSE response."""
    events: list[dict[str, Any]] = []
    kind = None
    while len(events) < count:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "status":
            events.append(json.loads(line[6:]))
    return events


async def test_event_stream_pushes_each_change_until_resolved(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    alarm = (await (await client.post("/api/alarms", json={"pole": POLE.code})).json())["alarm"]
    resp = await client.get(f"/api/alarms/{alarm}/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    (first,) = await read_events(resp, 1)
    assert first["status"] == "received"

    for state, phase in [
        ("new", "received"),
        ("dispatched", "dispatched"),
        ("en_route", "on_the_way"),
        ("on_scene", "on_scene"),
    ]:
        await write_incident(aredis, alarm, state, units="U1")
        (event,) = await read_events(resp, 1)
        assert (event["state"], event["status"]) == (state, phase)

    await write_incident(aredis, alarm, "resolved", units="U1")
    (last,) = await read_events(resp, 1)
    assert last["status"] == "resolved"
    assert (await asyncio.wait_for(resp.content.read(), 10)).strip() == b""  # stream ended
    metrics = await (await client.get("/metrics")).text()
    assert "polewatch_gateway_sse_clients 0.0" in metrics


async def test_help_page_shows_the_pole_and_escapes_everything(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(f"/p/{POLE.code}")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert POLE.code in page and "Keyuan Rd" in page and "/api/alarms" in page
    assert "http://" not in page.replace("http-equiv", "") and "https://" not in page  # no CDN
    nonce = resp.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert page.count(f'nonce="{nonce}"') == 3

    marked = TEST_POLES[3]
    page = await (await client.get(f"/p/{marked.code}")).text()
    assert "<script>alert" not in page
    assert "\\u003cscript\\u003ealert" in page and "Futian \\u0026 Co" in page


async def test_help_page_for_an_unknown_code_is_a_friendly_404_with_candidates(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/p/3101202")
    assert resp.status == 404 and resp.content_type == "text/html"
    page = await resp.text()
    assert "3101201" in page and "3101203" in page
    resp = await client.get("/p/%3Cb%3Ex%3C%2Fb%3E")
    assert resp.status in (404, 422)
    assert "<b>x</b>" not in await resp.text()
