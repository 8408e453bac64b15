"""The caller's position as a call-taker gets it (typed, a pasted map link, a phone's location
fix), parsed offline, and the lookup API that takes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.maplinks import PositionError, parse_position, wgs84_to_gcj02
from gateway.testing import TEST_POLES, bearer, gateway_client, operator_token, store_poles
from polewatch.geo import haversine_m

LAT, LON = 22.5431, 114.0579  # Futian


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("22.5431, 114.0579", "coordinates"),
        ("22.5431 114.0579", "coordinates"),
        ("114.0579,22.5431", "coordinates"),  # longitude first: cannot be a latitude
        ("22.5431°N 114.0579°E", "coordinates"),
        ("N22.5431 E114.0579", "coordinates"),
        ("22°32'35.16\"N 114°03'28.44\"E", "coordinates"),
        ("geo:22.5431,114.0579;u=35", "geo"),
        ("https://www.google.com/maps?q=22.5431,114.0579", "google"),
        ("https://www.google.com/maps/place/Civic+Centre/@22.5431,114.0579,17z", "google"),
        ("maps.google.com/?q=22.5431,114.0579", "google"),
        ("https://www.openstreetmap.org/?mlat=22.5431&mlon=114.0579#map=17/1/1", "osm"),
        ("https://www.openstreetmap.org/#map=18/22.5431/114.0579", "osm"),
        ("https://www.bing.com/maps?cp=22.5431~114.0579&lvl=16", "bing"),
        ("https://maps.apple.com/?ll=22.5431,114.0579&q=Here", "apple"),
        ("https://api.map.baidu.com/marker?location=22.5431,114.0579&coord_type=wgs84", "baidu"),
        ('A"ML=1;lt=+22.54310;lg=+114.05790;rd=50;top=20260101120000;pm=G', "aml"),
        ("lt=22.5431 lg=114.0579", "aml"),
    ],
)
def test_formats(text: str, source: str) -> None:
    fix = parse_position(text)
    assert fix.source == source
    assert haversine_m(fix.lon, fix.lat, LON, LAT) < 2.0


def test_chinese_map_links_are_brought_back_to_wgs84() -> None:
    gcj_lon, gcj_lat = wgs84_to_gcj02(LON, LAT)
    shifted = haversine_m(gcj_lon, gcj_lat, LON, LAT)
    assert 300 < shifted < 800  # what an unconverted Amap link would be off by
    for link in (
        f"https://uri.amap.com/marker?position={gcj_lon:.6f},{gcj_lat:.6f}&name=x",
        f"https://apis.map.qq.com/uri/v1/marker?marker=coord:{gcj_lat:.6f},{gcj_lon:.6f}",
    ):
        fix = parse_position(link)
        assert fix.datum == "gcj02"
        assert haversine_m(fix.lon, fix.lat, LON, LAT) < 5.0, link
    # Baidu's own datum (BD-09) is GCJ-02 shifted again, by about 1 km here
    baidu = parse_position("https://api.map.baidu.com/marker?location=22.5466,114.0693")
    assert baidu.datum == "bd09"
    assert haversine_m(baidu.lon, baidu.lat, LON, LAT) < 150


@pytest.mark.parametrize(
    "text",
    ["", "   ", "Futian", "22.5431", "95, 200", "0, 0", "geo:abc", "N22 N23",
     "https://www.google.com/maps/place/Civic+Centre", "lt=22.5", "x" * 3000],
)  # fmt: skip
def test_refusals_say_why(text: str) -> None:
    with pytest.raises(PositionError) as refused:
        parse_position(text)
    assert str(refused.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_is_a_fix_or_a_position_error(text: str) -> None:
    try:
        fix = parse_position(text)
    except PositionError:
        return
    assert -180 <= fix.lon <= 180 and -90 <= fix.lat <= 90


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=-84, max_value=84).filter(lambda v: abs(v) > 1e-3),
    st.floats(min_value=-179, max_value=179).filter(lambda v: abs(v) > 90.5 or abs(v) < 89),
    st.sampled_from(["{lat}, {lon}", "geo:{lat},{lon}", "https://www.google.com/maps?q={lat},{lon}",
                     "https://www.openstreetmap.org/#map=16/{lat}/{lon}", "lt={lat};lg={lon}"]),
)  # fmt: skip
def test_written_positions_read_back(lat: float, lon: float, form: str) -> None:
    fix = parse_position(form.format(lat=f"{lat:.6f}", lon=f"{lon:.6f}"))
    if abs(lon) <= 90 and form == "{lat}, {lon}":
        assert (fix.lat, fix.lon) == (round(float(f"{lat:.6f}"), 7), round(float(f"{lon:.6f}"), 7))
    assert abs(fix.lat - lat) < 1e-5 and abs(fix.lon - lon) < 1e-5


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


async def test_the_lookup_takes_a_pasted_link(client: TestClient[Any, Any]) -> None:
    pole = TEST_POLES[0]
    headers = bearer(operator_token("alice"))
    far = f"https://www.openstreetmap.org/#map=17/{pole.lat}/{pole.lon + 0.12}"
    resp = await client.get(f"/api/poles/{pole.code}", params={"at": far}, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["caller"]["source"] == "osm"
    assert "far_from_caller" in body["checks"]
    assert body["candidates"][0]["distance_m"] > 12_000
    resp = await client.get(f"/api/poles/{pole.code}", params={"at": "Futian"}, headers=headers)
    assert resp.status == 422 and "'at'" in (await resp.json())["error"]


async def test_a_rough_fix_is_far_only_beyond_its_own_radius(client: TestClient[Any, Any]) -> None:
    pole = TEST_POLES[0]
    headers = bearer(operator_token("alice"))
    five_km_east = pole.lon + 0.0487
    for radius, far in ((50, True), (4000, False)):  # a GPS fix, a cell's
        fix = f"lt={pole.lat};lg={five_km_east};rd={radius}"
        resp = await client.get(f"/api/poles/{pole.code}", params={"at": fix}, headers=headers)
        body = await resp.json()
        assert body["caller"]["accuracy_m"] == radius
        assert ("far_from_caller" in body["checks"]) is far, radius
