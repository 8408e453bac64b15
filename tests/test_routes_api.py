"""Routes and road ETAs: ``GET /api/route`` answers the drive over the city's roads (or the
straight line where the graph cannot answer), refuses bad positions with 400 and callers
without a token; the citizen's status gives the dispatched unit's ETA by road."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import shapely
from aiohttp.test_utils import TestClient
from browser import launch
from hypothesis import given
from hypothesis import strategies as st
from playwright.async_api import async_playwright, expect

from gateway.routes import PointError, parse_point
from gateway.testing import (
    TEST_CITY,
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
    write_incident,
)
from polewatch import geo, keys, wire
from polewatch.roads import RoadStore, build_network, read_roads, to_geojson

# An L of two roads: from A east 1 km to B (primary), from B north 1 km to C (primary). A unit
# at A reaches C by road in about 2 km, though C is 1.4 km away by air.
A, B, C = (113.9300, 22.5200), (113.9397, 22.5200), (113.9397, 22.5290)
FAR = (114.2000, 22.7000)
"""More than a kilometre from every road: the graph cannot answer."""


@pytest.fixture
async def client(redis_url: str, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    roads = tmp_path / "roads.geojson"
    roads.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    _road(1, "科苑路", [A, B]),
                    _road(2, "高新南路", [B, C]),
                ],
            }
        )
    )
    report = read_roads([roads])
    store = aioredis.Redis.from_url(redis_url)
    try:
        net = build_network(report.ways, city=TEST_CITY)
        await RoadStore(store, TEST_CITY).store(net, to_geojson(report.ways))
    finally:
        await store.aclose()
    await store_poles(redis_url)
    async with gateway_client(redis_url, patrol_speed_mps=8.0) as client:
        yield client


def _road(osm_id: int, name: str, coords: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"osm_id": osm_id, "name": name, "highway": "primary"},
        "geometry": {"type": "LineString", "coordinates": coords},
    }


def _point(p: tuple[float, float]) -> str:
    return f"{p[0]},{p[1]}"


async def test_a_unit_gets_the_drive_along_the_roads(client: TestClient[Any, Any]) -> None:
    url = f"/api/route?from={_point(A)}&to={_point(C)}"
    answer = await (await client.get(url, headers=bearer(unit_token("U1")))).json()
    assert answer["source"] == "road"
    road_m = geo.haversine_m(*A, *B) + geo.haversine_m(*B, *C)
    assert answer["distance_m"] == pytest.approx(road_m, abs=20)
    assert answer["distance_m"] > geo.haversine_m(*A, *C) * 1.3  # not the straight line
    assert 60 < answer["eta_s"] < road_m / 3  # a car, not a walker
    assert answer["roads"] == ["科苑路", "高新南路"]
    coords = answer["coords"]
    assert coords[0] == pytest.approx(list(A)) and coords[-1] == pytest.approx(list(C))
    line = shapely.LineString([A, B, C])
    assert all(line.distance(shapely.Point(p)) < 1e-5 for p in coords)  # on the roads
    assert any(shapely.Point(p).distance(shapely.Point(B)) < 1e-5 for p in coords)  # the turn


async def test_an_operator_may_ask_too_and_nobody_else(client: TestClient[Any, Any]) -> None:
    url = f"/api/route?from={_point(C)}&to={_point(A)}"
    ok = await client.get(url, headers=bearer(operator_token("op1")))
    assert ok.status == 200 and (await ok.json())["source"] == "road"
    assert (await client.get(f"{url}&token={operator_token('boss', role='supervisor')}")).ok
    missing = await client.get(url)
    assert missing.status == 401 and "token" in (await missing.json())["error"]
    forged = await client.get(url, headers=bearer("not-a-token"))
    assert forged.status == 401


async def test_off_the_map_the_answer_is_the_straight_line(
    client: TestClient[Any, Any],
) -> None:
    url = f"/api/route?from={_point(A)}&to={_point(FAR)}"
    answer = await (await client.get(url, headers=bearer(unit_token("U1")))).json()
    assert answer["source"] == "straight"
    assert answer["coords"] == [list(A), list(FAR)]
    assert answer["distance_m"] == pytest.approx(geo.haversine_m(*A, *FAR), abs=1)
    assert answer["eta_s"] == pytest.approx(answer["distance_m"] / 8.0, abs=1)
    assert answer["roads"] == []


async def test_without_a_road_graph_the_answer_is_the_straight_line(
    redis_url: str,
) -> None:
    async with gateway_client(redis_url, city="nowhere") as client:
        url = f"/api/route?from={_point(A)}&to={_point(C)}"
        answer = await (await client.get(url, headers=bearer(unit_token("U1")))).json()
    assert answer["source"] == "straight" and len(answer["coords"]) == 2


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("to=113.93,22.52", "'from' is required"),
        ("from=113.93,22.52", "'to' is required"),
        ("from=&to=113.93,22.52", "'from' is required"),
        ("from=abc&to=113.93,22.52", "LON,LAT"),
        ("from=113.93;22.52&to=113.93,22.52", "LON,LAT"),
        ("from=1,2,3&to=113.93,22.52", "two numbers"),
        ("from=113.93,22.52&to=200,10", "not a possible position"),
        ("from=nan,1&to=113.93,22.52", "not a possible position"),
        ("from=0,0&to=113.93,22.52", "not a possible position"),
        (f"from={'1' * 70},1&to=113.93,22.52", "too long"),
    ],
)
async def test_bad_positions_get_400_with_the_reason(
    client: TestClient[Any, Any], query: str, why: str
) -> None:
    answer = await client.get(f"/api/route?{query}", headers=bearer(unit_token("U1")))
    assert answer.status == 400
    assert why in (await answer.json())["error"]


async def test_the_route_is_in_the_openapi_document(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    operation = doc["paths"]["/api/route"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to"}
    assert {"400", "401", "403"} <= set(operation["responses"])
    assert set(operation["x-roles"]) == {"unit", "operator", "supervisor"}


async def test_the_citizen_sees_the_units_eta_by_road(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    pole = TEST_POLES[0]  # at A: the incident is there
    alarm = (await (await client.post("/api/alarms", json={"pole": pole.code})).json())["alarm"]
    lon, lat = C
    await aredis.hset(
        keys.unit("U1"), mapping={"id": "U1", "status": "dispatched", "lon": lon, "lat": lat}
    )
    await aredis.hset(
        keys.unit("U2"), mapping={"id": "U2", "status": "dispatched", "lon": FAR[0], "lat": FAR[1]}
    )
    await write_incident(aredis, alarm, "dispatched", units="U1,U2", pole=pole)
    status = await (await client.get(f"/api/alarms/{alarm}")).json()
    by_road, off_map = status["units"]
    assert by_road["unit"] == "U1" and by_road["eta_source"] == "road"
    assert by_road["distance_m"] == pytest.approx(2000, abs=60)  # around the corner at B
    assert 60 < by_road["eta_s"] < by_road["distance_m"] / 3
    assert off_map["eta_source"] == "straight"
    assert off_map["eta_s"] == pytest.approx(off_map["distance_m"] / 8.0, rel=0.01)


async def test_the_help_page_says_how_long_by_road(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    pole = TEST_POLES[0]
    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(str(client.make_url(f"/p/{pole.code}?lang=en")))
        await page.locator("#help").click()
        await expect(page.locator("#status")).to_have_text("Your call for help was received.")
        entries: Any = await aredis.xrange(keys.ALARMS)
        alarm = wire.decode_entry(entries[0][1], wire.Alarm)
        await aredis.hset(keys.unit("U1"), mapping={"id": "U1", "lon": C[0], "lat": C[1]})
        await write_incident(aredis, alarm.id, "dispatched", units="U1", pole=pole)
        await expect(page.locator("#detail")).to_have_text(
            re.compile(r"Unit U1: 2\.0 km away by road, about [2-6] min by road")
        )
        await browser.close()
    assert errors == []


@given(st.text(max_size=80))
def test_any_text_is_a_position_or_a_clear_refusal(text: str) -> None:
    try:
        lon, lat = parse_point(text, "from")
    except PointError as exc:
        assert "'from'" in str(exc)
    else:
        assert geo.plausible(lon, lat)


@given(
    st.floats(-180, 180, allow_nan=False),
    st.floats(-85, 85, allow_nan=False),
)
def test_every_position_written_as_lon_lat_reads_back(lon: float, lat: float) -> None:
    text = f"{lon!r},{lat!r}"
    if geo.plausible(lon, lat) and len(text) <= 64:
        assert parse_point(text, "to") == (lon, lat)
    else:
        with pytest.raises(PointError):
            parse_point(text, "to")
