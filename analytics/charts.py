"""Charts of the assessment report with matplotlib's object API (no pyplot, no global backend:
safe in threads and servers): inline SVG for the HTML page, one A4 page as PDF or PNG."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from analytics.wording import alarm_type, summary_lines
from polewatch import i18n
from polewatch.poles.gridnames import grid_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analytics.assessment import Assessment

CURRENT: Final = "#1f5fa8"
PREVIOUS: Final = "#b9c7d8"
ALERT: Final = "#c0392b"
METRIC_ORDER: Final = (
    "alarm_to_dispatch",
    "dispatch_to_ack",
    "ack_to_scene",
    "alarm_to_scene",
    "resolution",
)
"""The response-time steps in the order the charts list them (names: ``metric.*`` keys)."""
_RC: Final[dict[str, Any]] = {
    "text.parse_math": False,  # a '$' in a grid name is text, not TeX
    "svg.fonttype": "path",  # text as outlines: nothing in the SVG to escape or to inject
    "svg.hashsalt": "polewatch",  # stable ids, so the same report gives the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


_CJK_FONTS: Final = ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei")
_CJK_FILES: Final = ("NotoSansCJK", "wqy-microhei", "wqy-zenhei")
"""File names of those fonts (Debian's fonts-noto-cjk, fonts-wqy-*)."""


@cache
def _families() -> list[str]:
    """DejaVu Sans, then an installed CJK font for Chinese place names (asking matplotlib
    for a font it does not have logs an error per text drawn)."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    if not any(f.name in _CJK_FONTS for f in manager.ttflist):
        # matplotlib caches its font list: one built before fonts-noto-cjk was installed
        # lacks it, and every Chinese character would be drawn as a box.
        for path in font_manager.findSystemFonts():
            if any(part in Path(path).name for part in _CJK_FILES):
                manager.addfont(path)
    installed = {f.name for f in manager.ttflist}
    return ["DejaVu Sans", *(name for name in _CJK_FONTS if name in installed)]


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib  # here, not at the top: every polewatch command imports this module

    rc: Any = {**_RC, "font.family": _families()}
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        # Glyphs the fonts lack (control characters, scripts without a font) draw as boxes.
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
        warnings.filterwarnings("ignore", message="findfont", category=UserWarning)
        yield


def _integers() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _label(text: str, limit: int = 28) -> str:
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _minutes(seconds: float | None) -> float:
    return 0.0 if seconds is None else seconds / 60.0


def _short(seconds: float | None, language: str) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return i18n.translate("duration.s", language, n=f"{seconds:.1f}")
    return i18n.translate("duration.min", language, n=f"{seconds / 60:.1f}")


def _t(a: Assessment, key: str) -> str:
    return i18n.translate(key, a.language)


def draw_types(ax: Axes, a: Assessment) -> None:
    rows = a.by_type[:10][::-1]
    ys = range(len(rows))
    current, previous = _t(a, "chart.this_period"), _t(a, "chart.previous_period")
    ax.barh([y + 0.2 for y in ys], [r.count for r in rows], 0.4, color=CURRENT, label=current)
    ax.barh([y - 0.2 for y in ys], [r.previous for r in rows], 0.4, color=PREVIOUS, label=previous)
    ax.set_yticks(list(ys), [_label(alarm_type(a, r.type)) for r in rows])
    ax.set_title(_t(a, "report.h.types"))
    ax.xaxis.set_major_locator(_integers())
    ax.legend(loc="lower right", frameon=False)


def draw_daily(ax: Axes, a: Assessment) -> None:
    days = [d.day[5:] for d in a.daily]
    ax.plot(days, [d.count for d in a.daily], color=CURRENT, marker="o", linewidth=1.5)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(_integers())
    ax.set_title(_t(a, "chart.per_day"))
    step = max(1, len(days) // 10)
    ax.set_xticks(range(0, len(days), step), days[::step], rotation=45, ha="right")


def draw_response(ax: Axes, a: Assessment) -> None:
    metrics = list(METRIC_ORDER)[::-1]
    figures = a.response.overall.metrics
    ys = range(len(metrics))
    bars = (("p95", ALERT, 0.27), ("p90", CURRENT, 0.0), ("p50", PREVIOUS, -0.27))
    for name, color, offset in bars:
        values = [_minutes(getattr(figures[m], name)) for m in metrics]
        drawn = ax.barh([y + offset for y in ys], values, 0.27, color=color, label=name)
        if name == "p90":
            texts = [_short(getattr(figures[m], name), a.language) for m in metrics]
            ax.bar_label(drawn, texts, padding=3, fontsize=8)
    ax.set_yticks(list(ys), [_t(a, f"metric.{m}") for m in metrics])
    ax.set_xlabel(_t(a, "chart.minutes"))
    ax.set_title(_t(a, "chart.response"))
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper right", frameon=False)
    ax.margins(x=0.12)


def draw_worst(ax: Axes, a: Assessment) -> None:
    rows = a.worst_grids[::-1]
    ys = range(len(rows))
    values = [_minutes(r.alarm_to_scene_p90) for r in rows]
    bars = ax.barh(list(ys), values, 0.6, color=ALERT)
    ax.bar_label(bars, [f"{v:.1f}" for v in values], padding=3)
    ax.margins(x=0.2)
    ax.set_yticks(list(ys), [_label(grid_label(r.grid, a.language), 32) for r in rows])
    ax.set_xlabel(_t(a, "chart.worst_axis"))
    ax.set_title(_t(a, "report.h.worst"))
    if not rows:
        ax.text(0.5, 0.5, _t(a, "chart.no_grid"), ha="center", transform=ax.transAxes)


CHARTS: Final = {
    "types": draw_types,
    "daily": draw_daily,
    "response": draw_response,
    "worst": draw_worst,
}


def svg(a: Assessment, chart: str, size: tuple[float, float] = (5.6, 3.6)) -> str:
    """One chart as an ``<svg>`` element to put inline in HTML (no XML prolog)."""
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=size, layout="constrained")
        CHARTS[chart](fig.add_subplot(), a)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    return text[text.index("<svg") :]


def page(a: Assessment, fmt: str, dpi: int = 110) -> bytes:
    """The whole report on one A4 page: ``fmt`` is ``pdf`` or ``png``."""
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=(8.27, 11.69), layout="constrained")
        parts: Any = fig.subfigures(2, 1, height_ratios=[0.75, 4.5])
        top, bottom = parts[0], parts[1]
        top.text(0.0, 0.92, a.title, fontsize=15, fontweight="bold", va="top")
        top.text(
            0.0,
            0.62,
            "\n".join(_label(line, 110) for line in summary_lines(a)),
            fontsize=9,
            va="top",
            linespacing=1.5,
        )
        axes = bottom.subplots(2, 2)
        draw_types(axes[0][0], a)
        draw_daily(axes[0][1], a)
        draw_response(axes[1][0], a)
        draw_worst(axes[1][1], a)
        out = io.BytesIO()
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(out, format=fmt, dpi=dpi, metadata=metadata)
    return out.getvalue()
