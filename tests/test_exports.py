"""Exports for other agencies: any incident as OASIS CAP 1.2 XML and NENA EIDO JSON, checked
with real validators against the official schemas in ../shared/data/standards."""

from __future__ import annotations

import copy
import json
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.exports import ExportOptions, cap_xml, eido_json, eido_object
from analytics.exports import vocabulary as vocab
from analytics.exports.validation import ExportInvalid, validate_cap, validate_eido
from analytics.incidents import IncidentRecord, load_incident
from analytics.simulation import SimulatedIncident, Step, write_incidents, write_incidents_to
from polewatch import records, wire
from polewatch.cli import main

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
HOSTILE = "<script>alert(\"x\")</script> & 'quotes' ]]> \x00\x01\x1b\ufffe 終"
T0 = 1_764_000_000.0


@pytest.fixture(scope="module")
def standards(data_dir: Path) -> Path:
    return data_dir / "standards"


@pytest.fixture(scope="module")
def registries(standards: Path) -> dict[str, set[str]]:
    raw = json.loads((standards / "nena-eido-json" / "registries_extracted.json").read_text())
    return {name: {e["value"] for e in entries} for name, entries in raw["registries"].items()}


def sos(**changes: Any) -> SimulatedIncident:
    fields: dict[str, Any] = dict(
        id="7", type="citizen_sos", priority=1, created=T0, lon=114.0579, lat=22.5431,
        district="Futian", grid="FT-03-07", pole="1023046", text="Man with a knife <b>&</b>",
        alarm_delay=1.5, reports=2,
        steps=[Step("dispatched", 0.8, "u-1"), Step("acknowledged", 9.0, "u-1"),
               Step("en_route", 12.0, "u-1"), Step("on_scene", 240.0, "u-1")],
    )  # fmt: skip
    fields.update(changes)
    return SimulatedIncident(**fields)


async def stored(aredis: aioredis.Redis, incident: SimulatedIncident) -> IncidentRecord:
    await write_incidents(aredis, [incident])
    record = await load_incident(aredis, incident.id)
    assert record is not None
    return record


async def test_cap_export_of_a_stored_incident_is_valid_and_says_what_happened(
    aredis: aioredis.Redis, standards: Path
) -> None:
    record = await stored(aredis, sos())
    options = ExportOptions(sender="110@shenzhen.gov.cn", utc_offset_min=480)
    document = cap_xml(record, options)
    validate_cap(document, standards)

    alert = ET.fromstring(document)
    assert alert.findtext(f"{CAP}msgType") == "Update"  # it has moved on since the alarm
    assert alert.findtext(f"{CAP}sender") == "110@shenzhen.gov.cn"
    assert alert.findtext(f"{CAP}sent") == "2025-11-25T00:04:00+08:00"  # on scene at +240 s
    assert alert.findtext(f"{CAP}references") == (
        "110@shenzhen.gov.cn,110@shenzhen.gov.cn.incident.7.1,2025-11-25T00:00:00+08:00"
    )
    info = alert.find(f"{CAP}info")
    assert info is not None
    assert [c.text for c in info.findall(f"{CAP}category")] == ["Security", "Rescue"]
    assert info.findtext(f"{CAP}urgency") == "Immediate"
    assert info.findtext(f"{CAP}severity") == "Severe"
    assert info.findtext(f"{CAP}certainty") == "Observed"
    assert info.findtext(f"{CAP}onset") == "2025-11-24T23:59:58+08:00"  # the alarm's own time
    assert "Man with a knife <b>&</b>" in (info.findtext(f"{CAP}description") or "")
    codes = {e.findtext(f"{CAP}valueName"): e.findtext(f"{CAP}value")
             for e in info.findall(f"{CAP}eventCode")}  # fmt: skip
    assert codes == {"polewatch:alarm-type": "citizen_sos", "NENA:IncidentType-Common": "ALMH"}
    area = info.find(f"{CAP}area")
    assert area is not None
    assert area.findtext(f"{CAP}circle") == "22.543100,114.057900 0.1"
    assert "pole 1023046" in (area.findtext(f"{CAP}areaDesc") or "")
    assert b"<b>" not in document  # markup in the text arrives as text


async def test_eido_export_of_a_stored_incident_is_valid_and_uses_registry_values(
    aredis: aioredis.Redis, standards: Path, registries: dict[str, set[str]]
) -> None:
    record = await stored(aredis, sos())
    document = json.loads(eido_json(record))
    validate_eido(document, standards)

    incident = document["incidentComponent"]
    assert incident["incidentTypeCommonRegistryText"] == "ALMH"
    assert incident["incidentTypeCommonRegistryText"] in registries["IncidentType-Common"]
    assert incident["incidentStatusCommonRegistryText"] == ["Active", "ResourcesOnscene"]
    assert incident["incidentCommonPriorityNumber"] == 1
    assert incident["beatOrDispatchGroupText"] == "FT-03-07"
    (unit,) = document["emergencyResourceComponent"]
    assert (unit["primaryUnitStatusRegistryText"], unit["secondaryUnitStatusRegistryText"]) == (
        "NotAvailable", ["OnScene"])  # fmt: skip
    (location,) = document["locationComponent"]
    assert "<gml:pos>22.543100 114.057900</gml:pos>" in location["locationByValue"]
    assert location["localIdentifier"] == ["1023046"]
    notes = {n["$id"]: n["notesActionComments"] for n in document["notesComponent"]}
    text_note = notes[incident["notesReference"][0]["$ref"]]
    assert text_note == "Man with a knife &lt;b&gt;&amp;&lt;/b&gt;"  # notes are HTML5
    ids = [c["$id"] for key, value in document.items() if key.endswith("Component")
           for c in (value if isinstance(value, list) else [value])]  # fmt: skip
    assert len(ids) == len(set(ids)), "every data component has its own id"


async def test_finished_incidents_carry_their_disposition(
    aredis: aioredis.Redis, standards: Path, registries: dict[str, set[str]]
) -> None:
    done = sos(id="8", steps=[*sos().steps, Step("resolved", 900.0, "u-1"), Step("closed", 960.0)])
    cancelled = sos(id="9", steps=[Step("dispatched", 1.0, "u-2"), Step("cancelled", 30.0)])
    outcomes = {}
    for incident in (done, cancelled):
        record = await stored(aredis, incident)
        alert = ET.fromstring(cap_xml(record))
        document = eido_object(record)
        validate_cap(cap_xml(record), standards)
        validate_eido(document, standards)
        (disposition,) = document["incidentComponent"]["dispositionComponent"]
        assert disposition["dispositionCommonRegistryCode"] in registries["CommonDispositionCode"]
        outcomes[incident.id] = (
            alert.findtext(f"{CAP}msgType"),
            alert.findtext(f"{CAP}info/{CAP}urgency"),
            document["incidentComponent"]["incidentStatusCommonRegistryText"],
            disposition["dispositionCommonRegistryCode"],
        )
    assert outcomes == {
        "8": ("Update", "Past", ["Closed"], "18"),
        "9": ("Cancel", "Past", ["Cancelled"], "32"),  # cancelled before anyone arrived
    }


def test_every_mapped_value_is_in_the_standards(
    standards: Path, registries: dict[str, set[str]]
) -> None:
    cap_categories = {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                      "Transport", "Infra", "CBRNE", "Other"}  # fmt: skip
    assert cap_categories <= set(
        (standards / "oasis-cap-1.2" / "CAP-v1.2.xsd").read_text().split('"')
    ), "the category list above is the XSD's"
    for name in [*vocab.TYPES, "some_new_type"]:
        mapping = vocab.type_mapping(name)
        assert set(mapping.cap_categories) <= cap_categories, name
        assert mapping.eido_type in registries["IncidentType-Common"], name
    for status in vocab.INCIDENT_STATUS.values():
        assert set(status) <= registries["IncidentStatus-Common"]
    for primary, secondary in vocab.UNIT_STATUS.values():
        assert primary in registries["PrimaryUnitStatus-Common"]
        assert secondary in registries["SecondaryUnitStatus-Common"]
    for code, _ in vocab.DISPOSITION.values():
        assert code in registries["CommonDispositionCode"]
    assert set(vocab.INCIDENT_STATUS) == set(records.INCIDENT_STATES)


async def test_broken_exports_fail_validation(aredis: aioredis.Redis, standards: Path) -> None:
    """The validators really check: each of these damages is caught."""
    record = await stored(aredis, sos())
    good_cap = cap_xml(record)
    for bad in (
        good_cap.replace(b"<urgency>Immediate</urgency>", b"<urgency>Soon</urgency>"),
        good_cap.replace(b"-00:00</sent>", b"Z</sent>"),  # CAP forbids 'Z'
        good_cap.replace(b"<status>Actual</status>", b""),
        good_cap.replace(b"<category>Rescue</category>", b"<category>Police</category>"),
    ):
        assert bad != good_cap
        with pytest.raises(ExportInvalid):
            validate_cap(bad, standards)

    good = eido_object(record)
    damages = [
        lambda d: d.pop("agencyComponent"),
        lambda d: d["agencyComponent"][0].pop("agencyRoleDescriptionRegistryText"),
        lambda d: d.__setitem__("eidoVersion", "2.0"),
        lambda d: d["incidentComponent"].__setitem__("lastUpdateTimeStamp", "yesterday"),
        lambda d: d["incidentComponent"].__setitem__("incidentCommonPriorityNumber", "P1"),
        lambda d: d["emergencyResourceComponent"][0].pop("primaryUnitStatusRegistryText"),
        lambda d: d.__setitem__("agentComponent", [{**d["agencyComponent"][0]}]),
    ]
    for damage in damages:
        bad_doc = copy.deepcopy(good)
        damage(bad_doc)
        with pytest.raises(ExportInvalid):
            validate_eido(bad_doc, standards)
    validate_eido(good, standards)  # and the original still passes


idents = st.text(string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=20)
anything = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=60),  # surrogates, controls too
    st.sampled_from([HOSTILE, "\ud800", "<script>", "&amp;", '"', "'", "]]>", "\x00", "$x$", ","]),
)
maybe = st.one_of(st.none(), anything)
moments = st.floats(min_value=-1e12, max_value=1e13, allow_nan=False)
events = st.builds(
    wire.IncidentEvent,
    incident=idents,
    event=st.sampled_from(list(wire.IncidentState.__args__)),  # type: ignore[attr-defined]
    ts=st.floats(min_value=0, max_value=4e9),
    unit=st.one_of(st.none(), idents),
    actor=st.one_of(st.none(), idents),
    detail=st.one_of(st.none(), st.text(max_size=80)),
)
incidents = st.builds(
    records.Incident,
    id=anything,
    state=st.one_of(st.sampled_from(records.INCIDENT_STATES), anything),
    priority=st.integers(min_value=-5, max_value=2**40),
    type=anything,
    group=anything,
    lon=st.floats(allow_nan=True, allow_infinity=True),
    lat=st.floats(allow_nan=True, allow_infinity=True),
    created=moments,
    reports=st.integers(min_value=0, max_value=10**6),
    pole=maybe,
    district=maybe,
    grid=maybe,
    text=maybe,
    units=st.lists(anything, max_size=3),
    alarm_ts=st.one_of(st.none(), moments),
    merged_into=maybe,
    evaluation=st.one_of(st.none(), st.integers(1, 5)),
    times=st.dictionaries(st.sampled_from(records.INCIDENT_STATES), moments, max_size=4),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    incident=incidents,
    timeline=st.lists(events, max_size=6),
    alarm_ids=st.lists(anything, max_size=3),
    sender=anything,
    offset=st.integers(min_value=-720, max_value=840),
)
def test_any_incident_exports_to_schema_valid_documents(
    standards: Path,
    incident: records.Incident,
    timeline: list[wire.IncidentEvent],
    alarm_ids: list[str],
    sender: str,
    offset: int,
) -> None:
    record = IncidentRecord(incident=incident, timeline=timeline, alarm_ids=alarm_ids)
    options = ExportOptions(sender=sender or "x", agency=sender, utc_offset_min=offset)
    validate_cap(cap_xml(record, options), standards)
    document = eido_json(record, options)
    validate_eido(json.loads(document.decode("utf-8")), standards)


def test_export_command_prints_cap_and_eido(
    redis_url: str, standards: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    write_incidents_to(redis_url, [sos(text=HOSTILE)])
    assert main(["export", "cap", "7", "--redis-url", redis_url, "--utc-offset", "480"]) == 0
    cap = capsysbinary.readouterr().out
    validate_cap(cap, standards)
    assert b"+08:00</sent>" in cap
    assert main(["export", "eido", "7", "--redis-url", redis_url]) == 0
    validate_eido(json.loads(capsysbinary.readouterr().out), standards)
    assert main(["export", "eido", "404", "--redis-url", redis_url]) == 1
    assert b"no incident '404'" in capsysbinary.readouterr().err
