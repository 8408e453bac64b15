"""Analytics served to the command centre: response-time figures for the charts, the
quarterly assessment (HTML, PDF, PNG), the incidents CSV, and any incident as CAP 1.2 XML or
NENA EIDO JSON. The work is :mod:`analytics`'; this module only answers HTTP with it.

With the gateway's ``database_url`` (the incident archive) the figures read archived incidents
in PostgreSQL (psycopg's async driver; the gateway's pool, :mod:`gateway.archive`) and those
Redis holds that are not archived yet; an export reads Redis while it has the incident, else
the archive (:mod:`analytics.archive`)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Final

from aiohttp import web

from analytics import cap_xml, eido_json, render_html, render_pdf, render_png, summarize
from analytics.cli import parse_time
from analytics.csv_export import write_incidents_csv
from analytics.exports import ExportOptions
from gateway import archive
from gateway.archive import ARCHIVE_DOWN, answering
from gateway.auth import authorize
from gateway.console.language import local_offset, request_language
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api, path_value
from gateway.state import GATEWAY, Gateway
from polewatch import districts, wire

OPERATORS: Final = ("operator", "supervisor")
QUARTER_S: Final = 91 * 86_400.0
PERIOD: Final = (
    Query("from", "Start: YYYY-MM-DD (local midnight) or ISO date-time; default 91 days ago"),
    Query("to", "End: YYYY-MM-DD (that whole day) or ISO date-time; default now"),
    Query("district", "One district, by any of its names: 福田区, Futian, futian (default: all)"),
    Query("lang", "Language of the report (zh-CN, en); default: cookie, Accept-Language"),
    Query("token", "The operator's token, for links opened by the browser"),
)
REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
"""The assessment page is self-contained and has no script at all."""
BAD_PERIOD: Final = {
    422: "'from' or 'to' is not a date, or 'to' is not after 'from'",
    503: ARCHIVE_DOWN,
}

routes = web.RouteTableDef()


def _operator(request: web.Request) -> Gateway:
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, *OPERATORS)
    return gw


def period(request: web.Request, utc_offset_min: int) -> tuple[float, float, str | None]:
    """The ``from``/``to``/``district`` of a report request; 422 when they make no sense."""
    now = time.time()
    try:
        start = parse_time(request.query["from"], utc_offset_min) if "from" in request.query \
            else now - QUARTER_S  # fmt: skip
        end = parse_time(request.query["to"], utc_offset_min, end=True) if "to" in request.query \
            else now  # fmt: skip
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    if end <= start:
        raise HttpError(422, "'to' must be after 'from'")
    district = request.query.get("district")
    return start, end, districts.canonical(district) if district else None


def _attachment(body: bytes, content_type: str, name: str) -> web.Response:
    return web.Response(
        body=body, content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


@routes.get("/api/console/reports/times")
@api(tag="console", roles=OPERATORS, query=PERIOD, answers=BAD_PERIOD)
async def times(request: web.Request) -> web.Response:
    """Response-time percentiles per district, grid and priority (the charts' data)."""
    gw = _operator(request)
    start, end, district = period(request, local_offset(gw))
    async with answering():
        incidents = await archive.incidents(gw).times(start, end, district=district)
    return json_response(summarize(incidents, start, end, district))


@routes.get("/api/console/reports/assessment.{fmt:html|pdf|png}")
@api(tag="console", roles=OPERATORS, query=PERIOD, answers=BAD_PERIOD,
     content=("text/html", "application/pdf", "image/png"))  # fmt: skip
async def assessment(request: web.Request) -> web.Response:
    """The public-security assessment of a period (HTML page, PDF or PNG with charts)."""
    gw = _operator(request)
    offset = local_offset(gw)
    start, end, district = period(request, offset)
    async with answering():
        report = await archive.incidents(gw).assess(
            start, end, district=district, utc_offset_min=offset,
            language=request_language(request),
        )  # fmt: skip
    fmt = request.match_info["fmt"]
    if fmt == "html":
        page = await asyncio.to_thread(render_html, report)
        return web.Response(
            text=page, content_type="text/html",
            headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store",
                     "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip
    render = render_pdf if fmt == "pdf" else render_png
    body = await asyncio.to_thread(render, report)
    kind = "application/pdf" if fmt == "pdf" else "image/png"
    return _attachment(body, kind, f"assessment.{fmt}")


@routes.get("/api/console/reports/incidents.csv")
@api(tag="console", roles=OPERATORS, query=PERIOD, content="text/csv", answers=BAD_PERIOD)
async def csv(request: web.Request) -> web.Response:
    """Every incident of the period, one row each with every transition time."""
    gw = _operator(request)
    offset = local_offset(gw)
    start, end, district = period(request, offset)
    async with answering():
        incidents = await archive.incidents(gw).times(start, end, district=district)
    text = io.StringIO()
    write_incidents_csv(text, incidents, utc_offset_min=offset, language=request_language(request))
    return _attachment(text.getvalue().encode(), "text/csv", "incidents.csv")


@routes.get("/api/console/incidents/{incident}/export.{fmt:cap|eido}")
@api(tag="console", roles=OPERATORS, content=("application/xml", "application/json"),
     query=(Query("token", "The operator's token, for links opened by the browser"),),
     path={"incident": wire.Ident},
     answers={404: "No such incident", 422: "Malformed incident id"})  # fmt: skip
async def export(request: web.Request) -> web.Response:
    """One incident for another agency: CAP 1.2 XML (``cap``) or NENA EIDO JSON (``eido``)."""
    gw = _operator(request)
    iid = path_value(request, "incident")
    gw.incident_zone(iid)  # 404 for an id of no zone of this deployment
    async with answering():
        record = await archive.incidents(gw).record(iid)
    if record is None:
        raise HttpError(404, f"no incident {iid!r}")
    c = gw.settings.console
    options = ExportOptions(sender=c.sender, agency=c.agency, utc_offset_min=local_offset(gw))
    if request.match_info["fmt"] == "cap":
        return _attachment(cap_xml(record, options), "application/xml", f"{iid}.cap.xml")
    return _attachment(eido_json(record, options), "application/json", f"{iid}.eido.json")
