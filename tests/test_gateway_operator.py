"""Call-takers and the command centre: pole lookup with candidates, incidents raised for a
caller, overrides queued for the dispatcher, incident and unit boards."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.testing import TEST_POLES, bearer, gateway_client, operator_token, store_poles
from polewatch import keys, wire

OPERATOR = bearer(operator_token("alice"))
SUPERVISOR = bearer(operator_token("sam", role="supervisor"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


async def test_pole_lookup_gives_the_place_or_ranked_candidates(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/api/poles/3101201", headers=OPERATOR)
    assert resp.status == 200
    body = await resp.json()
    assert body["pole"]["code"] == "3101201" and body["pole"]["road"] == "Keyuan Rd"

    near_203 = f"{TEST_POLES[1].lon},{TEST_POLES[1].lat}"
    resp = await client.get(f"/api/poles/3101202?near={near_203}", headers=OPERATOR)
    assert resp.status == 404
    body = await resp.json()
    assert body["pole"] is None and "unknown pole code" in body["error"]
    assert [c["code"] for c in body["candidates"][:2]] == ["3101203", "3101201"]

    for bad in ("near=abc", "near=1,2,3", "near=200,10", "near=0,0"):
        resp = await client.get(f"/api/poles/3101201?{bad}", headers=OPERATOR)
        assert resp.status == 422, bad
    resp = await client.get("/api/poles/" + "9" * 40, headers=OPERATOR)
    assert resp.status == 422 and "not a pole code" in (await resp.json())["error"]


async def test_call_taker_raises_an_incident_for_the_callers_pole(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    resp = await client.post(
        "/api/incidents",
        json={"pole": "3101203", "type": "assault", "text": "two men fighting",
              "phone": "+86 755 1234"},
        headers=OPERATOR,
    )  # fmt: skip
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    (entry,) = await aredis.xrange(keys.ALARMS)
    alarm = wire.decode_entry(entry[1], wire.Alarm)
    assert alarm.id == answer["alarm"] and alarm.source == "operator:alice"
    assert (alarm.pole, alarm.type, alarm.phone) == ("3101203", "assault", "+86 755 1234")
    assert (alarm.lon, alarm.lat) == (TEST_POLES[1].lon, TEST_POLES[1].lat)

    resp = await client.post(
        "/api/incidents", json={"pole": "3101202", "type": "assault"}, headers=OPERATOR
    )
    assert resp.status == 404 and (await resp.json())["candidates"]
    resp = await client.post("/api/incidents", json={"pole": "3101203"}, headers=OPERATOR)
    assert resp.status == 422 and "type" in (await resp.json())["error"]


OVERRIDES = [
    ("reassign", {"unit": "U2"}, {"op": "reassign", "unit": "U2"}),
    ("reassign", {}, {"op": "reassign", "unit": None}),
    ("add-unit", {"unit": "U3"}, {"op": "add_unit", "unit": "U3"}),
    ("cancel", {"reason": "false alarm"}, {"op": "cancel", "detail": "false alarm"}),
    ("close", {"evaluation": 5, "detail": "quick"}, {"op": "close", "evaluation": 5}),
    ("merge", {"other": "I8"}, {"op": "merge", "other": "I8"}),
    ("split", {"alarm": "a-17"}, {"op": "split", "other": "a-17"}),
]


@pytest.mark.parametrize(("verb", "body", "expected"), OVERRIDES)
async def test_overrides_become_commands_for_the_dispatcher(
    client: TestClient[Any, Any],
    aredis: aioredis.Redis,
    verb: str,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    resp = await client.post(f"/api/incidents/I1/{verb}", json=body, headers=SUPERVISOR)
    assert resp.status == 202, await resp.text()
    (entry,) = await aredis.xrange(keys.COMMANDS)
    command = wire.decode_entry(entry[1], wire.Command)
    assert (command.incident, command.actor) == ("I1", "sam")
    assert {k: getattr(command, k) for k in expected} == expected
    assert (await resp.json())["entry"] == entry[0].decode()


@pytest.mark.parametrize(
    ("verb", "body"),
    [
        ("close", {"evaluation": 6}),
        ("close", {"evaluation": "5"}),
        ("close", {}),
        ("cancel", {"reason": ""}),
        ("merge", {"other": "I1"}),
        ("merge", {"other": "has space"}),
        ("split", {"alarm": 17}),
        ("reassign", {"unit": "U1", "priority": 1}),
    ],
)
async def test_invalid_overrides_are_refused_and_nothing_is_queued(
    client: TestClient[Any, Any], aredis: aioredis.Redis, verb: str, body: dict[str, Any]
) -> None:
    resp = await client.post(f"/api/incidents/I1/{verb}", json=body, headers=OPERATOR)
    assert resp.status == 422
    assert (await resp.json())["error"]
    assert await aredis.xlen(keys.COMMANDS) == 0


async def store_incident(redis: aioredis.Redis, iid: str, state: str, created: float) -> None:
    await redis.hset(
        keys.incident(iid),
        mapping={"id": iid, "state": state, "priority": 2, "type": "intrusion",
                 "group": "intrusion", "lon": 113.93, "lat": 22.52, "created": created,
                 "units": "U1", f"t_{state}": created},
    )  # fmt: skip
    await redis.zadd(keys.INCIDENTS_OPEN, {iid: created})


async def test_incident_board_detail_and_units(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    now = time.time()
    await store_incident(aredis, "I1", "dispatched", now - 10)
    await store_incident(aredis, "I2", "on_scene", now - 5)
    await store_incident(aredis, "I3", "escalated", now)
    await aredis.zadd(keys.ESCALATED, {"I3": now})

    board = await (await client.get("/api/incidents", headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I3", "I2", "I1"]
    board = await (await client.get("/api/incidents?limit=1", headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I3"]
    board = await (await client.get("/api/incidents?state=on_scene", headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I2"]
    board = await (await client.get("/api/incidents?state=escalated", headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I3"]
    for bad in ("state=bogus", "limit=0", "limit=x", "limit=100000"):
        assert (await client.get(f"/api/incidents?{bad}", headers=OPERATOR)).status == 422

    alarm = wire.Alarm(id="a1", type="intrusion", source="camera:c1", ts=now, lon=113.93,
                       lat=22.52)  # fmt: skip
    event = wire.IncidentEvent(incident="I1", event="dispatched", ts=now, unit="U1")
    await aredis.rpush(keys.incident_alarms("I1"), "a1", "a-expired")
    await aredis.set(keys.alarm_body("a1"), wire.encode(alarm))
    await aredis.rpush(keys.incident_timeline("I1"), wire.encode(event), b"\xc1garbage")
    detail = await (await client.get("/api/incidents/I1", headers=OPERATOR)).json()
    assert detail["incident"]["state"] == "dispatched" and detail["incident"]["units"] == ["U1"]
    assert detail["timeline"][0] == wire.to_builtins(event)
    assert detail["timeline"][1]["k"] == "invalid"
    assert detail["alarms"] == [wire.to_builtins(alarm), {"id": "a-expired", "expired": True}]
    assert (await client.get("/api/incidents/I404", headers=OPERATOR)).status == 404

    await aredis.sadd(keys.UNITS, "U1", "U2")
    await aredis.hset(keys.unit("U1"), mapping={"id": "U1", "duty": "on_duty",
                                                "status": "busy", "caps": "car,medic"})  # fmt: skip
    units = (await (await client.get("/api/units", headers=OPERATOR)).json())["units"]
    assert [(u["id"], u["status"]) for u in units] == [("U1", "busy"), ("U2", "off_duty")]
    assert units[0]["capabilities"] == ["car", "medic"]


async def hgetall_calls(redis: aioredis.Redis) -> int:
    stats: Any = await redis.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


async def test_the_board_reads_only_the_incidents_it_shows(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    now = time.time()
    for n in range(300):
        state = "on_scene" if n % 100 == 0 else "dispatched"  # three on scene: n = 0, 100, 200
        await store_incident(aredis, f"I{n}", state, now - 1000 + n)
    await aredis.delete(keys.incident("I298"))  # closed and gone while still in the index

    before = await hgetall_calls(aredis)
    board = await (await client.get("/api/incidents?limit=5", headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I299", "I297", "I296", "I295", "I294"]
    assert await hgetall_calls(aredis) - before == 6  # the five, and the one found gone

    before = await hgetall_calls(aredis)
    url = "/api/incidents?state=on_scene&limit=2"
    board = await (await client.get(url, headers=OPERATOR)).json()
    assert [i["id"] for i in board["incidents"]] == ["I200", "I100"]
    assert await hgetall_calls(aredis) - before == 200  # two pages of 100, not the whole index
