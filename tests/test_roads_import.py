"""Importing road files: the report of bad features, snapping near-misses, the CLI, the
parser under hypothesis."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from polewatch.cli import main
from polewatch.roads import FeatureError, RoadsError, build_network, parse_feature, read_roads
from polewatch.zones import ZoneMap


def feature(coords: Any, *, kind: str = "LineString", **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"highway": "primary", "name": "深南大道", **props},
        "geometry": {"type": kind, "coordinates": coords},
    }


GOOD = [[114.05, 22.54], [114.06, 22.54]]
BAD_FILE: list[Any] = [
    feature(GOOD, osm_id=1),  # 1 kept
    {"type": "Feature", "properties": {"osm_id": 2}},  # 2
    feature([114.05, 22.54], kind="Point"),  # 3
    feature([[114.05, 22.54]]),  # 4
    feature([[114.05, float("nan")], [114.06, 22.54]]),  # 5
    feature([[200.0, 22.54], [114.06, 22.54]]),  # 6
    feature([[114.05, 22.52], [114.06, 22.53], [114.06, 22.52], [114.05, 22.53]]),  # 7 kept: 2
    feature([[114.05, 22.55], [114.05, 22.55]]),  # 8
    feature([[114.05, 22.56], [114.06, 22.56]], name=""),  # 9 kept, unnamed
    feature([[114.05, 22.57], [114.06, 22.57]], highway="footway"),  # 10
    feature(GOOD, osm_id=11),  # 11 duplicate of 1
    feature([[121.5, 25.0], [121.51, 25.0]]),  # 12 Taipei: outside the zones
    5,  # 13
    feature(
        [[[114.06, 22.54], [114.06, 22.55]], [[114.06, 22.55], [114.07, 22.55]]],
        kind="MultiLineString",
    ),  # 14 kept: two ways
    feature([[114.05, "22.5"], [114.06, 22.54]]),  # 15
]
REASONS = {
    2: "no geometry",
    3: "geometry is 'Point', not a LineString or MultiLineString",
    4: "fewer than 2 points",
    5: "point 1 has a coordinate that is not finite",
    6: "point 1 has impossible coordinates (200.0, 22.54)",
    8: "zero length",
    10: "not drivable (highway=footway)",
    12: "outside every zone",
    13: "the feature is not an object",
    15: "point 1 has a coordinate that is not a number",
}


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": BAD_FILE}))
    return path


def test_bad_features_are_reported_by_number_and_the_good_ones_kept(
    bad_file: Path, zones_file: Path
) -> None:
    report = read_roads([bad_file], zones=ZoneMap.load(zones_file))
    assert {p.feature: p.reason for p in report.problems} == REASONS
    assert [p.osm_id for p in report.problems if p.feature == 2] == [2]
    assert [(d.feature, d.reason) for d in report.duplicates] == [
        (11, "identical to feature 1 (kept once)")
    ]
    assert [w.feature for w in report.ways] == [1, 7, 7, 9, 14, 14]
    assert [(n.feature, n.reason) for n in report.notes] == [
        (7, "crosses itself: imported as 2 simple way(s)")
    ]
    assert report.unnamed == 1 and report.features == len(BAD_FILE)
    net = build_network(report.ways)
    assert net.edges == 7 and net.route(114.05, 22.54, 114.07, 22.55) is not None
    assert net.route(114.05, 22.52, 114.05, 22.53) is not None  # the bow tie, driven through


def test_dangling_ends_snap_to_near_roads_but_flyovers_do_not(tmp_path: Path) -> None:
    street = feature([[114.00, 22.50], [114.01, 22.50]], name="横街")
    near = feature([[114.005, 22.501], [114.005, 22.50002]], name="近街")  # ends 2.2 m short
    far = feature([[114.007, 22.501], [114.007, 22.50006]], name="远街")  # ends 6.7 m short
    flyover = feature(
        [[114.003, 22.499], [114.00301, 22.50001], [114.003, 22.501]], name="高架", highway="trunk"
    )  # passes 1 m over, no end near
    net = build_network([w for f in (street, near, far, flyover) for w in parse_feature(f)])
    assert net.route(114.005, 22.501, 114.0, 22.50) is not None
    assert net.route(114.007, 22.501, 114.0, 22.50) is None
    assert net.route(114.003, 22.499, 114.0, 22.50) is None


def test_cli_import_writes_a_version_and_reports(
    bad_file: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["roads", "import", str(bad_file), "--city", "t", "--redis-url", redis_url]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 1 and out["ways"] == 7  # no zones set: Taipei is kept
    assert out["refused"] == len(REASONS) - 1
    assert main([*args, "--strict"]) == 1
    assert "stored the road graph of 't' (version 2)" in capsys.readouterr().out
    route = ["roads", "route", "114.05,22.54", "114.07,22.55", "--city", "t"]
    assert main([*route, "--redis-url", redis_url, "--lang", "en"]) == 0
    assert "by road, about" in capsys.readouterr().out
    assert main([*route, "--redis-url", redis_url, "--lang", "zh-CN"]) == 0
    assert "驾车" in capsys.readouterr().out
    nowhere = ["roads", "route", "114.05,22.54", "114.5,22.9", "--city", "t"]
    assert main([*nowhere, "--redis-url", redis_url, "--lang", "en"]) == 1
    assert "No route" in capsys.readouterr().out
    (bad_file.parent / "x.geojson").write_text('{"type": "Feature"}')
    assert main(["roads", "import", str(bad_file.parent / "x.geojson"), "--dry-run"]) == 2
    assert "not a GeoJSON FeatureCollection" in capsys.readouterr().err


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(min_value=113.9, max_value=114.1),
)
near = st.tuples(st.floats(113.99, 114.01), st.floats(22.49, 22.51)).map(list)
points = st.one_of(
    near,
    st.lists(numbers, min_size=0, max_size=3),
    st.text(max_size=3),
    st.none(),
)
lines = st.lists(near, min_size=2, max_size=6) | st.lists(points, max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
props = st.dictionaries(
    st.sampled_from(["highway", "name", "name:en", "osm_id", "oneway", "maxspeed", "junction"]),
    json_values | st.sampled_from(["yes", "-1", "60 mph", "footway", "roundabout", "motorway"]),
)
good_line = st.lists(near, min_size=2, max_size=6, unique_by=tuple)
lineish = st.fixed_dictionaries(
    {"type": st.just("LineString"), "coordinates": good_line}
) | st.fixed_dictionaries(
    {"type": st.just("MultiLineString"), "coordinates": st.lists(good_line, min_size=1, max_size=3)}
)
geometries = (
    lineish
    | json_values
    | st.fixed_dictionaries(
        {
            "type": st.sampled_from(["LineString", "MultiLineString", "Point", 3]),
            "coordinates": lines | st.lists(lines, min_size=1, max_size=3) | json_values,
        }
    )
)
features = json_values | st.fixed_dictionaries(
    {"type": st.just("Feature"), "properties": props | json_values, "geometry": geometries}
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(features)
def test_any_feature_builds_or_is_refused_with_a_reason(value: Any) -> None:
    try:
        ways = parse_feature(value)
    except FeatureError as exc:
        assert str(exc)
        event(f"refused: {str(exc).split(' ')[0]}")
        return
    event("built")
    assert ways
    for way in ways:
        assert len(way.coords) >= 2 and way.highway
    net = build_network(ways)
    lon, lat = ways[0].coords[0]
    assert net.snap(lon, lat) is not None or net.edges == 0


OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="polewatch test">
  <node id="1" lat="22.5400" lon="114.0500" version="1"/>
  <node id="2" lat="22.5400" lon="114.0600" version="1"/>
  <node id="3" lat="22.5500" lon="114.0600" version="1"/>
  <node id="4" lat="22.5500" lon="114.0700" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="primary"/>
    <tag k="name" v="深南大道"/><tag k="name:en" v="Shennan Boulevard"/></way>
  <way id="11" version="1"><nd ref="3"/><nd ref="2"/><nd ref="99"/><tag k="highway" v="secondary"/>
    <tag k="oneway" v="-1"/></way>
  <way id="12" version="1"><nd ref="3"/><nd ref="4"/><tag k="building" v="yes"/></way>
  <way id="13" version="1"><nd ref="98"/><nd ref="4"/><tag k="highway" v="residential"/></way>
  <way id="14" version="1"><nd ref="3"/><nd ref="4"/><tag k="highway" v="footway"/></way>
</osm>
"""


@pytest.mark.parametrize("suffix", [".osm", ".osm.pbf"])
def test_openstreetmap_files_import_through_pyosmium(tmp_path: Path, suffix: str) -> None:
    import osmium

    xml = tmp_path / "roads.osm"
    xml.write_text(OSM_XML, encoding="utf-8")
    path = xml
    if suffix == ".osm.pbf":
        path = tmp_path / "roads.osm.pbf"
        with osmium.SimpleWriter(str(path)) as writer:
            for obj in osmium.FileProcessor(str(xml)):
                writer.add(obj)
    report = read_roads([path])
    assert [(w.osm_id, w.name, w.name_en, w.oneway) for w in report.ways] == [
        (10, "深南大道", "Shennan Boulevard", None),
        (11, None, None, -1),  # node 99 is not in the file: the known run is kept
    ]
    assert [(p.feature, p.osm_id, p.reason) for p in report.problems] == [
        (3, 13, "fewer than 2 points"),
        (4, 14, "not drivable (highway=footway)"),
    ]
    net = build_network(report.ways)  # way 11 runs 2 -> 3 (oneway=-1 against 3, 2)
    assert net.route(114.06, 22.54, 114.06, 22.55) is not None
    assert net.route(114.06, 22.55, 114.06, 22.54) is None
    (tmp_path / "bad.osm.pbf").write_bytes(b"not a pbf" * 10)
    with pytest.raises(RoadsError, match="not a readable OpenStreetMap file"):
        read_roads([tmp_path / "bad.osm.pbf"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
       cut=st.integers(0, 10**6) | st.none())  # fmt: skip
def test_damaged_pbf_files_are_read_or_refused_as_a_whole(
    tmp_path: Path, flips: list[tuple[int, int]], cut: int | None
) -> None:
    import osmium

    xml, pbf, damaged = tmp_path / "r.osm", tmp_path / "r.osm.pbf", tmp_path / "d.osm.pbf"
    if not pbf.exists():
        xml.write_text(OSM_XML, encoding="utf-8")
        with osmium.SimpleWriter(str(pbf)) as writer:
            for obj in osmium.FileProcessor(str(xml)):
                writer.add(obj)
    data = bytearray(pbf.read_bytes())
    for at, value in flips:
        data[at % len(data)] = value
    damaged.write_bytes(bytes(data if cut is None else data[: cut % len(data)]))
    try:
        report = read_roads([damaged])
    except RoadsError as exc:
        assert "d.osm.pbf" in str(exc)
        return
    assert all(len(w.coords) >= 2 for w in report.ways)


def test_real_ways_that_cross_themselves_are_imported_with_a_note(data_dir: Path) -> None:
    crossing = {549151492, 1194924348, 1194924350}  # service roads mapped out and back
    report = read_roads([data_dir / "roads" / "shenzhen_central_roads.geojson"])
    assert report.problems == []
    assert {n.osm_id for n in report.notes} == crossing
    assert all(n.reason.startswith("crosses itself: imported as") for n in report.notes)
    assert crossing <= {w.osm_id for w in report.ways}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=12))
def test_a_line_that_crosses_itself_is_imported_whole_in_simple_pieces(
    grid: list[tuple[int, int]],
) -> None:
    coords = [[114.0 + x * 1e-3, 22.5 + y * 1e-3] for x, y in grid]
    notes: list[str] = []
    try:
        ways = parse_feature(feature(coords), notes=notes)
    except FeatureError as exc:  # only a line without length may be refused
        assert str(exc) == "zero length"
        return
    lines = [shapely.LineString(w.coords) for w in ways]
    assert all(line.is_simple for line in lines)
    assert bool(notes) == (not shapely.LineString(coords).is_simple)
    assert set(segments(coords)) == {s for w in ways for s in segments(w.coords)}
    for k, way in enumerate(ways[1:], 1):  # each piece starts where the drive got to
        assert way.coords[0] in {c for w in ways[:k] for c in w.coords}


def segments(coords: Any) -> list[frozenset[tuple[float, float]]]:
    points = [(float(x), float(y)) for x, y in coords]
    return [frozenset(pair) for pair in itertools.pairwise(points) if pair[0] != pair[1]]
