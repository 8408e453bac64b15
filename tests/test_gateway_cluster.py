"""The gateway on a Redis Cluster with dispatch zones (the Shenzhen districts): alarms land in
the stream of their pole's zone and reach the nearest unit's socket through the real
dispatcher; units, incidents, overrides, the live feed and the rate limits work across zones
and shards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.cluster import RedisCluster
from redis.crc import key_slot
from test_gateway_end_to_end import frame

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.testing import (
    TEST_CITY,
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
)
from polewatch import acl, keys
from polewatch.connection import connect
from polewatch.poles.model import Pole
from polewatch.zones import ZoneMap

NANSHAN, FUTIAN = TEST_POLES[0], TEST_POLES[3]
OPERATOR = bearer(operator_token("ada"))


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(cluster_url, name="test-cluster", cluster=True)
    yield client
    await client.aclose()


@pytest.fixture
def zones(zones_file: Path) -> ZoneMap:
    return ZoneMap.load(zones_file)


Run = Callable[[], Any]


@pytest.fixture
def dispatch_round(cluster_url: str, zones_file: Path) -> Run:
    """One burst of the real dispatcher over every zone of the cluster."""

    async def run() -> None:
        settings = DispatcherSettings(
            redis_url=cluster_url, redis_cluster=True, zones=str(zones_file)
        )
        await Dispatcher(settings, burst=True).run()

    return run


def zoned_gateway(cluster_url: str, zones_file: Path) -> Any:
    return gateway_client(cluster_url, redis_cluster=True, zones=str(zones_file))


@pytest.fixture
async def client(cluster_url: str, zones_file: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway on the cluster with the Shenzhen districts as zones, and the test poles."""
    await store_poles(cluster_url, cluster=True)
    async with zoned_gateway(cluster_url, zones_file) as started:
        yield started


async def on_duty(client: TestClient[Any, Any], unit: str, lon: float, lat: float) -> None:
    resp = await client.post("/api/patrol/duty", headers=bearer(unit_token(unit)),
                             json={"duty": "on_duty", "lon": lon, "lat": lat})  # fmt: skip
    assert resp.status == 202, await resp.text()


async def one_unit_in_each(client: TestClient[Any, Any], dispatch_round: Run) -> None:
    """U1 on duty in Nanshan, U2 in Futian, both known to the dispatcher."""
    await on_duty(client, "U1", NANSHAN.lon + 0.002, NANSHAN.lat)
    await on_duty(client, "U2", FUTIAN.lon + 0.002, FUTIAN.lat)
    await dispatch_round()


async def press(client: TestClient[Any, Any], pole: Pole, **headers: str) -> dict[str, Any]:
    resp = await client.post("/api/alarms", json={"pole": pole.code}, headers=headers)
    assert resp.status == 202, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def status(client: TestClient[Any, Any], answer: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = await (await client.get(answer["status_url"])).json()
    return got


async def test_an_alarm_reaches_the_nearest_unit_of_its_zone_and_the_ack_comes_back(
    client: TestClient[Any, Any], cluster: aioredis.Redis, dispatch_round: Run
) -> None:
    near = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
    assert (await frame(near, "hello"))["last"] == "0"
    # A unit new to the deployment has no zone (no inbox, no stream) until it says where
    # it is: anything else is refused, not guessed.
    await near.send_json({"type": "ack", "incident": "nanshan-1", "ref": 1})
    refused = await frame(near, "error")
    assert refused["ref"] == 1 and "report a position first" in refused["error"]
    await near.send_json({"type": "duty", "duty": "on_duty", "grid": NANSHAN.grid,
                          "lon": NANSHAN.lon + 0.002, "lat": NANSHAN.lat})  # fmt: skip
    await frame(near, "ok")
    await on_duty(client, "U2", NANSHAN.lon + 0.02, NANSHAN.lat)
    assert await cluster.hget(keys.UNIT_ZONES, "U1") == b"nanshan"
    await dispatch_round()

    answer = await press(client, NANSHAN)
    assert answer["alarm"].startswith("nanshan:")
    assert await cluster.xlen(keys.zone("nanshan").alarms) == 1
    assert await cluster.xlen(keys.ALARMS) == await cluster.xlen(keys.zone("futian").alarms) == 0
    assert (await status(client, answer))["status"] == "received"
    await dispatch_round()

    pushed = (await frame(near, "inbox"))["message"]
    assert pushed["k"] == "dispatch" and pushed["pole"] == NANSHAN.code
    incident = pushed["incident"]
    assert incident.startswith("nanshan-")
    dispatched = await status(client, answer)
    assert dispatched["status"] == "dispatched" and dispatched["incident"] == incident
    assert 190 < dispatched["units"][0]["distance_m"] < 220

    await near.send_json({"type": "ack", "incident": incident})
    await frame(near, "ok")
    await dispatch_round()
    state = await cluster.hget(keys.zone("nanshan").incident(incident), "state")
    assert state == b"acknowledged"
    assert (await status(client, answer))["status"] == "on_the_way"
    await near.close()


def border_places(zones: ZoneMap, inside: str, outside: str) -> tuple[Any, Any]:
    """A place in zone ``inside`` about 150 m from zone ``outside``, and one across the border
    about 150 m into ``outside``, on the line between two test poles (about 14 km apart)."""
    (lon0, lat0), (lon1, lat1) = (NANSHAN.lon, NANSHAN.lat), (FUTIAN.lon, FUTIAN.lat)

    def at(t: float) -> tuple[float, float]:
        return lon0 + t * (lon1 - lon0), lat0 + t * (lat1 - lat0)

    assert zones.locate(*at(0)) == outside and zones.locate(*at(1)) == inside
    lo, hi = 0.0, 1.0  # bisect the crossing
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if zones.locate(*at(mid)) == outside else (lo, mid)
    step = 150 / 14_000
    return at(hi + step), at(lo - step)


async def test_a_border_alarm_taken_next_door_is_followed_by_its_status(
    cluster_url: str, zones_file: Path, zones: ZoneMap, cluster: aioredis.Redis,
    dispatch_round: Run,
) -> None:  # fmt: skip
    (plon, plat), (ulon, ulat) = border_places(zones, "futian", "nanshan")
    assert (zones.locate(plon, plat), zones.locate(ulon, ulat)) == ("futian", "nanshan")
    pole = Pole(code="1204400", lon=plon, lat=plat, city=TEST_CITY, district="Futian")
    await store_poles(cluster_url, (*TEST_POLES, pole), cluster=True)
    async with zoned_gateway(cluster_url, zones_file) as client:
        await on_duty(client, "U1", ulon, ulat)  # across the border: Futian has no unit
        await dispatch_round()
        answer = await press(client, pole)
        assert answer["alarm"].startswith("futian:")
        await dispatch_round()
        route = await cluster.get(keys.zone("futian").alarm_route(answer["alarm"]))
        assert route == b"nanshan"  # the dispatcher sent it next door
        got = await status(client, answer)
        assert got["status"] == "dispatched" and got["incident"].startswith("nanshan-")
        assert [u["unit"] for u in got["units"]] == ["U1"] and got["units"][0]["distance_m"] < 400


async def test_operators_see_and_override_incidents_of_every_zone(
    client: TestClient[Any, Any], cluster: aioredis.Redis, dispatch_round: Run
) -> None:
    await one_unit_in_each(client, dispatch_round)
    first = await press(client, NANSHAN)
    await dispatch_round()  # so the two incidents are created in a known order
    second = await press(client, FUTIAN)
    await dispatch_round()

    listed = await (await client.get("/api/incidents", headers=OPERATOR)).json()
    ids = [i["id"] for i in listed["incidents"]]
    assert [zone_of(i) for i in ids] == ["futian", "nanshan"]  # newest first
    assert [i["state"] for i in listed["incidents"]] == ["dispatched", "dispatched"]
    one = await (await client.get("/api/incidents?limit=1", headers=OPERATOR)).json()
    assert [i["id"] for i in one["incidents"]] == ids[:1]
    units = await (await client.get("/api/units", headers=OPERATOR)).json()
    assert [(u["id"], u["status"]) for u in units["units"]] == [
        ("U1", "dispatched"), ("U2", "dispatched")]  # fmt: skip

    futian = ids[0]
    detail = await (await client.get(f"/api/incidents/{futian}", headers=OPERATOR)).json()
    assert detail["incident"]["units"] == ["U2"]
    assert [a["id"] for a in detail["alarms"]] == [second["alarm"]]
    assert {"new", "dispatched"} <= {e["event"] for e in detail["timeline"]}
    table = await client.get("/api/console/reports/incidents.csv", headers=OPERATOR)
    rows = await table.text()
    assert table.status == 200 and all(i in rows for i in ids)
    cap = await client.get(f"/api/console/incidents/{futian}/export.cap", headers=OPERATOR)
    assert cap.status == 200 and futian in await cap.text()

    cancel = await client.post(f"/api/incidents/{futian}/cancel", headers=OPERATOR,
                               json={"reason": "prank"})  # fmt: skip
    assert cancel.status == 202
    assert await cluster.xlen(keys.zone("futian").commands) == 1
    merge = await client.post(f"/api/incidents/{ids[1]}/merge", headers=OPERATOR,
                              json={"other": futian})  # fmt: skip
    assert merge.status == 422 and "different dispatch zones" in (await merge.json())["error"]
    nowhere = await client.post("/api/incidents/mars-1/cancel", headers=OPERATOR,
                                json={"reason": "test"})  # fmt: skip
    assert nowhere.status == 404
    assert (await client.get("/api/incidents/mars-1", headers=OPERATOR)).status == 404
    await dispatch_round()

    assert (await status(client, second))["status"] == "cancelled"
    assert (await status(client, first))["status"] == "dispatched"
    still = await (await client.get("/api/incidents", headers=OPERATOR)).json()
    assert [i["id"] for i in still["incidents"]] == ids[1:]
    lonely = await client.post("/api/patrol/incidents/nanshan-1/status", json={
        "action": "en_route"}, headers=bearer(unit_token("U9")))  # fmt: skip
    assert lonely.status == 409 and "report a position first" in (await lonely.json())["error"]


async def next_event(resp: aiohttp.ClientResponse) -> tuple[str | None, Any]:
    """``(event, data)``: the next event of an event stream."""
    name = None
    while True:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            return name, json.loads(line[6:])


def zone_of(incident: str) -> str:
    return incident.rpartition("-")[0]


async def test_the_live_feed_follows_every_zone(
    client: TestClient[Any, Any], dispatch_round: Run
) -> None:
    await one_unit_in_each(client, dispatch_round)
    live = await client.get(f"/api/console/live?token={operator_token('ada')}")
    assert live.status == 200
    async with asyncio.timeout(10):
        kind, picture = await next_event(live)
    assert kind == "picture" and [u["id"] for u in picture["units"]] == ["U1", "U2"]

    # A duty change no audit entry names: Futian's dispatcher announces it on its zone's
    # channel, published on its shard, heard through the gateway's subscription.
    await on_duty(client, "U3", FUTIAN.lon + 0.004, FUTIAN.lat)
    await dispatch_round()
    async with asyncio.timeout(10):
        while True:
            kind, data = await next_event(live)
            if kind == "units" and [u for u in data if u["id"] == "U3"]:
                break
    (u3,) = [u for u in data if u["id"] == "U3"]
    assert (u3["duty"], u3["status"]) == ("on_duty", "available")

    await press(client, NANSHAN)
    await press(client, FUTIAN)
    await dispatch_round()
    seen: set[str] = set()
    async with asyncio.timeout(10):  # both zones' audit streams reach the console
        while seen != {"nanshan", "futian"}:
            kind, data = await next_event(live)
            if kind == "audit":
                seen |= {zone_of(e["incident"]) for e in data if e["event"] == "dispatched"}
    live.close()

    again = await client.get(f"/api/console/live?token={operator_token('ada')}")
    async with asyncio.timeout(10):
        kind, picture = await next_event(again)
    assert kind == "picture"
    assert sorted(zone_of(i["id"]) for i in picture["incidents"]) == ["futian", "nanshan"]
    audit = picture["audit"]
    assert {zone_of(e["incident"]) for e in audit} == {"futian", "nanshan"}
    assert [e["id"] for e in audit] == sorted(
        (e["id"] for e in audit), key=lambda i: tuple(map(int, i.split("-"))))  # fmt: skip
    again.close()


@pytest.fixture
def behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test client is on loopback: make it a trusted proxy, so X-Forwarded-For names the
    caller, and exempt nobody from the limits."""
    monkeypatch.setenv("POLEWATCH_RATELIMIT_EXEMPT", "[]")
    monkeypatch.setenv("POLEWATCH_RATELIMIT_TRUSTED_PROXIES", '["127.0.0.1/32"]')


async def flood(client: TestClient[Any, Any], cluster: aioredis.Redis) -> None:
    """Pole A's budget spent by ten callers, then a flooder at pole A, B and Futian: the
    limits per pole and per caller hold, and a press the pole refused costs the caller
    nothing."""
    pole_a, pole_b = TEST_POLES[0], TEST_POLES[2]
    flooder = "203.0.113.9"

    async def press_as(pole: Pole, caller: str) -> tuple[int, str]:
        resp = await client.post("/api/alarms", json={"pole": pole.code},
                                 headers={"X-Forwarded-For": caller})  # fmt: skip
        return resp.status, (await resp.json()).get("error", "")

    for n in range(1, 11):
        assert (await press_as(pole_a, f"192.0.2.{n}"))[0] == 202
    for _ in range(3):
        got = await press_as(pole_a, flooder)
        assert got[0] == 429 and "help has been asked for there already" in got[1]
    answers = [await press_as(pole_b, flooder) for _ in range(10)]
    assert [s for s, _ in answers] == [202] * 10
    got = await press_as(FUTIAN, flooder)
    assert got[0] == 429 and "too many alarms from your address" in got[1]
    assert await cluster.xlen(keys.zone("nanshan").alarms) == 20
    assert await cluster.xlen(keys.zone("futian").alarms) == 0
    assert await cluster.pttl(keys.ratelimit("alarms", flooder)) > 0  # expires once full


async def test_rate_limits_hold_across_shards(
    behind_a_proxy: None, client: TestClient[Any, Any], cluster: aioredis.Redis
) -> None:  # (the limits are read when the gateway starts: behind_a_proxy comes first)
    # the caller's and the pole's bucket are on different shards: one script cannot do both
    caller, pole = keys.ratelimit("alarms", "203.0.113.9"), keys.ratelimit("pole", "3101201")
    assert key_slot(caller.encode()) != key_slot(pole.encode())
    await flood(client, cluster)


async def test_the_gateway_needs_no_more_than_its_acl_role_on_a_cluster(
    cluster_url: str, zones_file: Path, cluster: aioredis.Redis, dispatch_round: Run,
    behind_a_proxy: None,
) -> None:  # fmt: skip
    admin = RedisCluster.from_url(cluster_url)
    acl.apply(admin, "gw-zoned", "gateway", "gw-secret-pass")
    try:
        await store_poles(cluster_url, cluster=True)
        user_url = cluster_url.replace("redis://", "redis://gw-zoned:gw-secret-pass@")
        async with zoned_gateway(user_url, zones_file) as client:
            unit = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
            await frame(unit, "hello")
            await unit.send_json({"type": "duty", "duty": "on_duty",
                                  "lon": NANSHAN.lon + 0.002, "lat": NANSHAN.lat})  # fmt: skip
            await frame(unit, "ok")
            await dispatch_round()
            await flood(client, cluster)
            await dispatch_round()
            assert (await frame(unit, "inbox"))["message"]["k"] == "dispatch"
            listed = await (await client.get("/api/incidents", headers=OPERATOR)).json()
            assert [zone_of(i["id"]) for i in listed["incidents"]] == ["nanshan", "nanshan"]
            live = await client.get(f"/api/console/live?token={operator_token('ada')}")
            async with asyncio.timeout(10):
                assert (await next_event(live))[0] == "picture"
            live.close()
            await unit.close()
    finally:
        admin.acl_deluser("gw-zoned", target_nodes=RedisCluster.ALL_NODES)
        admin.close()
