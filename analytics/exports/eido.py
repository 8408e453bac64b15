"""An incident as a NENA EIDO (NENA-STA-021) JSON object, version ``1.0``.

The document holds the exporting agency, the incident (type, status, priority, grid as the
beat, disposition once finished), its location (a PIDF-LO circle around the pole), one
alarm/sensor component per alarm, one emergency resource per unit that took part with its last
status, one dispatch component per dispatch, and notes (the incident text, each alarm and each
transition; notes are HTML5, so their text is escaped). Registry values come from
:mod:`analytics.exports.vocabulary`.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from analytics.exports import vocabulary as vocab
from analytics.exports.cap import DEFAULT_OPTIONS, ExportOptions
from analytics.exports.text import clean, token
from analytics.incidents import IncidentRecord, iso

JSONObject = dict[str, Any]


def eido_json(record: IncidentRecord, options: ExportOptions = DEFAULT_OPTIONS) -> bytes:
    """The EIDO JSON document (UTF-8) of one incident."""
    text = json.dumps(eido_object(record, options), ensure_ascii=False, indent=2)
    return text.encode("utf-8") + b"\n"


def eido_object(record: IncidentRecord, options: ExportOptions = DEFAULT_OPTIONS) -> JSONObject:
    """The EIDO of one incident as a JSON-ready dict."""
    return _Builder(record, options).build()


class _Builder:
    def __init__(self, record: IncidentRecord, options: ExportOptions) -> None:
        self.record = record
        self.o = options
        self.domain = token(clean(options.sender)).replace("@", ".")
        self.agency_id = self.domain
        inc = record.incident
        self.last_ts = max([inc.created, *(e.ts for e in record.timeline), *inc.times.values()])
        self.notes: list[JSONObject] = []

    # --- helpers -------------------------------------------------------------------------
    def uid(self, kind: str, local: str) -> str:
        """A NENA-style globally unique id ``urn:emergency:uid:<kind>:<local>:<domain>``."""
        return f"urn:emergency:uid:{kind}:{token(clean(local))}:{self.domain}"

    def prologue(self, id_: str, ts: float) -> JSONObject:
        return {
            "$id": id_,
            "lastUpdateTimeStamp": self.time(ts),
            "updatedByAgencyReference": {"$ref": self.agency_id},
        }

    def time(self, ts: float) -> str:
        return iso(ts, self.o.utc_offset_min, fraction=True, utc="+00:00")

    def note(self, key: str, ts: float, text: str) -> JSONObject:
        id_ = self.uid("noteid", f"{self.record.incident.id}.{key}")
        self.notes.append(
            {**self.prologue(id_, ts), "notesActionComments": html.escape(clean(text))}
        )
        return {"$ref": id_}

    # --- the document --------------------------------------------------------------------
    def build(self) -> JSONObject:
        inc = self.record.incident
        location = self.location()
        resources, dispatches = self.units()
        version = f"{inc.id}.{max(1, len(self.record.timeline))}"
        doc: JSONObject = {
            **self.prologue(self.uid("eidoid", version), self.last_ts),
            "eidoVersion": "1.0",
            "issuingElementIdentification": self.domain,
            "incidentComponent": self.incident(location),
            "agencyComponent": [self.agency()],
        }
        if inc.state == "merged" and inc.merged_into:
            doc["mergeComponent"] = [
                {
                    **self.prologue(self.uid("mergeid", inc.id), self.last_ts),
                    "incidentTrackingIdentifier": self.uid("incidentid", inc.merged_into),
                    "incidentMergeDirectionCode": "REPLACED",
                }
            ]
        if location is not None:
            doc["locationComponent"] = [location]
        alarms = self.alarms()
        if alarms:
            doc["alarmsSensorsComponent"] = alarms
        if resources:
            doc["emergencyResourceComponent"] = resources
        if dispatches:
            doc["dispatchComponent"] = dispatches
        if self.notes:
            doc["notesComponent"] = self.notes
        return doc

    def agency(self) -> JSONObject:
        return {
            **self.prologue(self.agency_id, self.record.incident.created),
            "agencyRoleDescriptionRegistryText": ["CallReceiving"],
            "agencyType": ["police"],
            "incidentOwningAgencyIndicator": True,
            "notesReference": [self.note("agency", self.record.incident.created, self.o.agency)],
        }

    def incident(self, location: JSONObject | None) -> JSONObject:
        inc = self.record.incident
        mapping = vocab.type_mapping(inc.type)
        out: JSONObject = {
            **self.prologue(self.uid("incidentid", inc.id), self.last_ts),
            "incidentTypeCommonRegistryText": mapping.eido_type,
            "incidentTypeInternalCode": clean(inc.type),
            "incidentTypeInternalText": mapping.event,
            "incidentStatusCommonRegistryText": list(
                vocab.INCIDENT_STATUS.get(inc.state, ("Active",))
            ),
            "incidentStatusInternalText": [clean(inc.state)],
            "internalIncidentId": clean(inc.id),
            "incidentPriorityInternalText": f"P{inc.priority}",
            "incidentCommonPriorityNumber": max(-(2**31), min(2**31 - 1, inc.priority)),
        }
        if location is not None:
            out["locationReference"] = [{"$ref": location["$id"]}]
        if inc.grid:
            out["beatOrDispatchGroupText"] = clean(inc.grid)
        reached = bool(
            {"on_scene", "resolved"} & ({e.event for e in self.record.timeline} | set(inc.times))
        )
        code = vocab.disposition(inc.state, inc.type, reached)
        if code is not None:
            out["dispositionComponent"] = [
                {
                    **self.prologue(self.uid("dispositionid", inc.id), self.last_ts),
                    "dispositionCommonRegistryCode": code[0],
                    "dispositionPrimaryIndicator": True,
                    "dispositionDescriptionText": code[1],
                }
            ]
        summary = inc.text or mapping.event
        out["notesReference"] = [self.note("text", inc.created, summary)]
        return out

    def location(self) -> JSONObject | None:
        inc = self.record.incident
        if not (math.isfinite(inc.lat) and math.isfinite(inc.lon)):
            return None
        lat = min(90.0, max(-90.0, inc.lat))
        lon = min(180.0, max(-180.0, inc.lon))
        place = ", ".join(
            p
            for p in (
                inc.pole and f"pole {inc.pole}",
                inc.grid and f"grid {inc.grid}",
                inc.district,
            )
            if p
        )
        out: JSONObject = {
            **self.prologue(self.uid("locationid", inc.id), inc.created),
            "locationTypeDescriptionRegistryText": "Incident",
            "locationByValue": _pidf_lo(
                self.uid("incidentid", inc.id),
                lat,
                lon,
                self.o.radius_km * 1000.0,
                self.time(inc.created),
            ),
        }
        if place:
            out["locationDescriptionText"] = clean(place)
        if inc.pole:
            out["localIdentifier"] = [clean(inc.pole)]
        return out

    def alarms(self) -> list[JSONObject]:
        inc = self.record.incident
        bodies = {a.id: a for a in self.record.alarms}
        out = []
        for n, alarm_id in enumerate(self.record.alarm_ids):
            alarm = bodies.get(alarm_id)
            ts = alarm.ts if alarm else inc.created
            if alarm is None:
                text = f"Alarm {alarm_id} (details expired)"
            else:
                extra = f": {alarm.text}" if alarm.text else ""
                text = f"Alarm {alarm.id} ({alarm.type}) from {alarm.source}{extra}"
            out.append(
                {
                    **self.prologue(self.uid("alarmid", f"{inc.id}.{n}"), ts),
                    "notesReference": [self.note(f"alarm.{n}", ts, text)],
                }
            )
        return out

    def units(self) -> tuple[list[JSONObject], list[JSONObject]]:
        """Emergency resources (a unit's last status) and dispatch components, in order."""
        inc = self.record.incident
        last: dict[str, tuple[str, float]] = {}
        dispatches = []
        for n, e in enumerate(self.record.timeline):
            note = self.note(f"event.{n}", e.ts, _event_text(e, self.o.utc_offset_min))
            if e.unit is None:
                continue
            if e.event in vocab.UNIT_EVENTS:
                last[e.unit] = (e.event, e.ts)
            if e.event == "dispatched":
                dispatches.append(
                    {
                        **self.prologue(self.uid("dispatchid", f"{inc.id}.{n}"), e.ts),
                        "agencyReference": {"$ref": self.agency_id},
                        "emergencyResourceReference": [{"$ref": self.uid("unitid", e.unit)}],
                        "notesReference": [note],
                    }
                )
        for unit in inc.units:
            last.setdefault(unit, ("dispatched", self.last_ts))
        resources = []
        for unit, (event, ts) in last.items():
            primary, secondary = vocab.UNIT_STATUS[event]
            resource: JSONObject = {
                **self.prologue(self.uid("unitid", unit), ts),
                "emergencyResourceTypeCommonRegistryText": "Other",
                "emergencyResourceTypeInternalText": "patrol",
                "emergencyResourceName": clean(unit),
                "resourceAttributeRegistryText": [],
                "primaryUnitStatusRegistryText": primary,
                "secondaryUnitStatusRegistryText": [secondary],
                "unitStatusInternal": [event],
                "agentReference": [],
            }
            if primary == "NotAvailable":
                resource["activeOnIncidentId"] = self.uid("incidentid", inc.id)
            resources.append(resource)
        return resources, dispatches


def _event_text(e: Any, utc_offset_min: int) -> str:
    who = f" unit {e.unit}" if e.unit else ""
    by = f" by {e.actor}" if e.actor else ""
    detail = f": {e.detail}" if e.detail else ""
    return f"{iso(e.ts, utc_offset_min)} {e.event}{who}{by}{detail}"


def _pidf_lo(entity: str, lat: float, lon: float, radius_m: float, when: str) -> str:
    """A PIDF-LO (RFC 4119 / RFC 5491) presence document with a GML circle."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" '
        'xmlns:gs="http://www.opengis.net/pidflo/1.0" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        f"entity={quoteattr(entity)}>"
        '<dm:device id="pole"><gp:geopriv><gp:location-info>'
        '<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">'
        f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos>"
        f'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius_m:g}</gs:radius>'
        "</gs:Circle></gp:location-info>"
        "<gp:usage-rules/><gp:method>Manual</gp:method></gp:geopriv>"
        f"<dm:timestamp>{xml_escape(when)}</dm:timestamp></dm:device></presence>"
    )
