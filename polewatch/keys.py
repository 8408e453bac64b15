"""Every Redis key, stream, group and channel name polewatch uses, built in this one module.

Nothing else in the code base writes a key string. Names share the ``pw:`` prefix so a
polewatch deployment can share a Redis with other software and ``redis-cli --scan --pattern
'pw:*'`` shows all of it.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "pw"

# --- streams (the bus) -------------------------------------------------------------------
ALARMS: Final = f"{PREFIX}:alarms"
"""Edge agents and the gateway append :class:`~polewatch.wire.Alarm`; dispatchers consume."""
PATROL_EVENTS: Final = f"{PREFIX}:patrol-events"
"""Positions, duty changes and answers of units (gateway -> dispatcher)."""
COMMANDS: Final = f"{PREFIX}:commands"
"""Command-centre overrides (gateway -> dispatcher)."""
HEARTBEATS: Final = f"{PREFIX}:heartbeats"
"""Health of agents and services."""
AUDIT: Final = f"{PREFIX}:audit"
"""Append-only :class:`~polewatch.wire.IncidentEvent` history, read by the command centre and
analytics."""
DEADLETTER: Final = f"{PREFIX}:deadletter"
"""Entries no consumer could use, with the reason (see :mod:`polewatch.deadletter`)."""

DISPATCH_GROUP: Final = "dispatchers"
"""Consumer group of the dispatcher replicas on the alarm, patrol-event and command streams."""


def unit_inbox(unit: str) -> str:
    """The unit's own stream of :class:`~polewatch.wire.Dispatch` / ``DispatchCancel``."""
    return f"{PREFIX}:unit:{unit}:inbox"


# --- dispatch state ----------------------------------------------------------------------
def unit(unit_id: str) -> str:
    """Hash of one unit: duty, status, grid, capabilities, position time, current incident."""
    return f"{PREFIX}:unit:{unit_id}"


UNITS: Final = f"{PREFIX}:units"
"""Set of every unit id ever seen."""
UNITS_GEO: Final = f"{PREFIX}:units:geo"
"""GEO set of on-duty units' last positions."""
UNITS_FREE_GEO: Final = f"{PREFIX}:units:free"
"""GEO set of on-duty units that are free to take an incident (the dispatch search space)."""


def incident(incident_id: str) -> str:
    """Hash of one incident: state, priority, place, units, a timestamp per transition."""
    return f"{PREFIX}:incident:{incident_id}"


def incident_alarms(incident_id: str) -> str:
    """List of the alarm ids merged into an incident, in arrival order."""
    return f"{PREFIX}:incident:{incident_id}:alarms"


def incident_timeline(incident_id: str) -> str:
    """List of the incident's :class:`~polewatch.wire.IncidentEvent` (MessagePack), oldest
    first: the per-incident view of the audit stream, for the incident detail page."""
    return f"{PREFIX}:incident:{incident_id}:timeline"


def incident_tried(incident_id: str) -> str:
    """Set of units that declined or timed out on an incident (never asked again)."""
    return f"{PREFIX}:incident:{incident_id}:tried"


INCIDENT_SEQ: Final = f"{PREFIX}:seq:incident"
INCIDENTS_OPEN: Final = f"{PREFIX}:incidents:open"
"""Sorted set of open incidents, scored by creation time."""
ESCALATED: Final = f"{PREFIX}:incidents:escalated"
"""Sorted set of incidents waiting for a free unit, scored by escalation time."""
ACK_DEADLINES: Final = f"{PREFIX}:ack-deadlines"
"""Sorted set of ``incident|unit`` dispatches awaiting acknowledgement, scored by deadline."""
DISPATCH_TYPES: Final = f"{PREFIX}:dispatch:types"
"""Hash ``alarm type -> MessagePack parameters`` (priority, merge group, radius, window, units,
capability; ``*`` is the default), written by the dispatcher at start, read by its functions."""


def merge_area(group: str) -> str:
    """GEO set of recent incidents of one merge group, searched to merge new reports."""
    return f"{PREFIX}:merge:{group}"


def alarm(alarm_id: str) -> str:
    """The incident an alarm went to (the idempotency record), with a TTL."""
    return f"{PREFIX}:alarm:{alarm_id}"


def alarm_body(alarm_id: str) -> str:
    """The alarm itself (MessagePack), kept with a TTL for incident detail and exports."""
    return f"{PREFIX}:alarm:{alarm_id}:body"


def snapshot(snapshot_id: str) -> str:
    """A JPEG snapshot attached to an alarm, with a TTL."""
    return f"{PREFIX}:snapshot:{snapshot_id}"


# --- pole registry -----------------------------------------------------------------------
CITIES: Final = f"{PREFIX}:cities"


def poles(city: str) -> str:
    """Hash ``code -> MessagePack pole record`` of one city's registry."""
    return f"{PREFIX}:poles:{city}"


def poles_geo(city: str) -> str:
    """GEO set of one city's poles by code."""
    return f"{PREFIX}:poles:{city}:geo"


def poles_version(city: str) -> str:
    """Counter bumped on every change to a city's registry; in-process indexes compare it."""
    return f"{PREFIX}:poles:{city}:version"


def poles_staging(city: str) -> str:
    """Where a full replacement of a city's registry is written before it is renamed live."""
    return f"{PREFIX}:poles:{city}:staging"


def poles_geo_staging(city: str) -> str:
    """The GEO twin of :func:`poles_staging`."""
    return f"{PREFIX}:poles:{city}:geo:staging"


# --- edge --------------------------------------------------------------------------------
def camera(camera_id: str) -> str:
    """Hash with a camera's last health report and latest snapshot id."""
    return f"{PREFIX}:camera:{camera_id}"


def camera_frame(camera_id: str) -> str:
    """The latest JPEG frame of a camera (short TTL), for the camera wall."""
    return f"{PREFIX}:camera:{camera_id}:frame"


# --- abuse control -----------------------------------------------------------------------
def ratelimit(scope: str, subject: str) -> str:
    """Token bucket (hash ``tokens``, ``ts``) of one rate-limited ``subject`` (a client address,
    a pole code) in ``scope`` (e.g. ``client``, ``pole``); expires once full again."""
    return f"{PREFIX}:ratelimit:{scope}:{subject}"


# --- pub/sub -----------------------------------------------------------------------------
UNIT_NOTIFY: Final = f"{PREFIX}:notify:unit"
"""Channel: a unit id, published when something lands in that unit's inbox."""
INCIDENT_NOTIFY: Final = f"{PREFIX}:notify:incident"
"""Channel: an incident id, published on every transition."""
POLES_NOTIFY: Final = f"{PREFIX}:notify:poles"
"""Channel: a city name, published when its registry changes."""
