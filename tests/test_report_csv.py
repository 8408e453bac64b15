"""CSV export of incidents: a header row, one row per incident, every transition time."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import redis.asyncio as aioredis

from analytics.csv_export import COLUMNS, incidents_csv, write_incidents_csv
from analytics.response_times import IncidentTimes
from analytics.simulation import known_week, write_incidents, write_incidents_to
from polewatch.cli import main

START = 1_763_942_400.0  # Monday 2025-11-24 00:00 UTC
END = START + 7 * 86_400


async def test_one_row_per_incident_with_every_transition(aredis: aioredis.Redis) -> None:
    await write_incidents(aredis, known_week(START))
    text = await incidents_csv(aredis, START, END, utc_offset_min=480)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["incident"] for r in table] == ["1", "8", "2", "3", "4", "5", "6", "7", "9"]
    first = table[0]
    assert first == first | {
        "type": "citizen_sos",
        "priority": "1",
        "state": "closed",
        "district": "Futian",
        "grid": "FT-01",
        "alarm_at": "2025-11-24T07:59:58+08:00",
        "new_at": "2025-11-24T08:00:00+08:00",
        "dispatched_at": "2025-11-24T08:00:01+08:00",
        "acknowledged_at": "2025-11-24T08:00:11+08:00",
        "en_route_at": "2025-11-24T08:00:16+08:00",
        "on_scene_at": "2025-11-24T08:03:01+08:00",
        "resolved_at": "2025-11-24T08:13:01+08:00",
        "closed_at": "2025-11-24T08:18:01+08:00",
        "cancelled_at": "",
        "merged_at": "",
        "alarm_to_dispatch_s": "3.000",
        "dispatch_to_ack_s": "10.000",
        "ack_to_scene_s": "170.000",
        "alarm_to_scene_s": "183.000",
        "resolution_s": "781.000",
    }
    merged = table[1]
    assert (merged["state"], merged["merged_at"], merged["dispatched_at"]) == (
        "merged",
        "2025-11-24T08:00:35+08:00",
        "",
    )
    assert text.endswith("\r\n")


def test_cells_that_look_like_formulas_are_defused() -> None:
    out = io.StringIO()
    hostile = IncidentTimes(
        id="1",
        type='=HYPERLINK("x")',
        priority=2,
        state="new",
        created=START,
        district="+cmd",
        grid="@sum",
        pole="-1,\n2",
        times={"new": START},
    )
    assert write_incidents_csv(out, [hostile]) == 1
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["type"] == '\'=HYPERLINK("x")'
    assert (row["district"], row["grid"], row["pole"]) == ("'+cmd", "'@sum", "'-1,\n2")


def test_csv_command(redis_url: str, tmp_path: Path) -> None:
    write_incidents_to(redis_url, known_week(START))
    out = tmp_path / "week.csv"
    # UTC days, as the hand computation counts them (the default is the city's time zone)
    args = ["report", "csv", "--from", "2025-11-24", "--to", "2025-11-30", "--utc-offset", "0",
            "--redis-url", redis_url]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    assert len(rows) == 1 + 9
    luohu = tmp_path / "luohu.csv"
    assert main([*args, "--district", "Luohu", "--out", str(luohu)]) == 0
    assert [r[0] for r in csv.reader(io.StringIO(luohu.read_text()))][1:] == ["4", "5", "6"]
