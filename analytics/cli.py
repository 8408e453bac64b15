"""``polewatch report assessment|csv|times`` and ``polewatch export cap|eido``.

Settings come from :mod:`polewatch.settings` (section ``[analytics]``: ``redis_url``,
``redis_cluster`` and ``zones`` as every service has them, and the exporting agency's
``sender``, ``agency``, ``utc_offset_min``); ``--redis-url`` overrides. Reports read the audit
streams of every zone; an export reads the incident in its own zone. With ``database_url``
(``DATABASE_URL``) reports read the incident archive as well (:mod:`analytics.archive`), and
an incident no longer in Redis is exported from the archive.
A period is ``--quarter 2026-Q4``, ``--month 2026-10`` or ``--from``/``--to``: dates are
``YYYY-MM-DD`` (local midnight; a ``--to`` date includes that whole day) or ISO 8601 date-times.
Local time is the ``timezone`` setting (Asia/Shanghai by default; ``utc_offset_min`` or
``--utc-offset`` fix an offset instead). ``--district`` takes any of a district's names
(``福田区``, ``Futian``, ``futian``); reports are written in the ``language`` setting unless
``--lang`` says otherwise. Exit status: 0 done, 1 no such incident, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from analytics.archive import Incidents
from analytics.csv_export import write_incidents_csv
from analytics.exports import ExportOptions, cap_xml, eido_json
from analytics.periods import bounds, month, quarter
from analytics.report import render_html, render_pdf, render_png
from analytics.response_times import IncidentTimes, summarize
from polewatch import districts, i18n
from polewatch.settings import Settings, SettingsError, check_database_url, load
from polewatch.terminal import Report, with_redis

T = TypeVar("T")
REPORT_FORMATS: Final = (".html", ".pdf", ".png")


class AnalyticsSettings(Settings, frozen=True, kw_only=True):
    """Settings of the report and export commands."""

    sender: str = "polewatch@localhost"
    """The exporting system's globally unique name (CAP ``sender``, EIDO agency id)."""
    agency: str = "polewatch command centre"
    database_url: str = ""
    """The incident archive (``DATABASE_URL``); empty: reports read Redis alone."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_database_url(self.database_url)

    utc_offset_min: int | None = None
    """Local time of reports and exports as a fixed offset, minutes east of UTC (Shenzhen:
    480); unset: the ``timezone`` setting's offset at the start of the period."""

    def offset_min(self, at: float) -> int:
        """Minutes east of UTC of local time at Unix time ``at``."""
        return self.utc_offset_min if self.utc_offset_min is not None else self.utc_offset_at(at)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="assessment report, CSV and response times")
    kinds = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    a = kinds.add_parser("assessment", help="public-security assessment (HTML, PDF or PNG)")
    _period(a)
    a.add_argument("--out", required=True, type=Path, help="FILE.html, FILE.pdf or FILE.png")
    a.set_defaults(func=_assessment)
    c = kinds.add_parser("csv", help="one row per incident with every transition time")
    _period(c)
    c.add_argument("--out", required=True, type=Path, help="FILE.csv ('-': standard output)")
    c.set_defaults(func=_csv)
    t = kinds.add_parser("times", help="response-time percentiles as JSON")
    _period(t)
    t.set_defaults(func=_times)

    export = sub.add_parser("export", help="an incident as CAP 1.2 XML or NENA EIDO JSON")
    export.add_argument("format", choices=["cap", "eido"])
    export.add_argument("incident", help="incident id")
    _common(export)
    export.set_defaults(func=_export)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: the redis_url setting)")
    parser.add_argument(
        "--utc-offset",
        type=int,
        metavar="MIN",
        dest="utc_offset_min",
        help="local time, minutes east of UTC (default: the setting)",
    )


def _period(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quarter", metavar="YYYY-QN", help="a quarter, e.g. 2026-Q4")
    parser.add_argument("--month", metavar="YYYY-MM", help="a month, e.g. 2026-10")
    parser.add_argument("--from", dest="start", metavar="DATE")
    parser.add_argument("--to", dest="end", metavar="DATE")
    parser.add_argument(
        "--district", type=districts.argument, help="one district, e.g. 福田区 or futian "
        "(default: the whole city)",
    )  # fmt: skip
    parser.add_argument("--lang", choices=i18n.LANGUAGES, help="default: the language setting")
    _common(parser)


def _settings(args: argparse.Namespace) -> AnalyticsSettings:
    overrides: dict[str, object] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.utc_offset_min is not None:
        overrides["utc_offset_min"] = args.utc_offset_min
    return load(AnalyticsSettings, section="analytics", overrides=overrides)


def parse_time(text: str, utc_offset_min: int, *, end: bool = False) -> float:
    """Unix time of a ``YYYY-MM-DD`` date (local midnight; the next one for an ``end``) or of
    an ISO 8601 date-time (local time unless it names its offset)."""
    tz = timezone(timedelta(minutes=utc_offset_min))
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
        return (when if when.tzinfo else when.replace(tzinfo=tz)).timestamp()
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (midnight + timedelta(days=1 if end else 0)).timestamp()


def _report(args: argparse.Namespace) -> Report:
    """What the command prints, named as it was called (``report csv``, ``export cap``)."""
    kind = getattr(args, "report_command", None)
    return Report(f"report {kind}" if kind else f"export {args.format}")


def _run(settings: AnalyticsSettings, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    return with_redis(settings, work, name="polewatch-analytics")


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (SettingsError, ValueError, OSError) as exc:
            return _report(args).fail(str(exc))
        except (RedisError, RedisClusterException) as exc:
            return _report(args).fail(f"Redis: {exc}", 3)

    return run


def _range(args: argparse.Namespace, settings: AnalyticsSettings) -> tuple[float, float, int]:
    """The period's start and end (Unix times) and the local offset used (minutes)."""
    given = [o for o in ("quarter", "month") if getattr(args, o)]
    if args.start or args.end:
        given.append("from/to")
    if len(given) != 1:
        raise ValueError("give one period: --quarter, --month, or --from and --to")
    if given[0] == "from/to":
        if not (args.start and args.end):
            raise ValueError("--from and --to go together")
        offset = settings.offset_min(_rough(args.start))
        start = parse_time(args.start, offset)
        end = parse_time(args.end, offset, end=True)
        if end <= start:
            raise ValueError("--to must be after --from")
        return start, end, offset
    first, after = quarter(args.quarter) if args.quarter else month(args.month)
    if settings.utc_offset_min is not None:
        zone: zoneinfo.ZoneInfo | timezone = timezone(timedelta(minutes=settings.utc_offset_min))
    else:
        zone = zoneinfo.ZoneInfo(settings.timezone)
    start, end = bounds(first, after, zone)
    return start, end, settings.offset_min(start)


def _rough(text: str) -> float:
    """A time near ``text`` (its UTC reading) to find the local offset there."""
    return parse_time(text, 0)


@_guarded
def _assessment(args: argparse.Namespace) -> int:
    suffix = args.out.suffix.lower()
    if suffix not in REPORT_FORMATS:
        return _report(args).fail(f"--out must end in one of {', '.join(REPORT_FORMATS)}")
    s = _settings(args)
    start, end, offset = _range(args, s)
    zones, language = s.zone_map(), args.lang or s.language
    report = _run(
        s,
        lambda r: Incidents(r, s.database_url, zones).assess(
            start, end, district=args.district, utc_offset_min=offset, language=language
        ),
    )  # fmt: skip
    if suffix == ".html":
        args.out.write_text(render_html(report), encoding="utf-8")
    else:
        args.out.write_bytes(render_pdf(report) if suffix == ".pdf" else render_png(report))
    print(f"{args.out}: {report.incidents} incidents", file=sys.stderr)
    return 0


def _incidents(
    args: argparse.Namespace, s: AnalyticsSettings, start: float, end: float
) -> list[IncidentTimes]:
    """The period's incidents: from Redis, and from the archive with ``database_url``."""
    return _run(
        s,
        lambda r: Incidents(r, s.database_url, s.zone_map()).times(
            start, end, district=args.district
        ),
    )  # fmt: skip


@_guarded
def _csv(args: argparse.Namespace) -> int:
    s = _settings(args)
    start, end, offset = _range(args, s)
    incidents = _incidents(args, s, start, end)
    language = args.lang or s.language
    if str(args.out) == "-":
        write_incidents_csv(sys.stdout, incidents, utc_offset_min=offset, language=language)
    else:
        with args.out.open("w", encoding="utf-8", newline="") as out:
            write_incidents_csv(out, incidents, utc_offset_min=offset, language=language)
    return 0


@_guarded
def _times(args: argparse.Namespace) -> int:
    s = _settings(args)
    start, end, _ = _range(args, s)
    incidents = _incidents(args, s, start, end)
    _report(args).json(summarize(incidents, start, end, args.district))
    return 0


@_guarded
def _export(args: argparse.Namespace) -> int:
    s = _settings(args)
    zones = s.zone_map()
    record = _run(s, lambda r: Incidents(r, s.database_url, zones).record(args.incident))
    if record is None:
        return _report(args).fail(f"no incident {args.incident!r}", 1)
    # CAP and EIDO carry explicit offsets: the local one at export time is as good as any
    offset = s.offset_min(time.time())
    options = ExportOptions(sender=s.sender, agency=s.agency, utc_offset_min=offset)
    body = cap_xml(record, options) if args.format == "cap" else eido_json(record, options)
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0
