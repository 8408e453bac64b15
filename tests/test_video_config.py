"""Camera configuration: the example loads, every mistake is reported with its key, and no
input at all makes the parser fail any other way than with ConfigError."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.video import config as cfg

EXAMPLE = Path(__file__).resolve().parent.parent / "edge" / "video" / "vtest.toml"
BASE: dict[str, Any] = {"id": "cam-1", "source": "rtsp://10.0.0.5/live", "lon": 114.0, "lat": 22.5}


def test_example_config_loads() -> None:
    config = cfg.load(EXAMPLE)
    assert config.id == "vtest"
    assert [type(r).__name__ for r in config.rules] == ["TripwireRule", "CrowdRule", "TamperRule"]
    assert config.rule_name(2) == "tamper-2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "rules": [
                    {"type": "tripwire", "line": [[0, 0], [5, 5]]},
                    {"type": "zone", "polygon": [[0, 0], [1, 0], [1, 1]]},
                    {"type": "tripwire", "line": [[1, 1]]},
                ]
            },
            "rules[2].line: expected two points",
        ),
        (
            {"rules": [{"type": "zone", "polygon": [[0, 0], [1, 1]]}]},
            "rules[0].polygon: a polygon needs at least three points",
        ),
        ({"rules": [{"type": "tripwire", "line": [[0, 0], [1, "x"]]}]}, "rules[0].line[1][1]"),
        ({"rules": [{"type": "teleport"}]}, "rules[0].type"),
        (
            {
                "rules": [
                    {
                        "type": "zone",
                        "polygon": [[0, 0], [1, 0], [1, 1]],
                        "schedule": ["25:00-06:00"],
                    }
                ]
            },
            "rules[0].schedule[0]",
        ),
        ({"rules": [{"type": "crowd", "min_people": 1}]}, "rules[0].min_people"),
        ({"analysis": {"fps": 0}}, "analysis.fps"),
        ({"analysis": {"motion_mask": [[[0, 0], [1, 1]]]}}, "analysis.motion_mask[0]"),
        ({"detector": {"kind": "onnx"}}, "detector.model"),
        ({"lon": None, "lat": None}, "pole: give a pole code, or lon and lat"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"colour": "red"}, "colour"),
        ({"id": "bad id"}, "id"),
    ],
)
def test_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    data = {**BASE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(cfg.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cfg.parse(data)


def test_load_reports_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("id = \n")
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        cfg.load(broken)
    onnx = tmp_path / "onnx.toml"
    onnx.write_text(
        'id = "c"\nsource = "0"\npole = "1012034"\n[detector]\nkind = "onnx"\n'
        'model = "missing.onnx"\n'
    )
    with pytest.raises(cfg.ConfigError, match="detector.model"):
        cfg.load(onnx)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
point = st.lists(
    st.floats(-2000, 2000) | st.integers(-5, 5) | st.text(max_size=2), min_size=0, max_size=3
)
rule = st.fixed_dictionaries(
    {"type": st.sampled_from(["zone", "tripwire", "loitering", "crowd", "tamper", "offline", "x"])},
    optional={
        "line": st.lists(point, max_size=3),
        "polygon": st.lists(point, max_size=5),
        "direction": st.sampled_from(["a_to_b", "b_to_a", "any", "up"]),
        "cooldown": st.floats(-5, 100) | st.text(max_size=3),
        "schedule": st.lists(st.text(max_size=12), max_size=2),
        "min_people": st.integers(-2, 20),
        "name": st.text(max_size=10),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(max_size=10) | st.just("cam-1"),
            "source": st.text(max_size=10),
            "lon": st.floats(-500, 500) | st.text(max_size=3),
            "lat": st.floats(-100, 100),
            "pole": st.text(max_size=8),
            "timezone": st.sampled_from(["UTC", "Asia/Shanghai", "", "../etc", "Nowhere/x"]),
            "rules": st.lists(rule, max_size=4) | json_values,
            "analysis": st.dictionaries(
                st.sampled_from(["fps", "width", "motion_mask", "sweep", "x"]),
                json_values,
                max_size=3,
            ),
            "detector": json_values,
            "extra": json_values,
        },
    )
)
def test_any_table_parses_or_fails_with_config_error(data: dict[str, Any]) -> None:
    try:
        config = cfg.parse(data)
    except cfg.ConfigError as exc:
        assert str(exc)
    else:
        assert config.id and (config.pole or (config.lon is not None and config.lat is not None))
        for r in config.rules:
            if isinstance(r, cfg.TripwireRule):
                assert len(r.line) == 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_toml_text_parses_or_fails_with_config_error(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    with contextlib.suppress(cfg.ConfigError):
        cfg.parse(data)
