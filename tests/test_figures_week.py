"""Every figure of the console's analytics tab and of the assessment, checked against a small,
fully specified week computed by hand below (nearest-rank percentiles: the value at rank
ceil(p/100 * n) of the sorted values; means to three decimals).

The week is in the city's time (UTC+8), from Monday 2025-11-24 00:00 to the next Monday::

    id  type           P  district grid   created (local)   reports  steps after creation (s)
    a1  citizen_sos    1  Futian   FT-01  Mon 09:00         3        alarm 4 s before; disp 6,
                                                                      ack 16, scene 200, res 800
    a2  intrusion      2  Futian   FT-01  Tue 10:00         3        disp 20, ack 50, scene 350,
                                                                      res 1250 (holds a3's report)
    a3  intrusion      2  Futian   FT-01  Tue 10:01         1        merged into a2 after 30
    a4  call           2  Luohu    LH-01  Wed 21:53:20      2        alarm 2 s before; disp 3,
                                                                      ack 63, scene 663, res 1663
    a5  loitering      3  Luohu    LH-02  Sat 00:00:00      1        disp 40, timeout 70, disp 71,
                                                                      ack 100, cancelled 200
    a6  camera_offline 4  Nanshan  NS-01  Sun 23:59:59      1        escalated 1
    n1  intrusion      2  Futian   FT-01  next Mon 00:00    1        (after the week)
    p1  intrusion      2  Futian   FT-01  Fri before 00:00  2        disp 2, ack 12, scene 112,
                                                                      res 612
    p2  call           2  Luohu    LH-01  Sun before 23:59:59 1      disp 1, ack 21, scene 221,
                                                                      res 421

Per incident (alarm->dispatch, dispatch->ack, ack->scene, alarm->scene, resolution):
a1 10, 10, 184, 204, 800; a2 20, 30, 300, 350, 1250; a4 5, 60, 600, 665, 1663;
a5 40, 60 (the first dispatch to the acknowledgement), -, -, -; a6 none; p1 2, 10, 100, 112,
612; p2 1, 20, 200, 221, 421.

Merged reports: a1 absorbed 2, a2 1 on arrival and a3 by an operator, a4 1: 5 in all, 4 merged
by the dispatcher, 1 by an operator. a3 is a duplicate and counts nowhere else.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from analytics.assessment import Assessment, assess
from analytics.response_times import GroupFigures, ResponseTimes, response_times
from analytics.simulation import SimulatedIncident, Step, write_incidents
from gateway.testing import bearer, gateway_client, operator_token

START = 1_763_913_600.0  # Monday 2025-11-24 00:00 +08:00
END = START + 7 * 86_400
DAY, HOUR = 86_400.0, 3_600.0
PLACES = {"Futian": (114.055, 22.541), "Luohu": (114.131, 22.548), "Nanshan": (113.930, 22.533)}


def incident(iid: str, kind: str, p: int, at: float, grid: str, steps: list[Step],
             reports: int = 1, delay: float = 0.0) -> SimulatedIncident:  # fmt: skip
    district = {"FT": "Futian", "LH": "Luohu", "NS": "Nanshan"}[grid[:2]]
    lon, lat = PLACES[district]
    return SimulatedIncident(id=iid, type=kind, priority=p, created=START + at, lon=lon, lat=lat,
                             district=district, grid=grid, pole="1000001", alarm_delay=delay,
                             steps=steps, reports=reports)  # fmt: skip


def worked(disp: float, ack: float, scene: float, resolved: float) -> list[Step]:
    return [Step("dispatched", disp, "u1"), Step("acknowledged", ack, "u1"),
            Step("en_route", ack + 4, "u1"), Step("on_scene", scene, "u1"),
            Step("resolved", resolved, "u1"), Step("closed", resolved + 100)]  # fmt: skip


TIMED_OUT_THEN_CANCELLED = [
    Step("dispatched", 40, "u2"), Step("timeout", 70, "u2"), Step("dispatched", 71, "u1"),
    Step("acknowledged", 100, "u1"), Step("cancelled", 200),
]  # fmt: skip
WEEK = [
    incident("a1", "citizen_sos", 1, 9 * HOUR, "FT-01", worked(6, 16, 200, 800), 3, delay=4),
    incident("a2", "intrusion", 2, DAY + 10 * HOUR, "FT-01", worked(20, 50, 350, 1250), 3),
    incident("a3", "intrusion", 2, DAY + 10 * HOUR + 60, "FT-01", [Step("merged", 30)]),
    incident("a4", "call", 2, 2 * DAY + 78_800, "LH-01", worked(3, 63, 663, 1663), 2, delay=2),
    incident("a5", "loitering", 3, 5 * DAY, "LH-02", TIMED_OUT_THEN_CANCELLED),
    incident("a6", "camera_offline", 4, 7 * DAY - 1, "NS-01", [Step("escalated", 1)]),
    incident("n1", "intrusion", 2, 7 * DAY, "FT-01", worked(1, 2, 3, 4)),
    incident("p1", "intrusion", 2, -3 * DAY, "FT-01", worked(2, 12, 112, 612), 2),
    incident("p2", "call", 2, -1, "LH-01", worked(1, 21, 221, 421)),
]

NONE = (0, None, None, None, None)
METRICS = ("alarm_to_dispatch", "dispatch_to_ack", "ack_to_scene", "alarm_to_scene", "resolution")


def one(**incident: tuple[float, ...]) -> dict[str, tuple[Any, ...]]:
    """The figures of a group of one incident: each of its durations is every statistic."""
    ((_, durations),) = incident.items()
    return {m: (1, d, d, d, d) for m, d in zip(METRICS, durations, strict=True)}


# metric -> (count, p50, p90, p95, mean), per group
EXPECTED: dict[str, dict[str, tuple[int, float | None, float | None, float | None, float | None]]]
EXPECTED = {
    # alarm->dispatch 5 10 20 40; dispatch->ack 10 30 60 60; ack->scene 184 300 600;
    # alarm->scene 204 350 665; resolution 800 1250 1663
    "all": {"alarm_to_dispatch": (4, 10.0, 40.0, 40.0, 18.75),
            "dispatch_to_ack": (4, 30.0, 60.0, 60.0, 40.0),
            "ack_to_scene": (3, 300.0, 600.0, 600.0, 361.333),
            "alarm_to_scene": (3, 350.0, 665.0, 665.0, 406.333),
            "resolution": (3, 1250.0, 1663.0, 1663.0, 1237.667)},
    # a1, a2
    "Futian": {"alarm_to_dispatch": (2, 10.0, 20.0, 20.0, 15.0),
               "dispatch_to_ack": (2, 10.0, 30.0, 30.0, 20.0),
               "ack_to_scene": (2, 184.0, 300.0, 300.0, 242.0),
               "alarm_to_scene": (2, 204.0, 350.0, 350.0, 277.0),
               "resolution": (2, 800.0, 1250.0, 1250.0, 1025.0)},
    # a4, a5
    "Luohu": {"alarm_to_dispatch": (2, 5.0, 40.0, 40.0, 22.5),
              "dispatch_to_ack": (2, 60.0, 60.0, 60.0, 60.0),
              "ack_to_scene": (1, 600.0, 600.0, 600.0, 600.0),
              "alarm_to_scene": (1, 665.0, 665.0, 665.0, 665.0),
              "resolution": (1, 1663.0, 1663.0, 1663.0, 1663.0)},
    "Nanshan": dict.fromkeys(METRICS, NONE),
}  # fmt: skip
EXPECTED["FT-01"] = EXPECTED["Futian"]
EXPECTED["LH-01"] = one(a4=(5.0, 60.0, 600.0, 665.0, 1663.0))
EXPECTED["LH-02"] = {**EXPECTED["Nanshan"], "alarm_to_dispatch": (1, 40.0, 40.0, 40.0, 40.0),
                     "dispatch_to_ack": (1, 60.0, 60.0, 60.0, 60.0)}  # fmt: skip
EXPECTED["NS-01"] = EXPECTED["Nanshan"]
EXPECTED["P1"] = one(a1=(10.0, 10.0, 184.0, 204.0, 800.0))
# a2, a4
EXPECTED["P2"] = {"alarm_to_dispatch": (2, 5.0, 20.0, 20.0, 12.5),
                  "dispatch_to_ack": (2, 30.0, 60.0, 60.0, 45.0),
                  "ack_to_scene": (2, 300.0, 600.0, 600.0, 450.0),
                  "alarm_to_scene": (2, 350.0, 665.0, 665.0, 507.5),
                  "resolution": (2, 1250.0, 1663.0, 1663.0, 1456.5)}  # fmt: skip
EXPECTED["P3"] = EXPECTED["LH-02"]
EXPECTED["P4"] = EXPECTED["Nanshan"]
# the week before: p1, p2
PREVIOUS = {"alarm_to_dispatch": (2, 1.0, 2.0, 2.0, 1.5),
            "dispatch_to_ack": (2, 10.0, 20.0, 20.0, 15.0),
            "ack_to_scene": (2, 100.0, 200.0, 200.0, 150.0),
            "alarm_to_scene": (2, 112.0, 221.0, 221.0, 166.5),
            "resolution": (2, 421.0, 612.0, 612.0, 516.5)}  # fmt: skip


def table(group: GroupFigures) -> dict[str, tuple[Any, ...]]:
    return {m: (s.count, s.p50, s.p90, s.p95, s.mean) for m, s in group.metrics.items()}


def check_response(r: ResponseTimes) -> None:
    assert (r.start, r.end, r.district) == (START, END, None)
    assert (r.incidents, r.merged, r.merged_automatic, r.merged_by_operator) == (5, 5, 4, 1)
    assert (r.overall.key, r.overall.incidents, table(r.overall)) == ("all", 5, EXPECTED["all"])
    for groups, counts in (
        (r.by_district, {"Futian": 2, "Luohu": 2, "Nanshan": 1}),
        (r.by_grid, {"FT-01": 2, "LH-01": 1, "LH-02": 1, "NS-01": 1}),
        (r.by_priority, {"P1": 1, "P2": 2, "P3": 1, "P4": 1}),
    ):
        assert [g.key for g in groups] == list(counts)  # in this order
        assert {g.key: g.incidents for g in groups} == counts
        assert {g.key: table(g) for g in groups} == {k: EXPECTED[k] for k in counts}


async def test_the_response_figures_match_the_hand_computation(aredis: aioredis.Redis) -> None:
    await write_incidents(aredis, WEEK)
    check_response(await response_times(aredis, START, END))


async def test_the_analytics_tab_shows_the_hand_computed_figures(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    """The tab's cards and charts come from this request, with the dates the tab sends."""
    await write_incidents(aredis, WEEK)
    async with gateway_client(redis_url) as client:
        answer = await client.get("/api/console/reports/times", headers=bearer(
            operator_token("ada")), params={"from": "2025-11-24", "to": "2025-11-30"})  # fmt: skip
        assert answer.status == 200, await answer.text()
        shown: dict[str, Any] = await answer.json()

    check_response(msgspec.convert(shown, ResponseTimes))


async def test_the_assessment_matches_the_hand_computation(aredis: aioredis.Redis) -> None:
    await write_incidents(aredis, WEEK)
    report: Assessment = await assess(aredis, START, END, utc_offset_min=480)
    check_response(report.response)
    assert (report.start, report.end, report.previous_start) == (START, END, START - 7 * DAY)
    assert (report.incidents, report.previous_incidents, report.change_pct) == (5, 2, 150.0)
    # one of each type now (a3 is a2's duplicate); an intrusion and a call the week before
    assert [(t.type, t.count, t.previous, t.change_pct) for t in report.by_type] == [
        ("call", 1, 1, 0.0), ("intrusion", 1, 1, 0.0), ("camera_offline", 1, 0, None),
        ("citizen_sos", 1, 0, None), ("loitering", 1, 0, None),
    ]  # fmt: skip
    # local days: a5 at Saturday's first second, a6 at Sunday's last
    assert [(d.day, d.count) for d in report.daily] == [
        ("2025-11-24", 1), ("2025-11-25", 1), ("2025-11-26", 1), ("2025-11-27", 0),
        ("2025-11-28", 0), ("2025-11-29", 1), ("2025-11-30", 1),
    ]  # fmt: skip
    assert (report.previous_overall.incidents, table(report.previous_overall)) == (2, PREVIOUS)
    # grids with a unit on scene, slowest p90 alarm->scene first: LH-01 {665}, FT-01 {204, 350}
    assert [(g.grid, g.district, g.incidents, g.alarm_to_scene_p90, g.alarm_to_dispatch_p90,
             g.resolution_p90) for g in report.worst_grids] == [
        ("LH-01", "Luohu", 1, 665.0, 5.0, 1663.0), ("FT-01", "Futian", 2, 350.0, 20.0, 1250.0),
    ]  # fmt: skip
