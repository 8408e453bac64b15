"""``polewatch bench archive --json --quick`` runs and reports what the docs quote."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_archive_bench_reports_throughput_and_the_assessment_time() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "polewatch.cli", "bench", "archive", "--json", "--quick"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    archive = out["archive"]
    assert archive["incidents"] > 900 and archive["incidents_per_s"] > 0
    assert archive["audit_entries"] > archive["incidents"]
    assert out["archive_2_consumers"]["consumers"] == 2
    later = out["archive_closed_later"]  # each incident archived at its resolution and close
    assert (later["incidents"], later["closes_after_resolution_s"]) == (
        archive["incidents"], 2 * 86_400)  # fmt: skip
    processes = out["archive_processes"]  # polewatch archiver --burst, 1 and 2 side by side
    assert [processes[k]["processes"] for k in ("1_process", "2_processes")] == [1, 2]
    assert all(p["incidents"] == archive["incidents"] for p in processes.values())
    assert all(p["keeps_up_ratio_after_startup"] > 0 for p in processes.values())
    quarter = out["assessment"]["quarter"]
    assert quarter["city"]["incidents"] > quarter["district"]["incidents"] > 0
    assert quarter["city"]["indexes"] == ["incident_created"]
