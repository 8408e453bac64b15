"""Response-time analytics from the audit stream, checked against a hand computation of the
known week in :func:`analytics.simulation.known_week` (its docstring has the table)."""

from __future__ import annotations

import json

import msgspec
import pytest
import redis.asyncio as aioredis

from analytics.response_times import (
    IncidentTimes,
    Stats,
    incident_times,
    percentile,
    response_times,
    summarize,
)
from analytics.simulation import known_week, write_incidents, write_incidents_to
from polewatch import keys
from polewatch.cli import main

START = 1_763_942_400.0  # Monday 2025-11-24 00:00 UTC
END = START + 7 * 86_400


@pytest.fixture
async def week(aredis: aioredis.Redis) -> aioredis.Redis:
    await write_incidents(aredis, known_week(START))
    return aredis


def figures(s: Stats) -> tuple[int, float | None, float | None, float | None]:
    return (s.count, s.p50, s.p90, s.p95)


def test_percentiles_are_nearest_rank() -> None:
    values = [1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 5.0]
    assert [percentile(values, p) for p in (50, 90, 95, 100)] == [2.0, 5.0, 5.0, 5.0]
    assert percentile([7.0], 50) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0  # the smallest value with half at or below it


async def test_per_incident_times_follow_the_first_of_each_transition(
    week: aioredis.Redis,
) -> None:
    times = {t.id: t for t in await incident_times(week, START, END)}
    # 11, 12, 13 belong to the week before (13 one second before it, though its later steps
    # fall inside); 10 starts at the first second after the week.
    assert sorted(times, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert times["1"].durations() == {
        "alarm_to_dispatch": 3.0,
        "dispatch_to_ack": 10.0,
        "ack_to_scene": 170.0,
        "alarm_to_scene": 183.0,
        "resolution": 781.0,
    }
    # 9: unit-b was dispatched at +2 s and timed out; unit-a, dispatched at +33 s, answered
    # at +40 s: the caller waited 38 s from the first dispatch for an acknowledgement.
    assert times["9"].durations()["dispatch_to_ack"] == 38.0
    assert times["6"].durations()["ack_to_scene"] is None  # cancelled before arrival
    assert set(times["7"].durations().values()) == {None}  # never dispatched
    assert (times["8"].state, times["7"].state, times["5"].state) == (
        "merged",
        "escalated",
        "closed",
    )
    assert (times["3"].district, times["3"].grid, times["3"].priority) == ("Futian", "FT-02", 2)


async def test_week_figures_match_the_hand_computation(week: aioredis.Redis) -> None:
    result = await response_times(week, START, END)
    assert (result.incidents, result.merged) == (8, 1)
    overall = result.overall.metrics
    # alarm->dispatch of 1,2,3,4,5,6,9 sorted: 1 2 2 2 3 3 5 (n=7): p50 = 4th, p90 = p95 = 7th
    assert figures(overall["alarm_to_dispatch"]) == (7, 2.0, 5.0, 5.0)
    assert overall["alarm_to_dispatch"].mean == round(18 / 7, 3)
    # dispatch->ack sorted: 10 15 20 30 38 40 60
    assert figures(overall["dispatch_to_ack"]) == (7, 30.0, 60.0, 60.0)
    # ack->scene of 1,2,3,4,5,9 sorted: 170 300 300 420 600 900 (n=6): p50 = 3rd, p90 = 6th
    assert figures(overall["ack_to_scene"]) == (6, 300.0, 900.0, 900.0)
    # alarm->scene sorted: 183 332 340 481 625 943
    assert figures(overall["alarm_to_scene"]) == (6, 340.0, 943.0, 943.0)
    # resolution sorted: 781 940 1081 1232 1543 1824
    assert figures(overall["resolution"]) == (6, 1081.0, 1824.0, 1824.0)

    district = {g.key: g for g in result.by_district}
    assert {k: g.incidents for k, g in district.items()} == {"Futian": 5, "Luohu": 3}
    # Futian alarm->scene: 183 332 340 625; Luohu: 481 943
    assert figures(district["Futian"].metrics["alarm_to_scene"]) == (4, 332.0, 625.0, 625.0)
    assert figures(district["Luohu"].metrics["alarm_to_scene"]) == (2, 481.0, 943.0, 943.0)
    grid = {g.key: (g.incidents, g.metrics["alarm_to_scene"].p90) for g in result.by_grid}
    assert grid == {"FT-01": (2, 332.0), "FT-02": (3, 625.0), "LH-01": (3, 943.0)}
    priority = {g.key: g.incidents for g in result.by_priority}
    assert priority == {"P1": 1, "P2": 5, "P3": 1, "P4": 1}
    p1 = next(g for g in result.by_priority if g.key == "P1")
    assert figures(p1.metrics["alarm_to_scene"]) == (1, 183.0, 183.0, 183.0)


async def test_one_district_and_the_previous_week(week: aioredis.Redis) -> None:
    luohu = await response_times(week, START, END, district="Luohu")
    assert (luohu.incidents, luohu.district) == (3, "Luohu")
    assert [g.key for g in luohu.by_district] == ["Luohu"]
    assert figures(luohu.overall.metrics["dispatch_to_ack"]) == (3, 40.0, 60.0, 60.0)
    before = await response_times(week, START - 7 * 86_400, START)
    assert before.incidents == 3  # 11, 12 and 13, each 1 / 10 / 100 / 111 / 611 s
    assert figures(before.overall.metrics["alarm_to_scene"]) == (3, 111.0, 111.0, 111.0)


async def test_reading_in_small_chunks_gives_the_same_figures(week: aioredis.Redis) -> None:
    assert await week.xlen(keys.AUDIT) > 60
    whole = await incident_times(week, START, END)
    chunked = await incident_times(week, START, END, chunk=3)
    assert msgspec.to_builtins(chunked) == msgspec.to_builtins(whole)


async def test_undecodable_audit_entries_are_skipped(week: aioredis.Redis) -> None:
    await week.xadd(keys.AUDIT, {b"m": b"\xc1 not msgpack"})
    await week.xadd(keys.AUDIT, {b"x": b"no message field"})
    result = await response_times(week, START, END)
    assert result.incidents == 8


async def test_an_empty_period_has_no_figures(aredis: aioredis.Redis) -> None:
    result = await response_times(aredis, START, END)
    assert result.incidents == 0
    assert result.overall.metrics["resolution"] == Stats(count=0)
    assert result.by_grid == []


def test_summary_is_deterministic_whatever_the_order() -> None:
    incidents = [
        IncidentTimes(
            id=str(n),
            type="call",
            priority=1 + n % 4,
            state="closed",
            created=100.0 * n,
            district=f"d{n % 3}",
            grid=f"g{n % 5}",
            times={"new": 100.0 * n, "dispatched": 100.0 * n + n % 7},
        )
        for n in range(40)
    ]
    a = summarize(incidents, 0, 4000)
    b = summarize(list(reversed(incidents)), 0, 4000)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert [g.key for g in a.by_grid] == ["g0", "g1", "g2", "g3", "g4"]


def test_times_command_prints_the_figures_as_json(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_incidents_to(redis_url, known_week(START))
    # UTC days, as the hand computation counts them (the default is the city's time zone)
    args = ["report", "times", "--from", "2025-11-24", "--to", "2025-11-30", "--utc-offset", "0",
            "--redis-url"]  # fmt: skip
    assert main([*args, redis_url, "--district", "Futian"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["incidents"], figures["district"]) == (5, "Futian")
    assert figures["overall"]["metrics"]["alarm_to_scene"]["p90"] == 625.0
