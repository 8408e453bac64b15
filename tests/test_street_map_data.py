"""What the street map loads from the gateway, over real HTTP on a real Redis: the road network
(from the shared road files, then from the city's imported roads), sent once with its ETag and
gzip, only to people who may see the map; the vendored map library and nothing else beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.console.mapdata import road_features
from gateway.console.settings import ConsoleSettings
from gateway.testing import TEST_CITY, bearer, gateway_client, operator_token, unit_token
from polewatch import geo
from polewatch.roads import RoadStore, Way, build_network, to_geojson

ROADS = "/api/console/map/roads"


async def test_roads_come_once_with_etag_and_gzip_to_map_viewers_only(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        who = bearer(operator_token("ada"))
        answer = await client.get(ROADS, headers={**who, "Accept-Encoding": "gzip"})
        assert answer.status == 200
        assert answer.headers["Content-Encoding"] == "gzip"
        assert answer.headers["Content-Type"].startswith("application/geo+json")
        roads = await answer.json()
        assert len(roads["features"]) > 4000
        assert roads["attribution"] == "© OpenStreetMap contributors"
        assert "深南大道" in {f["properties"]["name"] for f in roads["features"]}
        again = await client.get(ROADS, headers={**who, "If-None-Match": answer.headers["ETag"]})
        assert again.status == 304
        assert (await client.get(ROADS, headers=bearer(unit_token("P-1")))).status == 200
        assert (await client.get(ROADS)).status == 401


async def test_roads_follow_the_city_import(redis_url: str, aredis: Any) -> None:
    line = [(114.05, 22.54), (114.06, 22.541)]
    ways = [Way(source="test", feature=1, coords=line, name="测试路", highway="primary")]
    async with gateway_client(redis_url) as client:
        who = bearer(operator_token("ada"))
        before = await client.get(ROADS, headers=who)
        await RoadStore(aredis, TEST_CITY).store(build_network(ways), to_geojson(ways))
        after = await client.get(ROADS, headers=who)
        assert after.headers["ETag"] != before.headers["ETag"]
        assert [f["properties"]["name"] for f in (await after.json())["features"]] == ["测试路"]


async def test_the_vendored_map_library_is_served_and_nothing_else(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        module = await client.get(
            "/console/static/vendor/maplibre-gl.mjs", headers={"Accept-Encoding": "gzip"}
        )
        assert module.status == 200
        assert module.headers["Content-Type"].startswith("text/javascript")
        assert "MapLibre GL JS" in (await module.text())[:200]
        style = await client.get("/console/static/vendor/maplibre-gl.css")
        assert style.headers["Content-Type"].startswith("text/css")
        for name in ("VENDOR.md", "LICENSE.txt", "maplibre-gl.mjs.map", "..%2Fpages.py"):
            assert (await client.get(f"/console/static/vendor/{name}")).status == 404
        page = await client.get("/console/")
        policy = page.headers["Content-Security-Policy"]
        assert "worker-src 'self';" in policy and "script-src 'self';" in policy


def test_the_vendored_files_match_vendor_md() -> None:
    import hashlib

    folder = Path(__file__).resolve().parent.parent / "gateway/console/static/vendor"
    listed = (folder / "VENDOR.md").read_text()
    for name in ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css", "LICENSE.txt"):
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() in listed, name


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
POINT = (
    st.tuples(st.floats(113.0, 115.0), st.floats(22.0, 23.0))
    | st.tuples(st.floats() | st.integers(), st.floats() | st.integers())
    | JSON
)
LINE = st.lists(st.tuples(st.floats(113.0, 115.0), st.floats(22.0, 23.0)), min_size=2, max_size=4)
FEATURE = st.fixed_dictionaries({
    "geometry": st.fixed_dictionaries({
        "type": st.just("LineString") | st.sampled_from(["Point", "Polygon"]) | JSON,
        "coordinates": LINE | st.lists(POINT, max_size=5) | JSON,
    }) | JSON,
    "properties": st.dictionaries(st.sampled_from(["name", "highway"]), JSON) | JSON,
}) | JSON  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"features": st.lists(FEATURE, max_size=6) | JSON}) | JSON)
def test_any_road_document_gives_only_drawable_lines(document: Any) -> None:
    for feature in road_features(document):
        line = feature["geometry"]["coordinates"]
        assert len(line) >= 2 and all(geo.plausible(x, y) for x, y in line)
        assert isinstance(feature["properties"]["name"], str)
        json.dumps(feature, allow_nan=False)


async def test_a_configured_tile_server_is_the_only_other_origin_allowed(redis_url: str) -> None:
    tiles = ConsoleSettings(tile_url="https://tiles.example:8443/{z}/{x}/{y}.png")
    async with gateway_client(redis_url, console=tiles) as client:
        policy = (await client.get("/console/")).headers["Content-Security-Policy"]
        assert "img-src 'self' data: blob: https://tiles.example:8443;" in policy
        assert "connect-src 'self' https://tiles.example:8443;" in policy  # MapLibre fetch()es
        assert "script-src 'self';" in policy and "worker-src 'self';" in policy
