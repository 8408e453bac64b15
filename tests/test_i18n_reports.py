"""Chinese first in the reports: district names in any form, quarters and months in the
city's time zone, the assessment and CSV in Chinese, grids by name, and Chinese text in the
PDF/PNG drawn with a real CJK font (not tofu)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from analytics.assessment import build_assessment
from analytics.charts import _style, draw_response
from analytics.periods import PeriodError, month, quarter
from analytics.report import render_html, render_pdf
from analytics.response_times import IncidentTimes
from analytics.simulation import known_week, write_incidents, write_incidents_to
from gateway.testing import bearer, gateway_client, operator_token
from polewatch import districts
from polewatch.cli import main
from polewatch.poles.gridnames import grid_label
from polewatch.poles.grids import grid_of

START = 1_763_942_400.0  # Monday 2025-11-24 00:00 UTC, in 2025-Q4 and 2025-11


def report(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / f"{name}.html"
    assert main(["report", "assessment", *args, "--out", str(out)]) == 0
    return out.read_bytes()


def test_a_district_in_chinese_gives_the_report_of_its_slug(redis_url: str, tmp_path: Path) -> None:
    write_incidents_to(redis_url, known_week(START))
    quarter_args = ["--quarter", "2025-Q4", "--redis-url", redis_url]
    by_slug = report(tmp_path, "slug", "--district", "futian", *quarter_args)
    for i, name in enumerate(("福田区", "福田", "Futian", "ＦＵＴＩＡＮ")):
        assert report(tmp_path, f"n{i}", "--district", name, *quarter_args) == by_slug
    page = by_slug.decode()
    assert '<html lang="zh-CN">' in page and "社会治安评估：福田区" in page
    assert "<b>0</b>" not in page.split("class=card")[1]  # the Futian incidents were found
    english = report(tmp_path, "en", "--district", "福田区", "--lang", "en", *quarter_args)
    assert "Public-security assessment: Futian" in english.decode()
    # the month form and the same dates given as a range agree
    by_month = report(tmp_path, "m", "--month", "2025-11", "--redis-url", redis_url)
    by_dates = report(tmp_path, "d", "--from", "2025-11-01", "--to", "2025-11-30",
                      "--redis-url", redis_url)  # fmt: skip
    assert by_month == by_dates


def test_unknown_district_and_bad_periods_are_refused(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.html")
    with pytest.raises(SystemExit) as stop:
        main(["report", "assessment", "--quarter", "2025-Q4", "--district", "福天区", "--out", out])
    assert stop.value.code == 2 and "unknown district '福天区'" in capsys.readouterr().err
    for bad in (["--quarter", "2025-Q5"], ["--month", "2025-13"], [],
                ["--quarter", "2025-Q4", "--month", "2025-10"]):  # fmt: skip
        assert main(["report", "assessment", *bad, "--redis-url", redis_url, "--out", out]) == 2


def test_quarters_and_months_start_at_local_midnight() -> None:
    assert quarter("2026-Q4") == quarter("2026年第四季度") == quarter("Q4 2026")
    first, after = quarter("2026-Q4")
    assert (first.isoformat(), after.isoformat()) == ("2026-10-01", "2027-01-01")
    assert [d.isoformat() for d in month("2026年2月")] == ["2026-02-01", "2026-03-01"]


@given(st.text(max_size=30))
def test_period_parsers_take_any_text_or_say_why_not(text: str) -> None:
    for parse in (quarter, month):
        try:
            first, after = parse(text)
        except PeriodError as exc:
            assert str(exc)
        else:
            assert first.day == 1 and after > first


def test_districts_are_one_district_in_every_form() -> None:
    for name in ("福田区", "福田", "Futian", "futian", " FUTIAN "):
        assert districts.canonical(name) == "Futian"
    assert districts.canonical("宝安") == districts.canonical("baoan") == "Bao'an"
    assert districts.same("Futian", "福田区") and not districts.same("Futian", "Luohu")
    assert districts.display("Futian", "zh-CN") == "福田区"
    assert districts.display("Kensington", "zh-CN") == "Kensington"  # another city: as stored


def test_grids_have_stable_human_names_and_keep_their_ids_elsewhere() -> None:
    grid = grid_of(114.0553, 22.5431)  # Futian, near the civic centre
    name = grid_label(grid, "zh-CN")
    assert name.startswith("福田·片区") and grid not in name
    assert grid_label(grid, "en").startswith("Futian·Area ")
    neighbours = {grid_label(grid_of(114.05 + i * 0.004, 22.54), "zh-CN") for i in range(10)}
    assert len(neighbours) == 10  # distinct grids, distinct names
    assert grid_label(grid, "zh-CN") == name  # stable
    assert grid_label("FT-01", "zh-CN") == "FT-01"  # not an H3 grid: its id


def test_csv_headers_in_chinese(redis_url: str, tmp_path: Path) -> None:
    write_incidents_to(redis_url, known_week(START))
    out = tmp_path / "q.csv"
    args = ["report", "csv", "--quarter", "2025-Q4", "--redis-url", redis_url, "--out", str(out)]
    assert main(args) == 0
    header = next(csv.reader(io.StringIO(out.read_text("utf-8"))))
    assert header[:3] == ["事件编号", "类型", "优先级"] and "网格名称" in header
    assert "已到场时间" in header and "报警至到场（秒）" in header


TITLE = "社会治安评估：福田区"


def test_chinese_title_is_drawn_with_a_cjk_font_not_tofu() -> None:
    """Each Chinese character of the title rasterises to its own glyph, unlike the box a font
    draws for a character it lacks (U+0378, unassigned)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def bitmap(text: str) -> np.ndarray:
        with _style():
            fig = Figure(figsize=(0.6, 0.6), dpi=100)
            fig.text(0.5, 0.5, text, fontsize=24, ha="center", va="center")
            canvas = FigureCanvasAgg(fig)
            canvas.draw()  # type: ignore[no-untyped-call]
            rgba = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
            return np.asarray(rgba)[..., 0].copy()

    tofu = bitmap("\u0378")
    glyphs = {ch: bitmap(ch) for ch in dict.fromkeys(TITLE.replace("：", ""))}
    for ch, image in glyphs.items():
        assert (image < 128).any(), f"{ch!r} drew nothing"
        assert not np.array_equal(image, tofu), f"{ch!r} is drawn as the missing-glyph box"
    images = list(glyphs.values())
    assert all(not np.array_equal(a, b) for i, a in enumerate(images) for b in images[i + 1 :])


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils (./dev test) missing")
def test_pdf_report_embeds_the_chinese_title_as_text(tmp_path: Path) -> None:
    start = datetime(2025, 10, 1, tzinfo=UTC).timestamp()
    a = build_assessment([], [], start, start + 86_400, district="Futian", language="zh-CN")
    assert a.title == TITLE
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(render_pdf(a))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert TITLE in text  # real glyphs mapped to their characters, not boxes
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    assert "CJK" in fonts.stdout
    assert "社会治安评估" in render_html(a)


async def test_console_reports_follow_the_language_and_take_district_names(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await write_incidents(aredis, known_week(START))
    query = "from=2025-11-24&to=2025-11-30&district=福田区"
    async with gateway_client(redis_url) as client:
        auth = bearer(operator_token("desk"))
        zh = await client.get(f"/api/console/reports/assessment.html?{query}",
                              headers={**auth, "Accept-Language": "zh-CN"})  # fmt: skip
        assert zh.status == 200 and "社会治安评估：福田区" in await zh.text()
        en = await client.get(f"/api/console/reports/assessment.html?{query}&lang=en",
                              headers=auth)  # fmt: skip
        assert "Public-security assessment: Futian" in await en.text()
        table = await client.get(f"/api/console/reports/incidents.csv?{query}",
                                 headers={**auth, "Accept-Language": "zh-CN"})  # fmt: skip
        rows = list(csv.reader(io.StringIO(await table.text())))
        assert rows[0][0] == "事件编号" and len(rows) > 1
        assert {r[rows[0].index("辖区")] for r in rows[1:]} == {"Futian"}


async def test_pages_get_grid_names_from_the_gateway(redis_url: str) -> None:
    grid = grid_of(114.0553, 22.5431)
    async with gateway_client(redis_url) as client:
        named = await client.get(f"/i18n/grids?ids={grid},NS-0101&lang=zh-CN")
        assert await named.json() == {grid: grid_label(grid, "zh-CN"), "NS-0101": "NS-0101"}
        english = await client.get(f"/i18n/grids?ids={grid}", headers={"Accept-Language": "en"})
        assert (await english.json())[grid].startswith("Futian·Area ")
        for bad in ("", "<b>", ",".join(["x"] * 201)):
            assert (await client.get(f"/i18n/grids?ids={bad}")).status == 422


async def test_a_long_numeric_grid_id_is_its_own_name(redis_url: str) -> None:
    """Another scheme's grid id that is digits beyond H3's 64 bits (found by the OpenAPI fuzz
    under HYPOTHESIS_PROFILE=stress: h3 raised OverflowError, the gateway answered 500)."""
    long_ids = ["999999999999999999999999999999", "12345678901234567", "fffffffffffffffff"]
    assert [grid_label(grid, "zh-CN") for grid in long_ids] == long_ids
    async with gateway_client(redis_url) as client:
        answer = await client.get(f"/i18n/grids?ids={','.join(long_ids)}")
        assert answer.status == 200
        assert await answer.json() == {grid: grid for grid in long_ids}


@given(st.text(max_size=40))
def test_any_district_text_names_one_district_or_none(text: str) -> None:
    found = districts.find(text)
    name = districts.canonical(text)
    assert districts.canonical(name) == name  # idempotent
    assert found is None or (name == found.name and districts.same(text, found.chinese))


def test_the_response_chart_writes_its_figures_in_the_reports_language() -> None:
    from matplotlib.figure import Figure

    start = datetime(2025, 10, 1, tzinfo=UTC).timestamp()
    steps = {"new": 0.0, "dispatched": 2.5, "acknowledged": 9.0, "on_scene": 95.0}
    done = IncidentTimes(id="1", type="citizen_sos", priority=1, state="on_scene",
                         created=start, times={k: start + v for k, v in steps.items()})  # fmt: skip
    for language, seconds, minutes in (("zh-CN", "2.5 秒", "1.6 分钟"), ("en", "2.5 s", "1.6 min")):
        a = build_assessment([done], [], start, start + 86_400, language=language)
        ax = Figure().add_subplot()
        draw_response(ax, a)
        labels = {text.get_text() for text in ax.texts}  # the p90 bars' figures
        assert {seconds, minutes} <= labels, (language, labels)
