"""Dispatch zones: loading a zones file, placing points, the cached border distances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polewatch import keys
from polewatch.zones import ZoneError, ZoneMap

LON = st.floats(113.70, 114.70)
LAT = st.floats(22.40, 22.90)


@pytest.fixture(scope="module")
def zones(zones_file: Path) -> ZoneMap:
    return ZoneMap.load(zones_file)


def test_shenzhen_districts_are_ten_zones(zones: ZoneMap) -> None:
    assert zones.zoned and len(zones.names) == 10
    assert zones.locate(114.05, 22.54) == "futian"  # Futian CBD
    assert zones.locate(113.93, 22.52) == "nanshan"  # Shekou side
    assert zones.locate(114.502, 22.571) == "dapeng"  # its centroid
    assert zones.locate(114.80, 22.10) == "dapeng"  # out at sea: the nearest zone
    # Keys of a named zone share one hash tag; incident ids name their zone.
    z = keys.zone("futian")
    assert {z.alarms, z.incident("futian-3"), z.unit_inbox("U1")} == {
        "pw:{futian}:alarms", "pw:{futian}:incident:futian-3", "pw:{futian}:unit:U1:inbox"
    }  # fmt: skip
    assert keys.zone_of_incident("futian-3") is z and keys.zone_of_incident("17") is keys.DEFAULT


def test_without_zones_everything_is_the_default_zone() -> None:
    single = ZoneMap.load("")
    assert not single.zoned and single.names == ("",)
    assert single.locate(0.0, 0.0) == "" and single.border_m(1, 2, "", 1e9) == float("inf")
    assert single.all_keys() == [keys.DEFAULT] and keys.DEFAULT.alarms == "pw:alarms"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lon=LON, lat=LAT, within=st.floats(0, 40_000))
def test_cached_bounds_never_exceed_the_exact_distances(
    zones: ZoneMap, lon: float, lat: float, within: float
) -> None:
    exact = zones.distances(lon, lat, within)
    near = set(zones.near(lon, lat, within))
    assert {name for _, name in exact} <= near  # a superset: no zone within reach is missed
    home = zones.locate(lon, lat)
    others = [d for d, name in zones.distances(lon, lat, 1e9) if name != home]
    bound = zones.border_m(lon, lat, home, within)
    if others and others[0] <= within:
        assert bound <= others[0] + 1e-6
    if bound != float("inf"):
        assert bound <= within


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(doc=st.one_of(JSONISH, st.fixed_dictionaries({"features": st.lists(JSONISH, max_size=3)})))
def test_any_zones_file_loads_or_fails_with_zone_error(tmp_path_factory: Any, doc: Any) -> None:
    path = tmp_path_factory.mktemp("zones") / "z.geojson"
    path.write_text(json.dumps(doc))
    try:
        loaded = ZoneMap.load(path)
    except ZoneError as exc:
        assert str(path) in str(exc)
    else:
        assert loaded.zoned


def test_bad_zone_names_and_duplicates_are_refused(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    for names, message in ((["Bad Name"], "no usable zone name"), (["a", "a"], "unique")):
        doc = {"features": [{"properties": {"zone": n}, "geometry": square} for n in names]}
        path = tmp_path / "z.geojson"
        path.write_text(json.dumps(doc))
        with pytest.raises(ZoneError, match=message):
            ZoneMap.load(path)
