"""An incident as an OASIS CAP 1.2 alert (``urn:oasis:names:tc:emergency:cap:1.2``).

One export is one CAP message describing the incident as it stands: ``Alert`` while it is
new, ``Update`` once it has moved on, ``Cancel`` when it was cancelled or merged into another.
The identifier carries the number of transitions so far, so successive exports of one incident
are distinct messages, and updates reference the first one (``sender,identifier,sent``).
Scope is ``Restricted``: an incident names people and places that are not for the public.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Final

import msgspec

from analytics.exports import vocabulary as vocab
from analytics.exports.text import clean, token
from analytics.incidents import IncidentRecord, iso

NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"


class ExportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Who is exporting, and how places and times are written."""

    sender: str = "polewatch@localhost"
    """CAP ``sender`` / the EIDO agency id: the exporting system's globally unique name."""
    agency: str = "polewatch command centre"
    """Human name of the exporting agency (CAP ``senderName``)."""
    utc_offset_min: int = 0
    """Local time zone of the timestamps (Shenzhen: 480); UTC is written as ``-00:00``."""
    radius_km: float = 0.1
    """Radius of the CAP area circle around the pole (the dispatcher merges within ~80 m)."""
    language: str = "en-US"


DEFAULT_OPTIONS: Final = ExportOptions()


def cap_xml(record: IncidentRecord, options: ExportOptions = DEFAULT_OPTIONS) -> bytes:
    """The CAP 1.2 XML document (UTF-8, with an XML declaration) of one incident."""
    inc = record.incident
    o = options
    mapping = vocab.type_mapping(inc.type)
    events = {e.event for e in record.timeline} | set(inc.times)
    reached_scene = bool(events & {"on_scene", "resolved"})
    first_ts = inc.created
    last_ts = max([inc.created, *(e.ts for e in record.timeline), *inc.times.values()])
    sender = token(clean(o.sender))
    first_id = _identifier(sender, inc.id, 1)
    msg_type = (
        "Cancel"
        if inc.state in ("cancelled", "merged")
        else ("Alert" if len(record.timeline) <= 1 and inc.state == "new" else "Update")
    )

    alert = ET.Element("alert", xmlns=NAMESPACE)
    _sub(alert, "identifier", _identifier(sender, inc.id, max(1, len(record.timeline))))
    _sub(alert, "sender", sender)
    _sub(alert, "sent", iso(last_ts, o.utc_offset_min))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", msg_type)
    _sub(alert, "source", "polewatch dispatcher")
    _sub(alert, "scope", "Restricted")
    _sub(alert, "restriction", "For public-safety agencies only")
    if inc.state == "merged":
        target = f" into incident {inc.merged_into}" if inc.merged_into else ""
        _sub(alert, "note", f"Duplicate report, merged{target}")
    elif inc.state == "cancelled":
        _sub(alert, "note", "Incident cancelled by the command centre")
    if msg_type != "Alert":
        _sub(alert, "references", f"{sender},{first_id},{iso(first_ts, o.utc_offset_min)}")
    related = [inc.id] + ([inc.merged_into] if inc.merged_into else [])
    _sub(alert, "incidents", " ".join(token(clean(i)) for i in related))

    info = ET.SubElement(alert, "info")
    _sub(info, "language", o.language)
    for category in mapping.cap_categories:
        _sub(info, "category", category)
    _sub(info, "event", mapping.event)
    if inc.state in vocab.FINISHED:
        _sub(info, "responseType", "AllClear")
    _sub(info, "urgency", vocab.urgency(inc.priority, inc.state))
    _sub(info, "severity", vocab.severity(inc.priority))
    _sub(info, "certainty", vocab.certainty(reached_scene, inc.reports))
    _pair(info, "eventCode", "polewatch:alarm-type", inc.type)
    _pair(info, "eventCode", "NENA:IncidentType-Common", mapping.eido_type)
    _sub(info, "effective", iso(inc.created, o.utc_offset_min))
    if inc.alarm_ts is not None:
        _sub(info, "onset", iso(inc.alarm_ts, o.utc_offset_min))
    _sub(info, "senderName", o.agency)
    _sub(info, "headline", _headline(record, mapping.event))
    _sub(info, "description", _description(record, o.utc_offset_min))
    for name, value in _parameters(record, o.utc_offset_min):
        _pair(info, "parameter", name, value)
    _area(info, record, o.radius_km)

    ET.indent(alert)
    body: bytes = ET.tostring(alert, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _identifier(sender: str, incident_id: str, n: int) -> str:
    return f"{sender}.incident.{token(clean(incident_id))}.{n}"


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = clean(text)
    return el


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    el = ET.SubElement(parent, tag)
    _sub(el, "valueName", name)
    _sub(el, "value", value)


def _place(record: IncidentRecord) -> str:
    inc = record.incident
    parts = [
        f"pole {inc.pole}" if inc.pole else None,
        inc.grid and f"grid {inc.grid}",
        inc.district,
    ]
    return ", ".join(p for p in parts if p) or "unnamed place"


def _headline(record: IncidentRecord, event: str) -> str:
    # CAP recommends headlines under 160 characters (text messages, sign boards).
    return f"P{record.incident.priority} {event} at {_place(record)}"[:160]


def _description(record: IncidentRecord, utc_offset_min: int) -> str:
    inc = record.incident
    lines = [inc.text or f"{vocab.type_mapping(inc.type).event} ({inc.type})"]
    lines.append(
        f"State: {inc.state}; reports: {inc.reports}; units: {', '.join(inc.units) or 'none'}."
    )
    for alarm in record.alarms:
        extra = f" - {alarm.text}" if alarm.text else ""
        lines.append(
            f"Alarm {alarm.id} ({alarm.type}) from {alarm.source} at "
            f"{iso(alarm.ts, utc_offset_min)}{extra}"
        )
    for e in record.timeline:
        who = f" unit {e.unit}" if e.unit else ""
        by = f" by {e.actor}" if e.actor else ""
        detail = f": {e.detail}" if e.detail else ""
        lines.append(f"{iso(e.ts, utc_offset_min)} {e.event}{who}{by}{detail}")
    return "\n".join(lines)


def _parameters(record: IncidentRecord, utc_offset_min: int) -> list[tuple[str, str]]:
    inc = record.incident
    out = [
        ("polewatch:state", inc.state),
        ("polewatch:priority", f"P{inc.priority}"),
        ("polewatch:reports", str(inc.reports)),
    ]
    if inc.units:
        out.append(("polewatch:units", " ".join(inc.units)))
    out += [("polewatch:alarm", a) for a in record.alarm_ids]
    out += [
        (f"polewatch:t_{state}", iso(ts, utc_offset_min))
        for state, ts in sorted(inc.times.items(), key=lambda kv: kv[1])
    ]
    if inc.evaluation is not None:
        out.append(("polewatch:evaluation", str(inc.evaluation)))
    return out


def _area(info: ET.Element, record: IncidentRecord, radius_km: float) -> None:
    inc = record.incident
    area = ET.SubElement(info, "area")
    _sub(area, "areaDesc", _place(record))
    if math.isfinite(inc.lat) and math.isfinite(inc.lon):
        lat = min(90.0, max(-90.0, inc.lat))
        lon = min(180.0, max(-180.0, inc.lon))
        _sub(area, "circle", f"{lat:.6f},{lon:.6f} {radius_km:g}")
    for name, value in (("pole", inc.pole), ("grid", inc.grid), ("district", inc.district)):
        if value:
            _pair(area, "geocode", f"polewatch:{name}", value)
