"""Pole codes beyond ASCII: inventories with Chinese or Korean road prefixes import, look up
exactly and fuzzily, open their help page at ``/p/{code}`` percent-encoded and print on plates
whose QR code names them; markup, control characters, spoofs and over-long codes stay refused,
and a fine code with impossible coordinates is refused for its coordinates."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.testing import TEST_CITY, gateway_client, store_poles
from polewatch.cli import main
from polewatch.connection import connect
from polewatch.poles.codes import CodeError, normalize, registrable
from polewatch.poles.index import PoleIndex
from polewatch.poles.inventory import read_inventory
from polewatch.poles.markers import QR, Plate, layout
from polewatch.poles.model import Pole

DATA = Path(__file__).parent / "data"
SEOUL = DATA / "seoul_streetlights_ko.csv"
SHENZHEN = DATA / "shenzhen_streetlights_zh.csv"
BASE = "https://pw.example"


def test_seoul_inventory_imports_its_korean_codes_and_refuses_each_bad_row_for_its_reason() -> None:
    report = read_inventory(SEOUL, city="seoul")
    assert report.columns["id"] == "관리번호" and report.columns["lat"] == "위도"  # guessed
    assert len(report.poles) == 30
    assert "가락지하차도-01" in {p.code for p in report.poles}
    reasons = {p.code: p.reason for p in report.problems}
    assert reasons["가락지하차도-21"].startswith("impossible coordinates")  # not "bad code"
    assert reasons["가락지하차도-22"] == "missing longitude"
    assert reasons["가락지하차도-01"].startswith("duplicate code")
    assert "cannot carry" in reasons["<script>-01"]
    assert "longer than 32" in reasons["올림픽대로-" + "0" * 30]
    assert "look-alike scripts" in reasons["AАB-01"]
    assert len(report.problems) == 6


def test_chinese_prefixed_inventory_imports_and_looks_up_through_the_cli(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--city", "sz", "--redis-url", redis_url]
    assert main(["poles", "import", str(SHENZHEN), "--json", *common]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["imported"] == 40 and len(imported["problems"]) == 4
    assert main(["poles", "lookup", "罗湖001路-003", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["pole"]["code"] == "罗湖001路-003"
    # full-width digits from a Chinese input method, spaces as a caller reads it
    assert main(["poles", "lookup", "罗湖 ００１路-００３", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["pole"]["code"] == "罗湖001路-003"
    # one digit misheard: ranked candidates, the real pole among them
    assert main(["poles", "lookup", "罗湖001路-008", "--json", *common]) == 1
    found = json.loads(capsys.readouterr().out)
    assert "罗湖001路-003" in [c["pole"]["code"] for c in found["candidates"]]


async def test_help_page_opens_at_the_percent_encoded_korean_code(redis_url: str) -> None:
    poles = tuple(
        Pole(code=p.code, lon=p.lon, lat=p.lat, city=TEST_CITY, road=p.road)
        for p in read_inventory(SEOUL, city=TEST_CITY).poles[:3]
    )
    await store_poles(redis_url, poles)
    async with gateway_client(redis_url) as client:
        plate = layout(poles[0], BASE)
        path = urlsplit(plate.url).path
        assert path == "/p/" + quote("가락지하차도-01", safe="")
        page = await client.get(path, headers={"Accept-Language": "ko-KR,en;q=0.5"})
        assert page.status == 200
        assert "가락지하차도-01" in await page.text()
        refused = await client.get("/p/" + quote("<b>1</b>", safe=""))
        assert refused.status in (404, 422)
        assert "<b>1</b>" not in await refused.text()


def qr_text(plate: Plate) -> str:
    """Decode the plate's QR code as a phone would, from the modules the plate prints."""
    (qr,) = [s for s in plate.shapes if isinstance(s, QR)]
    side = round(qr.size / qr.module)
    grid = np.full((side, side), 255, np.uint8)
    for col, row, length in qr.runs:
        grid[row, col : col + length] = 0
    image = np.pad(np.kron(grid, np.ones((4, 4), np.uint8)), 40, constant_values=255)
    # the ArUco-based detector: the classic one misses some clean symbols of version 9+
    text, points, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    assert points is not None and text, "no QR code found on the plate"
    return str(text)


CODES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40) | st.text(
    alphabet="가락지하차도福田罗湖路AБβ0１2-_.:/# <>&\u200b\u0301", min_size=1, max_size=34
)


@settings(max_examples=150, deadline=None)
@given(CODES)
def test_any_nfc_string_is_a_code_that_round_trips_or_is_refused_with_a_reason(raw: str) -> None:
    code = unicodedata.normalize("NFC", raw)
    reason = registrable(code)
    if reason is not None:
        assert isinstance(reason, str) and reason
        return
    pole = Pole(code=code, lon=114.05, lat=22.54, city="x")
    index = PoleIndex([pole])
    assert index.get(code) == pole
    assert index.resolve(code).pole == pole
    assert index.resolve(" ".join(code)).pole == pole  # spaces as read out
    assert index.resolve(code.lower()).pole == pole
    plate = layout(pole, BASE)
    assert unquote(urlsplit(plate.url).path.removeprefix("/p/")) == code
    assert plate.url.isascii()


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="가락지하차도福田罗湖路ABZ0129-", min_size=1, max_size=12))
def test_the_plates_qr_code_names_the_pole(code: str) -> None:
    if registrable(code) is not None:
        return
    plate = layout(Pole(code=code, lon=114.05, lat=22.54, city="x"), BASE)
    assert unquote(urlsplit(qr_text(plate)).path.removeprefix("/p/")) == code


@pytest.mark.parametrize(
    "bad", ["<b>x</b>", "a\x00b", "a\u200bb", "a\u202eb", "福" * 33, "-01", "AАB", "e\u0301"]
)
def test_markup_control_spoofs_and_long_codes_stay_refused(bad: str) -> None:
    assert registrable(bad) is not None


def test_lookup_keys_fold_width_and_case_but_not_lookalikes() -> None:
    assert normalize("ｓｇｑ００３６") == normalize("SGQ0036")
    assert normalize("가락지하차도 - 01") == "가락지하차도-01"
    assert normalize("Straße-1") == "STRASSE-1"
    assert normalize("S6Q0O36") != normalize("SGQ0036")
    with pytest.raises(CodeError):
        normalize("a\u200bb")


async def test_a_button_at_a_korean_pole_can_connect(redis_url: str) -> None:
    """Redis refuses non-ASCII client names; the connection encodes them."""
    client = connect(redis_url, name="button:가락지하차도-01")
    try:
        assert await client.ping()
        assert await client.client_getname() == "button:" + quote("가락지하차도", safe="") + "-01"
    finally:
        await client.aclose()
