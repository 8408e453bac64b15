"""Analytics, reports and exports: the read side of polewatch.

Everything here reads what the dispatcher wrote (incident hashes per :mod:`polewatch.records`,
the audit streams, per-incident timelines and alarm bodies) and never writes dispatch state.
The public surface is plain functions taking a ``redis.asyncio`` client (a Redis Cluster one
too) or plain data and returning structs, ``str`` or ``bytes``, so the gateway can serve them
as-is. In a zoned deployment pass the deployment's ``zones`` (``settings.zone_map()``): the
readers then merge every zone's audit stream and find each incident in its own zone; no
command ever spans two zones.
"""

from __future__ import annotations

from analytics.assessment import Assessment, assess
from analytics.csv_export import incidents_csv, write_incidents_csv
from analytics.exports import cap_xml, eido_json, eido_object
from analytics.incidents import IncidentRecord, load_incident
from analytics.report import render_html, render_pdf, render_png
from analytics.response_times import (
    METRICS,
    IncidentTimes,
    ResponseTimes,
    incident_times,
    response_times,
    summarize,
)

__all__ = [
    "METRICS",
    "Assessment",
    "IncidentRecord",
    "IncidentTimes",
    "ResponseTimes",
    "assess",
    "cap_xml",
    "eido_json",
    "eido_object",
    "incident_times",
    "incidents_csv",
    "load_incident",
    "render_html",
    "render_pdf",
    "render_png",
    "response_times",
    "summarize",
    "write_incidents_csv",
]
