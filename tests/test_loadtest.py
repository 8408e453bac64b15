"""`polewatch loadtest`: a real (short) locust run through the command, reports and verdict."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.population import CLASS_OF, PopulationError, parse_mix, patrol_share, read_tokens
from loadtest.thresholds import Thresholds, judge


def loadtest(
    out: Path,
    redis_url: str,
    options: str,
    timeout: float = 100,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``polewatch loadtest`` (a small city, fast spawn) with ``options`` (one string)
    and ``env`` added to the environment."""
    command = f"loadtest --out {out} --poles 3000 --spawn-rate 30 {options}"
    return subprocess.run(
        [sys.executable, "-m", "polewatch.cli", *command.split()],
        env={**os.environ, "REDIS_URL": redis_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stats_rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "stats_stats.csv").open(newline="") as fh:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}


def test_a_short_run_reports_every_client_and_the_alarm_to_dispatch_time(
    tmp_path: Path, redis_url: str
) -> None:
    out = tmp_path / "report"
    thresholds = "--max-p99-ms 5000 --max-fail-ratio 0.01 --min-rps 5"
    run = loadtest(out, redis_url, f"--users 30 --duration 12 {thresholds}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "report.html").stat().st_size > 10_000
    rows = stats_rows(out)
    e2e = rows[("E2E", "alarm->dispatch")]
    assert int(e2e["Request Count"]) >= 5
    assert 0 < float(e2e["50%"]) <= 5000
    # every real client was there
    assert int(rows[("POST", "/api/alarms")]["Request Count"]) > 0
    assert (
        int(rows[("XADD", "edge alarm")]["Request Count"])
        + int(rows[("XADD", "edge heartbeat")]["Request Count"])
        > 0
    )
    assert int(rows[("WS", "position")]["Request Count"]) > 0
    assert int(rows[("WS", "ack")]["Request Count"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and summary["e2e_count"] == int(e2e["Request Count"])


def test_distributed_run_and_a_missed_threshold_exits_non_zero(
    tmp_path: Path, redis_url: str
) -> None:
    out = tmp_path / "report"
    mix = "--mix citizen=1,edge=1"
    run = loadtest(out, redis_url, f"--users 10 --duration 6 --workers 2 {mix} --min-rps 1000000")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "threshold missed: throughput" in run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0  # the two workers did the work (a master runs no users)
    assert not any(row["type"] == "WS" for row in summary["rows"])  # the mix was honoured


def test_a_bad_mix_is_refused_before_anything_starts(tmp_path: Path, redis_url: str) -> None:
    run = loadtest(tmp_path, redis_url, "--mix citizen=1,robots=3", timeout=30)
    assert run.returncode == 2
    assert "robots" in run.stderr


@given(st.text(max_size=60))
def test_parse_mix_accepts_or_refuses_with_its_own_error(text: str) -> None:
    try:
        mix = parse_mix(text)
    except PopulationError:
        return
    assert set(mix) <= set(CLASS_OF) and any(mix.values())
    assert all(w >= 0 for w in mix.values())


@pytest.mark.parametrize("users", [1, 7, 50, 333])
def test_enough_unit_tokens_are_minted_for_the_patrol_share(users: int) -> None:
    mix = parse_mix("citizen=4,patrol=6,edge=2,viewer=1")
    # locust's distribution rounds; the bound must not be below the exact share
    assert patrol_share(mix, users) >= round(users * 6 / 13)
    assert patrol_share(mix, users) <= users


@pytest.mark.parametrize("service", ["loadtest-tokens", "locust-master", "locust-worker"])
def test_the_compose_load_test_services_run_commands_that_parse(service: str) -> None:
    from test_deployment import polewatch_commands

    from polewatch.cli import build_parser

    command = dict(polewatch_commands())[service]
    args = build_parser().parse_args(command)
    assert args.command == "loadtest" and callable(args.func)


@given(st.text(max_size=300))
def test_a_tokens_file_is_read_or_refused_with_its_own_error(
    tmp_path_factory: Any, text: str
) -> None:
    path = tmp_path_factory.mktemp("tokens") / "units.tokens"
    path.write_text(text)
    try:
        pairs = read_tokens(path)
    except PopulationError:
        return
    assert all(unit and token and " " not in unit for unit, token in pairs)


HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
)


def csv_row(kind: str, name: str, count: int, failures: int, rps: float, p99: float) -> str:
    tail = ",".join([str(p99)] * 4)
    return f"{kind},{name},{count},{failures},5,5,1,{p99},0,{rps},0,5,5,5,5,5,5,5,{tail}\n"


def test_each_threshold_is_judged_on_real_requests_and_the_e2e_row(tmp_path: Path) -> None:
    stats = tmp_path / "stats_stats.csv"
    stats.write_text(
        HEADER
        + csv_row("POST", "/api/alarms", 1000, 30, 100.0, 80)
        + csv_row("E2E", "alarm->dispatch", 500, 0, 50.0, 2500)
        + csv_row("", "Aggregated", 1500, 30, 150.0, 2500)
    )
    verdict = judge(stats, Thresholds(max_fail_ratio=0.01, max_p99_ms=2000, min_rps=150))
    assert verdict.requests == 1000 and verdict.rps == 100.0  # E2E samples are not requests
    assert len(verdict.missed) == 3 and not verdict.passed
    assert judge(stats, Thresholds(0.05, 3000, 50)).passed
    stats.write_text(HEADER + csv_row("POST", "/api/alarms", 10, 0, 1.0, 5))
    assert judge(stats, Thresholds(max_p99_ms=1000)).missed == [
        "no dispatch reached a unit: no alarm->dispatch figure"
    ]
