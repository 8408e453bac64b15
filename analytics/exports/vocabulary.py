"""How polewatch's words map onto CAP 1.2 and NENA EIDO registry values.

Every EIDO value here is taken from the standard's registries (``registries_extracted.json``
of NENA-STA-021; a test checks each one is listed there). Alarm types the table does not know
fall back to :data:`FALLBACK`.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec


class TypeMapping(msgspec.Struct, frozen=True):
    """One alarm type in the vocabularies of other agencies."""

    cap_categories: tuple[str, ...]
    """CAP 1.2 ``info/category`` values (the XSD's enumeration)."""
    event: str
    """CAP ``info/event``: the human name of the kind of event."""
    eido_type: str
    """EIDO ``incidentTypeCommonRegistryText`` (NENA IncidentType-Common registry)."""


TYPES: Final[dict[str, TypeMapping]] = {
    # A pole alarm button is a panic button: someone asks the police for help.
    "citizen_sos": TypeMapping(("Security", "Rescue"), "Citizen emergency alarm", "ALMH"),
    "call": TypeMapping(("Security",), "Citizen call to the police", "TROUBLE"),
    "intrusion": TypeMapping(("Security",), "Intrusion into a protected zone", "TRESPASS"),
    "tripwire": TypeMapping(("Security",), "Tripwire crossed", "TRESPASS"),
    "loitering": TypeMapping(("Security",), "Loitering", "PERSUSP"),
    "crowd": TypeMapping(("Security", "Safety"), "Crowd gathering", "CRWD"),
    "tamper": TypeMapping(("Security", "Infra"), "Camera tampered with", "VANDAL"),
    "camera_offline": TypeMapping(("Infra",), "Camera offline", "PUBWKS"),
    "door_forced": TypeMapping(("Security",), "Door forced open", "ALRBS"),
    "door_tamper": TypeMapping(("Security", "Infra"), "Door reader tampered with", "VANDAL"),
    "door_held": TypeMapping(("Security",), "Door held open", "OPEN"),
    "invalid_card_burst": TypeMapping(("Security",), "Repeated invalid card", "SUSP"),
    "tailgating": TypeMapping(("Security",), "Tailgating through a door", "TRESPASS"),
    "anti_passback": TypeMapping(("Security",), "Anti-passback violation", "SUSP"),
    "controller_offline": TypeMapping(("Infra",), "Door controller offline", "PUBWKS"),
}

FALLBACK: Final = TypeMapping(("Security",), "Alarm", "ALRU")
DEVICE_TYPES: Final = frozenset({"camera_offline", "controller_offline"})
"""Types about the system's own devices rather than about people (disposition differs)."""


def type_mapping(alarm_type: str) -> TypeMapping:
    """The mapping of an alarm type; unknown types get a readable event name and ``ALRU``."""
    found = TYPES.get(alarm_type)
    if found is not None:
        return found
    words = re.sub(r"[^0-9A-Za-z]+", " ", alarm_type).strip()
    event = f"Alarm: {words}" if words else FALLBACK.event
    return msgspec.structs.replace(FALLBACK, event=event)


# --- priority -> CAP urgency / severity --------------------------------------------------
URGENCY: Final = {1: "Immediate", 2: "Immediate", 3: "Expected", 4: "Future"}
SEVERITY: Final = {1: "Severe", 2: "Moderate", 3: "Minor", 4: "Minor"}
FINISHED: Final = frozenset({"resolved", "closed", "cancelled", "merged"})
"""States after which nothing more is expected of responders: CAP urgency ``Past``."""


def urgency(priority: int, state: str) -> str:
    return "Past" if state in FINISHED else URGENCY.get(priority, "Unknown")


def severity(priority: int) -> str:
    return SEVERITY.get(priority, "Unknown")


def certainty(reached_scene: bool, reports: int) -> str:
    """Seen by a unit on scene: ``Observed``; several independent reports: ``Likely``."""
    if reached_scene:
        return "Observed"
    return "Likely" if reports >= 2 else "Possible"


# --- incident state -> EIDO IncidentStatus-Common ---------------------------------------
INCIDENT_STATUS: Final[dict[str, tuple[str, ...]]] = {
    "new": ("Active",),
    "escalated": ("Active",),
    "dispatched": ("Active", "ResourcesAssigned"),
    "acknowledged": ("Active", "ResourcesAssigned"),
    "en_route": ("Active", "ResourcesEnroute"),
    "on_scene": ("Active", "ResourcesOnscene"),
    "resolved": ("Active", "ResourcesOnscene"),
    "closed": ("Closed",),
    "cancelled": ("Cancelled",),
    "merged": ("Closed",),
}

# --- a unit's last event on an incident -> EIDO unit statuses ----------------------------
UNIT_STATUS: Final[dict[str, tuple[str, str]]] = {
    # event: (PrimaryUnitStatus-Common, SecondaryUnitStatus-Common)
    "dispatched": ("NotAvailable", "Dispatched"),
    "acknowledged": ("NotAvailable", "AcknowledgedTransmission"),
    "en_route": ("NotAvailable", "EnRoute"),
    "on_scene": ("NotAvailable", "OnScene"),
    "resolved": ("Available", "Cleared"),
    "closed": ("Available", "Cleared"),
    "declined": ("Available", "AssignmentCancelled"),
    "timeout": ("Available", "AssignmentCancelled"),
    "reassigned": ("Available", "AssignmentCancelled"),
    "released": ("Available", "AssignmentCancelled"),
    "cancelled": ("Available", "AssignmentCancelled"),
}
UNIT_EVENTS: Final = frozenset(UNIT_STATUS)

# --- how an incident ended -> EIDO CommonDispositionCode ---------------------------------
DISPOSITION: Final = {
    "completed": ("18", "Assignment Completed/Settled By Contact"),
    "information": ("13", "Information/Administrative"),
    "cancelled": ("10", "Event Cancelled"),
    "cancelled_before_arrival": ("32", "Cancelled (Prior to Arrival at Scene)"),
    "duplicate": ("22", "Cancelled - Duplicate Call"),
}


def disposition(state: str, alarm_type: str, reached_scene: bool) -> tuple[str, str] | None:
    """The disposition code and text of a finished incident; ``None`` while it is open."""
    if state == "merged":
        return DISPOSITION["duplicate"]
    if state == "cancelled":
        return DISPOSITION["cancelled" if reached_scene else "cancelled_before_arrival"]
    if state in ("resolved", "closed"):
        return DISPOSITION["information" if alarm_type in DEVICE_TYPES else "completed"]
    return None
