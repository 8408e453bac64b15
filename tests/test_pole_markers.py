"""Printable pole markers: ``polewatch poles markers`` writes plates a sign maker can print,
and each plate's QR code, read back from the rendered page, opens that pole's help page."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from polewatch.cli import main
from polewatch.poles.codes import format_shenzhen
from polewatch.poles.markers import (
    MAX_MM,
    MIN_MM,
    MarkerError,
    layout,
    parse_size,
    pole_url,
    svg,
    svg_name,
)
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry

BASE = "https://help.polewatch.example/city"
SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = ['<&">', "a]]></text><script>alert(1)</script>", "../../etc/passwd", "x'y\u202e"]
ROAD = "Shennan Blvd (E-W)"


def store(redis_url: str, city: str, poles: list[Pole]) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await PoleRegistry(client, city).store(poles)
        finally:
            await client.aclose()

    asyncio.run(run())


@pytest.fixture
def kansascity(redis_url: str, data_dir: Path) -> list[str]:
    """The real Kansas City sample imported through the registry's importer; its codes."""
    path = data_dir / "poles" / "kansascity_streetlights_sample.geojson"
    assert main(["poles", "import", str(path), "--city", "kc", "--redis-url", redis_url]) == 0
    return ["SGQ0036", "NQG1512", "SAG1572", "SAE1688"]


@pytest.fixture
def shenzhen(redis_url: str) -> list[Pole]:
    """Shenzhen-style poles: 6 on Shennan Blvd in Futian, 3 on a Nanshan road, and hostile
    codes as an inventory might carry them."""

    def pole(code: str, road: str, district: str, i: int) -> Pole:
        return Pole(
            code=code,
            lon=114.05 + i / 1e4,
            lat=22.54,
            city="shenzhen",
            road=road,
            district=district,
        )

    poles = [pole(format_shenzhen(1, 12, n), ROAD, "Futian", n) for n in range(1, 7)]
    poles += [pole(format_shenzhen(3, 40, n), "Road 340 (N-S)", "Nanshan", n) for n in (1, 2, 3)]
    poles += [pole(code, "Hostile Rd", "Luohu", i) for i, code in enumerate(HOSTILE)]
    store(redis_url, "shenzhen", poles)
    return poles


def markers(redis_url: str, *args: str) -> int:
    return main(["poles", "markers", *args, "--base-url", BASE, "--redis-url", redis_url])


def decode(image: np.ndarray) -> str:
    text, points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert points is not None and text, "no QR code found on the plate"
    return str(text)


def pdf_pages(pdf: Path, tmp_path: Path) -> list[np.ndarray]:
    """Every page of ``pdf`` rendered by poppler at 100 dpi, in order."""
    assert shutil.which("pdftoppm"), "pdftoppm missing: ./dev test installs poppler-utils"
    prefix = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "100", "-gray", "-png", str(pdf), str(prefix)], check=True)
    files = sorted(tmp_path.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    return [np.asarray(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files]


def is_page(page: np.ndarray, width_mm: float, height_mm: float) -> bool:
    """A 100 dpi rendering is this many mm (poppler rounds up to whole pixels)."""
    height, width = page.shape
    return bool(abs(width - width_mm / 0.254) <= 1 and abs(height - height_mm / 0.254) <= 1)


def svg_qr_image(root: ET.Element) -> np.ndarray:
    """Rasterises the QR group exactly as the SVG draws it (white square, dark runs)."""
    group = root.find(f".//{SVG_NS}g[@id='qr']")
    assert group is not None
    side = round(float(group.find(f"{SVG_NS}rect").get("width", "")))  # type: ignore[union-attr]
    grid = np.full((side, side), 255, np.uint8)
    d = group.find(f"{SVG_NS}path").get("d")  # type: ignore[union-attr]
    for col, row, length in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", d or ""):
        grid[int(row), int(col) : int(col) + int(length)] = 0
    assert (grid[:4] == 255).all() and (grid[:, :4] == 255).all(), "quiet zone not clear"
    return np.pad(np.kron(grid, np.ones((8, 8), np.uint8)), 40, constant_values=255)


def svg_texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG_NS}text")]


def test_pdf_has_one_page_per_pole_whose_qr_opens_its_help_page(
    kansascity: list[str], redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "kc.pdf"
    assert markers(redis_url, *kansascity, "--city", "kc", "--out", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/TrimBox \[", data)) == len(kansascity)
    assert len(re.findall(rb"/BleedBox \[", data)) == len(kansascity)
    pages = pdf_pages(out, tmp_path)
    assert len(pages) == len(kansascity)
    assert all(is_page(p, 170, 220) for p in pages)  # 150 x 200 mm plate + 10 mm slug
    assert [decode(page) for page in pages] == [f"{BASE}/p/{code}" for code in kansascity]


def test_svg_per_pole_has_plate_size_code_down_the_plate_and_qr(
    shenzhen: list[Pole], redis_url: str, tmp_path: Path
) -> None:
    assert markers(redis_url, "--road", ROAD, "--out", str(tmp_path / "svg")) == 0
    files = sorted((tmp_path / "svg").iterdir())
    codes = sorted(p.code for p in shenzhen if p.road == ROAD)
    assert [f.name for f in files] == [f"pole-{code}.svg" for code in codes]
    for code, file in zip(codes, files, strict=True):
        root = ET.parse(file).getroot()
        assert (root.get("width"), root.get("height")) == ("170mm", "220mm")
        assert root.get("viewBox") == "0 0 170 220"
        trim = root.find(f"{SVG_NS}rect[@id='trim']")
        assert trim is not None and (trim.get("width"), trim.get("height")) == ("150", "200")
        texts = svg_texts(root)
        assert texts[0] == "110"
        assert texts[1 : 1 + len(code)] == list(code)  # one character per line, in order
        assert any("Emergency" in t for t in texts)
        assert decode(svg_qr_image(root)) == f"{BASE}/p/{code}"


def test_hostile_codes_are_escaped_in_svg_and_pdf(
    shenzhen: list[Pole], redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "svg"
    assert markers(redis_url, *HOSTILE, "--out", str(out)) == 0
    files = {f.name: f for f in out.iterdir()}
    assert sorted(files) == sorted(svg_name(code) for code in HOSTILE)  # all inside out/
    for code in HOSTILE:
        raw = files[svg_name(code)].read_text(encoding="utf-8")
        assert "<script" not in raw
        root = ET.fromstring(raw)
        assert root.get("data-pole") == code
        assert root.find(f"{SVG_NS}title").text == f"Pole {code}"  # type: ignore[union-attr]
        assert svg_texts(root)[1 : 1 + len(code)] == list(code)
        url = decode(svg_qr_image(root))
        assert url.startswith(f"{BASE}/p/") and unquote(url.rsplit("/", 1)[1]) == code
    pdf = tmp_path / "hostile.pdf"
    assert markers(redis_url, HOSTILE[0], "--out", str(pdf)) == 0
    assert [decode(page) for page in pdf_pages(pdf, tmp_path)] == [f"{BASE}/p/%3C%26%22%3E"]


def test_district_limit_and_landscape_size(
    shenzhen: list[Pole], redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "futian.pdf"
    args = ["--district", "Futian", "--limit", "2", "--size", "200x150", "--out", str(out)]
    assert markers(redis_url, *args) == 0
    pages = pdf_pages(out, tmp_path)
    assert len(pages) == 2 and all(is_page(p, 220, 170) for p in pages)
    first_two = sorted(p.code for p in shenzhen if p.district == "Futian")[:2]
    assert [decode(p) for p in pages] == [f"{BASE}/p/{c}" for c in first_two]


def test_bad_requests_exit_with_a_message(
    shenzhen: list[Pole], redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.pdf")
    assert markers(redis_url, "--out", out) == 2  # no selection: not the whole city by accident
    assert "--limit" in capsys.readouterr().err
    assert markers(redis_url, "1012001", "9999999", "--out", out) == 1
    assert "'9999999'" in capsys.readouterr().err
    assert markers(redis_url, "1012001", "--size", "15x20cm", "--out", out) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert markers(redis_url, "--road", "Nowhere", "--out", out) == 1
    assert markers(redis_url, "--district", "Futian", "--out", str(tmp_path / "one.svg")) == 2
    assert not Path(out).exists()
    bad_base = ["poles", "markers", "1012001", "--base-url", "javascript:alert(1)"]
    assert main([*bad_base, "--out", out, "--redis-url", redis_url]) == 2


def test_plate_keeps_everything_inside_the_trim_line() -> None:
    for size in [(150.0, 200.0), (200.0, 150.0), (MIN_MM, MIN_MM), (100.0, 600.0)]:
        plate = layout("S" * 32, BASE, size=size, city="kansas city")
        ET.fromstring(svg(plate))
        for shape in plate.shapes[9:]:  # after the bleed background and the 8 crop marks
            x = getattr(shape, "x", getattr(shape, "x1", 0.0))
            y = getattr(shape, "y", getattr(shape, "y1", 0.0))
            assert plate.trim.x <= x <= plate.trim.x + size[0], (size, shape)
            assert plate.trim.y <= y <= plate.trim.y + size[1], (size, shape)


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_size_parser_accepts_only_sizes_in_range(text: str) -> None:
    try:
        width, height = parse_size(text)
    except MarkerError as exc:
        assert str(exc)
    else:
        assert MIN_MM <= width <= MAX_MM and MIN_MM <= height <= MAX_MM


@given(
    st.integers(0, 4000),
    st.integers(0, 4000),
    st.sampled_from(["{w}x{h}", "{w} x {h} mm", "{w}×{h}", " {w}X{h}mm "]),
)
def test_size_parser_reads_what_people_type(w: int, h: int, form: str) -> None:
    text = form.format(w=w / 2, h=h)
    if MIN_MM <= w / 2 <= MAX_MM and MIN_MM <= h <= MAX_MM:
        assert parse_size(text) == (w / 2, h)
    else:
        with pytest.raises(MarkerError, match="outside"):
            parse_size(text)


@given(st.text(min_size=1, max_size=32))
@settings(max_examples=60, deadline=None)
def test_any_code_makes_well_formed_svg_and_a_url_that_names_it(code: str) -> None:
    url = pole_url(BASE, code)
    assert url.isascii() and unquote(url.rsplit("/p/", 1)[1]) == code
    root = ET.fromstring(svg(layout(code, BASE)))
    assert root.get("width") == "170mm"
