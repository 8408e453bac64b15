"""``polewatch bench edge`` runs and reports what it promises (figures are not asserted: a
benchmark, not a timed test)."""

from __future__ import annotations

import json

import pytest

from polewatch.cli import main


def test_bench_edge_quick_reports_pipeline_against_decode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "edge", "--json", "--quick"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resolution"] == "768x576" and out["frames"] == 200 and out["threads"] == 1
    assert 0 < out["pipeline_fps"] < out["decode_fps"]
    assert out["ratio_pipeline_to_decode"] == pytest.approx(
        out["pipeline_fps"] / out["decode_fps"], rel=0.01
    )
    gate = out["motion_gate"]
    assert gate["frames"] == 200 and 0 < gate["area_to_detector"] < 0.5
    # The cost with the vendored vehicle detector on, measured in the same run.
    vehicles = out["vehicles"]
    assert vehicles["detector_runs_per_frame"] == pytest.approx(0.2, abs=0.02)  # every 0.5 s
    assert vehicles["detector_ms_per_run"] > 0 and vehicles["pipeline_fps"] > 0
    assert vehicles["ratio_to_people_only"] == pytest.approx(
        vehicles["pipeline_fps"] / out["pipeline_fps"], rel=0.01
    )
