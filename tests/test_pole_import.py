"""Importing real pole inventories: every valid pole, code as printed; bad rows reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polewatch import keys
from polewatch.poles.inventory import InventoryError, read_inventory
from polewatch.poles.registry import _decode

DC = Path("poles") / "dc_ddot_streetlights_downtown.csv"
KC = Path("poles") / "kansascity_streetlights_sample.geojson"
HEADER = "STREETLIGHTID,STREETNAME,XCOORD,YCOORD\n"


def _dc_rows(data_dir: Path) -> list[dict[str, str]]:
    with (data_dir / DC).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_dc_inventory_imports_every_pole_with_its_printed_code(data_dir: Path) -> None:
    report = read_inventory(data_dir / DC, city="dc")
    assert report.rows == 3963 and len(report.poles) == 3963 and report.problems == []
    assert report.columns["id"] == "STREETLIGHTID"  # guessed, through the BOM
    codes = {p.code for p in report.poles}
    assert codes == {row["STREETLIGHTID"].strip() for row in _dc_rows(data_dir)}
    assert {"60206", "6U077"} <= codes
    assert any(c.endswith("DC") and c[:5].isdigit() for c in codes)  # the #####DC family
    first = report.poles[0]
    assert (first.code, first.lon, first.lat) == ("60206", -77.01292467, 38.89604969)
    assert first.road == "E ST" and first.grid is not None


def test_kansas_city_geojson_takes_positions_from_the_points(data_dir: Path) -> None:
    report = read_inventory(data_dir / KC, city="kc")
    assert (report.rows, len(report.poles), report.problems) == (111, 111, [])
    pole = report.poles[0]
    assert (pole.code, pole.lon, pole.lat) == ("SGQ0036", -94.49075022, 38.9128811)
    assert len({p.code for p in report.poles}) == 111


def test_explicit_mapping_is_used(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("tag;x_m;y_m;lon;lat\nA-1;0;0;114.05;22.55\nA-2;0;0;114.06;22.56\n")
    report = read_inventory(path, city="t", columns={"id": "tag", "lon": "lon", "lat": "lat"})
    assert [(p.code, p.lon) for p in report.poles] == [("A-1", 114.05), ("A-2", 114.06)]


def test_bad_rows_are_reported_with_row_numbers_and_reasons(tmp_path: Path) -> None:
    good = [f"P{i:03d},MAIN ST,{-77.01 - i * 1e-4:.6f},{38.90 + i * 1e-4:.6f}" for i in range(30)]
    bad = [
        " ,MAIN ST,-77.0,38.9",  # row 32: empty code
        "P001,MAIN ST,-77.02,38.91",  # row 33: duplicate of row 3
        "Q1,MAIN ST,,38.9",  # row 34: missing longitude
        "Q2,MAIN ST,abc,38.9",  # row 35: not a number
        "Q3,MAIN ST,-77.0,123.0",  # row 36: impossible
        "Q4,MAIN ST,38.905,-77.012",  # row 37: swapped
        "Q5,MAIN ST,0,0",  # row 38: null island
        "Q6,MAIN ST,2.35,48.85",  # row 39: Paris, far from the rest
        "Q7,MAIN ST,nan,38.9",  # row 40: not finite
    ]
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n".join(good + bad) + "\n", encoding="utf-8")
    report = read_inventory(path, city="dc")
    assert len(report.poles) == 30
    reasons = {p.row: p.reason for p in report.problems}
    assert sorted(reasons) == list(range(32, 41))
    assert reasons[32] == "empty code"
    assert "duplicate" in reasons[33] and "row 3" in reasons[33]
    assert reasons[34] == "missing longitude"
    assert "not a number" in reasons[35]
    assert "impossible" in reasons[36]
    assert "swapped" in reasons[37]
    assert "impossible" in reasons[38]
    assert "km from the rest" in reasons[39]
    assert "finite" in reasons[40]
    kept = next(p for p in report.poles if p.code == "P001")
    assert kept.lon == pytest.approx(-77.0101)  # the first P001 is kept


def test_codes_an_alarm_cannot_carry_are_reported(tmp_path: Path) -> None:
    rows = [
        "P1,MAIN ST,-77.010,38.900",
        "P2,MAIN ST,-77.011,38.901",
        "P 3,MAIN ST,-77.012,38.902",  # a space inside
        "<P4>,MAIN ST,-77.013,38.903",  # markup
        f"{'9' * 40},MAIN ST,-77.014,38.904",  # too long
        "-P6,MAIN ST,-77.015,38.905",  # does not start with a letter or digit
    ]
    path = tmp_path / "codes.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    report = read_inventory(path, city="dc")
    assert [p.code for p in report.poles] == ["P1", "P2"]
    reasons = {p.row: p.reason for p in report.problems}
    assert sorted(reasons) == [4, 5, 6, 7]
    assert "cannot carry" in reasons[4] and "cannot carry" in reasons[5]
    assert "longer than 32" in reasons[6]
    assert "starting with a letter or digit" in reasons[7]


def test_swap_that_leaves_latitude_out_of_range_is_called_a_swap(
    data_dir: Path, tmp_path: Path
) -> None:
    text = (data_dir / KC).read_text()
    text = text.replace("[-94.49075022,38.9128811]", "[38.9128811,-94.49075022]")
    path = tmp_path / "kc.geojson"
    path.write_text(text)
    report = read_inventory(path, city="kc")
    assert len(report.poles) == 110
    assert [(p.row, p.code) for p in report.problems] == [(1, "SGQ0036")]
    assert "swapped" in report.problems[0].reason


def test_geojson_feature_problems(tmp_path: Path) -> None:
    path = tmp_path / "f.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"POLEID": "A1"}, '
        '"geometry": {"type": "Point", "coordinates": [-94.5, 38.9]}},'
        '{"type": "Feature", "properties": {"POLEID": "A2"}, "geometry": null},'
        '{"type": "Feature", "properties": {"POLEID": "A3"}, '
        '"geometry": {"type": "LineString", "coordinates": [[-94.5, 38.9], [-94.4, 38.9]]}},'
        '{"type": "Feature", "properties": {"POLEID": null}, '
        '"geometry": {"type": "Point", "coordinates": [-94.5, 38.9]}},'
        '"junk"]}'
    )
    report = read_inventory(path, city="kc")
    assert [p.code for p in report.poles] == ["A1"]
    reasons = {p.row: p.reason for p in report.problems}
    assert reasons[2] == "no geometry"
    assert "LineString" in reasons[3]
    assert reasons[4] == "empty code"
    assert "not an object" in reasons[5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 4, "binary"),
        (b"\xff\xfe\x81garbage,\xc3(\n", "UTF-8"),
        (b"", "empty"),
        (b'{"type": "Feature", "geometry": null}', "FeatureCollection"),
        (b"[1, 2, 3]", "FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": ', "invalid JSON"),
        (b"name,colour\npole,red\n", "no column for id"),
        (b"STREETLIGHTID,colour\n1,red\n", "lon, lat"),
    ],
)
def test_unreadable_files_fail_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.dat"
    path.write_bytes(content)
    with pytest.raises(InventoryError, match=message):
        read_inventory(path, city="x")


def test_mapped_column_missing_names_it(data_dir: Path) -> None:
    with pytest.raises(InventoryError, match="'POLE_NO'.*not in the file"):
        read_inventory(data_dir / DC, city="dc", columns={"id": "POLE_NO"})


def test_cli_import_writes_the_registry(
    data_dir: Path, redis_url: str, sync_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from polewatch.cli import main

    assert (
        main(["poles", "import", str(data_dir / DC), "--city", "dc", "--redis-url", redis_url]) == 0
    )
    assert "3963 valid, 0 refused" in capsys.readouterr().out
    assert sync_redis.hlen(keys.poles("dc")) == 3963
    assert sync_redis.zcard(keys.poles_geo("dc")) == 3963
    assert _decode(sync_redis.hget(keys.poles("dc"), "6U077")).code == "6U077"  # type: ignore[arg-type]
    assert sync_redis.sismember(keys.CITIES, "dc")


def test_cli_dry_run_reports_and_writes_nothing(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from polewatch.cli import main

    path = tmp_path / "p.csv"
    path.write_text(HEADER + "A,X,-77.01,38.90\nA,X,-77.02,38.91\n,X,-77.0,38.9\n")
    args = ["poles", "import", str(path), "--city", "dc", "--dry-run", "--redis-url", redis_url]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"refused": 2' in out and '"row": 3' in out and '"row": 4' in out
    assert main([*args, "--strict"]) == 1
    assert "row 3 [A]: duplicate" in capsys.readouterr().out
    assert sync_redis.exists(keys.poles("dc")) == 0


def test_cli_unreadable_file_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from polewatch.cli import main

    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x01\x02" * 100)
    assert main(["poles", "import", str(path), "--city", "x", "--dry-run"]) == 2
    assert "binary" in capsys.readouterr().err
    assert main(["poles", "import", str(tmp_path / "missing.csv"), "--city", "x"]) == 2


GEOJSON_KEYS = ["type", "features", "geometry", "coordinates", "properties", "POLEID"]


def _json_values(depth: int) -> st.SearchStrategy[object]:
    """JSON-like values nested up to ``depth`` (built level by level, not st.recursive)."""
    values: st.SearchStrategy[object] = (
        st.none() | st.booleans() | st.floats() | st.text(max_size=8)
    )
    for _ in range(depth):
        values = (
            values
            | st.lists(values, max_size=4)
            | st.dictionaries(st.sampled_from(GEOJSON_KEYS), values, max_size=4)
        )
    return values


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.lists(st.text(',;\n"xy0123456789.-STREETLIGHTIDXCOORDY', max_size=30), max_size=8).map(
            lambda parts: (HEADER + "\n".join(parts)).encode()
        ),
        _json_values(depth=3).map(
            lambda doc: json.dumps({"type": "FeatureCollection", "features": [doc]}).encode()
        ),
    )
)
def test_no_file_crashes_the_reader(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "any"
    path.write_bytes(content)
    try:
        report = read_inventory(path, city="x")
    except InventoryError as exc:
        assert str(exc)
        return
    # Every row is accounted for: imported once, or refused with a reason.
    assert len(report.poles) + len(report.problems) == report.rows
    assert len({p.code for p in report.poles}) == len(report.poles)
    assert all(p.reason for p in report.problems)
