"""The public-security assessment of the known week (see analytics.simulation.known_week),
checked against a hand computation, as HTML, PDF and PNG, and from the command line."""

from __future__ import annotations

import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from analytics.assessment import Assessment, assess, build_assessment
from analytics.report import render_html, render_pdf, render_png
from analytics.response_times import IncidentTimes
from analytics.simulation import known_week, write_incidents, write_incidents_to
from polewatch.cli import main

START = 1_763_942_400.0  # Monday 2025-11-24 00:00 UTC
END = START + 7 * 86_400
HOSTILE = '<script>alert("x")</script>&"\'$\\x$'


@pytest.fixture
async def report(aredis: aioredis.Redis) -> Assessment:
    await write_incidents(aredis, known_week(START))
    return await assess(aredis, START, END)


def test_assessment_matches_the_hand_computation(report: Assessment) -> None:
    assert (report.incidents, report.previous_incidents, report.change_pct) == (8, 3, 166.7)
    assert [(t.type, t.count, t.previous, t.change_pct) for t in report.by_type] == [
        ("intrusion", 3, 1, 200.0),
        ("call", 1, 2, -50.0),
        ("camera_offline", 1, 0, None),
        ("citizen_sos", 1, 0, None),  # the merged duplicate (8) is not counted
        ("door_forced", 1, 0, None),
        ("loitering", 1, 0, None),
    ]
    assert [(d.day, d.count) for d in report.daily] == [
        ("2025-11-24", 1),
        ("2025-11-25", 1),
        ("2025-11-26", 2),
        ("2025-11-27", 1),
        ("2025-11-28", 1),
        ("2025-11-29", 1),
        ("2025-11-30", 1),
    ]
    # p90 alarm->scene per grid: LH-01 {481, 943} -> 943, FT-02 {340, 625} -> 625,
    # FT-01 {183, 332} -> 332; LH-01 alarm->dispatch {1, 2, 3} -> 3, resolution {1081, 1543}
    assert [
        (
            g.grid,
            g.district,
            g.incidents,
            g.alarm_to_scene_p90,
            g.alarm_to_dispatch_p90,
            g.resolution_p90,
        )
        for g in report.worst_grids
    ] == [
        ("LH-01", "Luohu", 3, 943.0, 3.0, 1543.0),
        ("FT-02", "Futian", 3, 625.0, 5.0, 1824.0),
        ("FT-01", "Futian", 2, 332.0, 3.0, 1232.0),
    ]
    assert report.response.overall.metrics["alarm_to_scene"].p90 == 943.0
    assert report.previous_overall.metrics["alarm_to_scene"].p90 == 111.0
    assert report.previous_start == START - 7 * 86_400


async def test_one_district(aredis: aioredis.Redis) -> None:
    await write_incidents(aredis, known_week(START))
    luohu = await assess(aredis, START, END, district="Luohu", worst=1)
    assert (luohu.incidents, luohu.previous_incidents, luohu.change_pct) == (3, 2, 50.0)
    assert [g.grid for g in luohu.worst_grids] == ["LH-01"]
    assert "Luohu" in luohu.title


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_page_is_self_contained_and_shows_the_figures(report: Assessment) -> None:
    page = render_html(report)
    parsed = _Page()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert parsed.tags.count("svg") == 4  # the four charts, inline
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert all(url.startswith("#") for url in parsed.urls), parsed.urls  # nothing external
    assert "Public-security assessment: all districts" in text
    assert "2025-11-24 to 2025-11-30" in text
    assert "+166.7 %" in text and "+200.0 %" in text and "-50.0 %" in text
    assert "15 min 43 s" in text  # 943 s, the p90 from alarm to on scene
    assert render_html(report) == page  # the same figures give the same bytes


def test_everything_user_supplied_is_escaped() -> None:
    hostile = [
        IncidentTimes(
            id="1",
            type=HOSTILE,
            priority=1,
            state="closed",
            created=START,
            district=HOSTILE,
            grid=HOSTILE + "\x00",
            times={"new": START, "dispatched": START + 1, "on_scene": START + 9},
        )
    ]
    a = build_assessment(hostile, [], START, END, district=HOSTILE)
    page = render_html(a)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    parsed = _Page()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert render_png(a)[:8] == b"\x89PNG\r\n\x1a\n"  # '$' and control characters draw too


def test_pdf_and_png_pages(report: Assessment, tmp_path: Path) -> None:
    png = render_png(report)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (909, 1285)  # A4 portrait at 110 dpi
    (tmp_path / "assessment.png").write_bytes(png)
    pdf = render_pdf(report)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Type /Page" in pdf


def test_report_command_writes_html_pdf_and_png(redis_url: str, tmp_path: Path) -> None:
    write_incidents_to(redis_url, known_week(START))
    # the hand computation counts UTC days (the command's default is the city's time zone)
    period = ["--from", "2025-11-24", "--to", "2025-11-30", "--utc-offset", "0",
              "--redis-url", redis_url]  # fmt: skip
    for suffix in ("html", "pdf", "png"):
        out = tmp_path / f"q.{suffix}"
        assert main(["report", "assessment", *period, "--out", str(out)]) == 0
        assert out.stat().st_size > 1000
    assert "<b>8</b>" in (tmp_path / "q.html").read_text()  # the whole last day included
    luohu = tmp_path / "luohu.html"
    assert main(["report", "assessment", *period, "--district", "Luohu", "--out", str(luohu)]) == 0
    assert "<b>3</b>" in luohu.read_text()
    assert main(["report", "assessment", *period, "--out", str(tmp_path / "q.doc")]) == 2
    for start, end in (("2025-11-30", "2025-11-24"), ("last monday", "2025-11-24")):
        bad = ["--from", start, "--to", end, "--redis-url", redis_url]
        assert main(["report", "assessment", *bad, "--out", str(tmp_path / "x.html")]) == 2
