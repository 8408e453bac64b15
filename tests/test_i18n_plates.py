"""Chinese first on the printed plates: the instruction in Chinese over English, and codes in
Han or Hangul printed with real glyphs (Noto Sans CJK outlines), not the missing-glyph box."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from polewatch.poles.markers import Text, layout, svg, write_pdf

BASE = "https://pw.example"
DPI = 100


def code_glyph(code: str, tmp_path: Path) -> np.ndarray:
    """The first character of ``code`` as printed on its PDF plate (poppler at 100 dpi)."""
    plate = layout(code, BASE, language="zh-CN")
    pdf = tmp_path / f"{ord(code[0]):x}.pdf"
    write_pdf([plate], pdf)
    prefix = tmp_path / f"{ord(code[0]):x}"
    subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-png", "-singlefile", str(pdf),
                    str(prefix)], check=True)  # fmt: skip
    page = cv2.imread(f"{prefix}.png", cv2.IMREAD_GRAYSCALE)
    assert page is not None
    first = next(s for s in plate.shapes if isinstance(s, Text) and s.text == code[0])
    px = DPI / 25.4
    top, bottom = first.y - first.size, first.y + 0.3 * first.size
    left, right = first.x - first.size / 2, first.x + first.size / 2
    return np.asarray(page[int(top * px) : int(bottom * px), int(left * px) : int(right * px)])


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils (./dev test) missing")
def test_chinese_and_korean_codes_print_as_glyphs_not_boxes(tmp_path: Path) -> None:
    box = code_glyph("\U00013000-01", tmp_path)  # no font here has it: the missing-glyph box
    glyphs = {ch: code_glyph(f"{ch}-01", tmp_path) for ch in "福田가락"}
    for ch, image in glyphs.items():
        assert (image < 128).sum() > 50, f"{ch!r} printed nothing"
        assert not np.array_equal(image, box), f"{ch!r} printed as a box"
    images = list(glyphs.values())
    assert all(not np.array_equal(a, b) for i, a in enumerate(images) for b in images[i + 1 :])


def test_plate_says_how_to_get_help_in_chinese_then_english() -> None:
    plate = layout("福田001路-003", BASE, city="shenzhen", language="zh-CN")
    lines = [s.text for s in plate.shapes if isinstance(s, Text) and len(s.text) > 3]
    assert lines[:2] == ["紧急求助：扫码或按报警按钮", "Emergency: scan or press the button"]
    assert lines[2] == "深圳 · 福田001路-003"  # the city as its people write it
    document = svg(plate)
    assert "紧急求助" in document and "Noto Sans CJK SC" in document
    english = [
        s.text for s in layout("1012047", BASE, city="shenzhen").shapes if isinstance(s, Text)
    ]
    assert "紧急求助：扫码或按报警按钮" not in english
    assert "SHENZHEN · 1012047" in english
