"""Report periods as people say them: a quarter (``2026-Q4``, ``2026Q4``, ``Q4 2026``,
``2026年第4季度``) or a month (``2026-10``, ``2026年10月``), in the city's local time. A
period is half-open: its first local midnight to the first of the next period."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, tzinfo
from typing import Final

_QUARTER: Final = (
    re.compile(r"(?P<y>\d{4})\s*-?\s*Q(?P<q>[1-4])", re.I),
    re.compile(r"Q(?P<q>[1-4])\s*-?\s*(?P<y>\d{4})", re.I),
    re.compile(r"(?P<y>\d{4})\s*年?\s*第?\s*(?P<q>[1-4一二三四])\s*季度?"),
)
_MONTH: Final = (
    re.compile(r"(?P<y>\d{4})\s*-\s*(?P<m>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月?"),
)
_CHINESE_DIGITS: Final = {"一": "1", "二": "2", "三": "3", "四": "4"}
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 9998


class PeriodError(ValueError):
    """Text that is not a quarter or a month; the message says what is expected."""


def quarter(text: str) -> tuple[date, date]:
    """The first day of a quarter and the first day after it."""
    match = _match(_QUARTER, text, "a quarter such as 2026-Q4")
    year = _year(match["y"])
    q = int(_CHINESE_DIGITS.get(match["q"], match["q"]))
    first = date(year, 3 * q - 2, 1)
    return first, _next_month(first, 3)


def month(text: str) -> tuple[date, date]:
    """The first day of a month and the first day after it."""
    match = _match(_MONTH, text, "a month such as 2026-10")
    year, number = _year(match["y"]), int(match["m"])
    if not 1 <= number <= 12:
        raise PeriodError(f"{text!r}: month {number} is not 1-12")
    first = date(year, number, 1)
    return first, _next_month(first, 1)


def bounds(first: date, after: date, zone: tzinfo) -> tuple[float, float]:
    """Unix times of local midnight on ``first`` and on ``after`` in ``zone``."""

    def midnight(day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()

    return midnight(first), midnight(after)


def _match(patterns: tuple[re.Pattern[str], ...], text: str, expected: str) -> re.Match[str]:
    folded = unicodedata.normalize("NFKC", text).strip() if isinstance(text, str) else ""
    for pattern in patterns:
        found = pattern.fullmatch(folded)
        if found:
            return found
    raise PeriodError(f"{str(text)[:40]!r} is not {expected}")


def _year(text: str) -> int:
    year = int(text)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"year {year} is outside {MIN_YEAR}-{MAX_YEAR}")
    return year


def _next_month(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
