"""Chinese, Korean and other CJK text on the printed plates: Noto Sans CJK SC Bold from
Debian's ``fonts-noto-cjk``, drawn into the PDF as outlines.

The plate's own font (DejaVu Sans Bold, see :mod:`polewatch.poles.markers`) has no Han or
Hangul glyphs, and ReportLab cannot embed Noto CJK (its outlines are CFF, which ReportLab does
not read). So text DejaVu cannot show is drawn glyph by glyph from Noto's outlines (read with
fontTools, already a matplotlib dependency): exact vector shapes a sign maker can cut, with no
font to embed or to substitute. When ``fonts-noto-cjk`` is missing such text falls back to
DejaVu (boxes) and a warning names the package.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTCollection, TTFont

FONT_DIRS: Final = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"),
                    Path("/usr/local/share/fonts"))  # fmt: skip
FONT_FILES: Final = ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold.otf", "NotoSansCJK-Regular.ttc")
FACE: Final = "Noto Sans CJK SC"
"""The face of the collection used: Simplified Chinese glyph forms (Hangul and Latin too)."""
log = logging.getLogger(__name__)


@functools.cache
def cjk_font() -> TTFont | None:
    """Noto Sans CJK SC (bold where installed), or ``None`` without ``fonts-noto-cjk``."""
    for folder in FONT_DIRS:
        for name in FONT_FILES:
            path = folder / name
            if not path.is_file():
                continue
            # read into memory: glyphs load lazily, and no file stays open behind the cache
            data = io.BytesIO(path.read_bytes())
            if path.suffix != ".ttc":
                return TTFont(data, lazy=True)
            for face in TTCollection(data, lazy=True).fonts:
                if str(face["name"].getDebugName(1)).startswith(FACE):
                    return face
    log.warning("fonts-noto-cjk is not installed: CJK text on plates prints as boxes")
    return None


@functools.cache
def _cmap() -> dict[int, str]:
    font = cjk_font()
    return dict(font.getBestCmap()) if font is not None else {}


def has_glyphs(text: str) -> bool:
    """Whether the CJK font draws every character of ``text``."""
    cmap = _cmap()
    return bool(cmap) and all(ord(ch) in cmap for ch in text)


def width(text: str, size: float) -> float:
    """Width of ``text`` set at ``size`` (same unit as ``size``) in the CJK font."""
    font = cjk_font()
    if font is None:
        return 0.0
    cmap, metrics = _cmap(), font["hmtx"].metrics
    per_em = size / font["head"].unitsPerEm
    return float(sum(metrics[cmap.get(ord(ch), ".notdef")][0] for ch in text) * per_em)


class _PathPen(BasePen):  # type: ignore[misc]
    """Hands a glyph's outline to drawing callbacks, scaled and placed (y up)."""

    def __init__(self, path: Any, scale: float, x: float, y: float) -> None:
        super().__init__(None)
        self.path, self.scale, self.x, self.y = path, scale, x, y

    def _at(self, point: tuple[float, float]) -> tuple[float, float]:
        return self.x + point[0] * self.scale, self.y + point[1] * self.scale

    def _moveTo(self, pt: tuple[float, float]) -> None:
        self.path.moveTo(*self._at(pt))

    def _lineTo(self, pt: tuple[float, float]) -> None:
        self.path.lineTo(*self._at(pt))

    def _curveToOne(
        self, pt1: tuple[float, float], pt2: tuple[float, float], pt3: tuple[float, float]
    ) -> None:
        self.path.curveTo(*self._at(pt1), *self._at(pt2), *self._at(pt3))

    def _closePath(self) -> None:
        self.path.close()


def draw_centred(new_path: Callable[[], Any], text: str, x: float, y: float, size: float) -> Any:
    """Outline ``text`` centred on ``x`` with its baseline at ``y`` (PDF points, y up) into a
    path from ``new_path()`` (ReportLab's ``canvas.beginPath``); returns the path to fill."""
    font = cjk_font()
    path = new_path()
    if font is None:
        return path
    cmap, glyphs, metrics = _cmap(), font.getGlyphSet(), font["hmtx"].metrics
    scale = size / font["head"].unitsPerEm
    pen_x = x - width(text, size) / 2
    for ch in text:
        name = cmap.get(ord(ch), ".notdef")
        glyphs[name].draw(_PathPen(path, scale, pen_x, y))
        pen_x += metrics[name][0] * scale
    return path
