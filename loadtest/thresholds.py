"""Pass or fail a load-test run from locust's CSV statistics.

The thresholds: the failure ratio of real requests (HTTP, WebSocket frames, Redis appends;
the E2E samples are measurements, not requests), the p99 of the time from an alarm raised to
the dispatch arriving at a unit's socket, and the throughput of real requests.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

E2E: Final = "E2E"
"""Request type of the alarm-to-dispatch samples in locust's statistics."""
E2E_NAME: Final = "alarm->dispatch"
PUSH_NAME: Final = "dispatch->socket"
"""The push part of it: from the dispatch written to its arrival at the unit's socket."""


@dataclass(frozen=True)
class Thresholds:
    max_fail_ratio: float | None = 0.01
    max_p99_ms: float | None = None
    min_rps: float | None = None


@dataclass
class Verdict:
    """What a run achieved and which thresholds it missed (empty: passed)."""

    requests: int
    failures: int
    rps: float
    fail_ratio: float
    e2e_count: int
    e2e_median_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    e2e_max_ms: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:  # "N/A" when a row has no samples
        return None


def judge(stats_csv: Path, thresholds: Thresholds) -> Verdict:
    """Read ``*_stats.csv`` and compare it with ``thresholds``."""
    with stats_csv.open(newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["Name"] != "Aggregated"]
    real = [r for r in rows if r["Type"] != E2E]
    e2e = next((r for r in rows if r["Type"] == E2E and r["Name"] == E2E_NAME), None)
    requests = sum(int(r["Request Count"]) for r in real)
    failures = sum(int(r["Failure Count"]) for r in real)
    rps = sum(_number(r["Requests/s"]) or 0.0 for r in real)
    verdict = Verdict(
        requests=requests,
        failures=failures,
        rps=round(rps, 1),
        fail_ratio=round(failures / requests, 5) if requests else 0.0,
        e2e_count=int(e2e["Request Count"]) if e2e else 0,
        e2e_median_ms=_number(e2e["50%"]) if e2e else None,
        e2e_p95_ms=_number(e2e["95%"]) if e2e else None,
        e2e_p99_ms=_number(e2e["99%"]) if e2e else None,
        e2e_max_ms=_number(e2e["Max Response Time"]) if e2e else None,
        rows=[
            {
                "type": r["Type"],
                "name": r["Name"],
                "count": int(r["Request Count"]),
                "failures": int(r["Failure Count"]),
                "rps": _number(r["Requests/s"]),
                "median_ms": _number(r["50%"]),
                "p99_ms": _number(r["99%"]),
            }
            for r in rows
        ],
    )
    if requests == 0:
        verdict.missed.append("no request was made")
    if thresholds.max_fail_ratio is not None and verdict.fail_ratio > thresholds.max_fail_ratio:
        verdict.missed.append(
            f"failure ratio {verdict.fail_ratio:.4f} > {thresholds.max_fail_ratio}"
        )
    if thresholds.max_p99_ms is not None:
        if verdict.e2e_p99_ms is None:
            verdict.missed.append("no dispatch reached a unit: no alarm->dispatch figure")
        elif verdict.e2e_p99_ms > thresholds.max_p99_ms:
            verdict.missed.append(
                f"p99 alarm->dispatch {verdict.e2e_p99_ms:.0f} ms > {thresholds.max_p99_ms} ms"
            )
    if thresholds.min_rps is not None and verdict.rps < thresholds.min_rps:
        verdict.missed.append(f"throughput {verdict.rps} requests/s < {thresholds.min_rps}")
    return verdict
