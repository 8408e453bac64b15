"""Every Redis key, stream, group and channel name polewatch uses, built in this one module.

Nothing else in the code base writes a key string. Names share the ``pw:`` prefix so a
polewatch deployment can share a Redis with other software and ``redis-cli --scan --pattern
'pw:*'`` shows all of it.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "pw"

HEARTBEATS: Final = f"{PREFIX}:heartbeats"
"""Health of agents and services (one stream for the whole deployment)."""
DISPATCH_GROUP: Final = "dispatchers"
"""Consumer group of the dispatcher replicas on each zone's alarm, patrol-event and command
streams."""
ARCHIVE_GROUP: Final = "archivers"
"""Consumer group of the archiver replicas on each zone's audit stream."""
UNIT_ZONES: Final = f"{PREFIX}:unit-zones"
"""Hash ``unit id -> zone``: where each unit's record and inbox live (zoned deployments)."""


class Zone:
    """The keys of one dispatch zone (see :mod:`polewatch.zones`).

    Everything one dispatch decision touches (the input streams, incidents, the zone's units
    and their inboxes, the search sets) lives in one zone, so every atomic step of the
    dispatcher stays on one Redis Cluster shard: a named zone's keys share the hash tag
    ``{zone}``. The default zone (``""``, a deployment without zones) has the plain names.
    """

    __slots__ = ("name", "prefix", "alarms", "patrol_events", "commands", "audit", "deadletter",
                 "units", "units_geo", "units_free_geo", "incident_seq", "incidents_open",
                 "resolved", "escalated", "ack_deadlines", "dispatch_types",
                 "unit_changes")  # fmt: skip

    def __init__(self, name: str = "", *, prefix: str | None = None) -> None:
        self.name = name
        p = prefix if prefix is not None else (f"{PREFIX}:{{{name}}}" if name else PREFIX)
        self.prefix = p
        # --- streams (the bus)
        self.alarms = f"{p}:alarms"
        """Edge agents and the gateway append :class:`~polewatch.wire.Alarm`; dispatchers
        consume."""
        self.patrol_events = f"{p}:patrol-events"
        """Positions, duty changes and answers of the zone's units (gateway -> dispatcher)."""
        self.commands = f"{p}:commands"
        """Command-centre overrides of the zone's incidents (gateway -> dispatcher)."""
        self.audit = f"{p}:audit"
        """Append-only :class:`~polewatch.wire.IncidentEvent` history, read by the command
        centre and analytics."""
        self.deadletter = f"{p}:deadletter"
        """Entries no consumer could use, with the reason (see :mod:`polewatch.deadletter`)."""
        # --- dispatch state
        self.units = f"{p}:units"
        """Set of every unit id ever seen in the zone."""
        self.units_geo = f"{p}:units:geo"
        """GEO set of on-duty units' last positions."""
        self.units_free_geo = f"{p}:units:free"
        """GEO set of on-duty units free to take an incident (the dispatch search space)."""
        self.incident_seq = f"{p}:seq:incident"
        self.incidents_open = f"{p}:incidents:open"
        """Sorted set of open incidents, scored by creation time."""
        self.resolved = f"{p}:incidents:resolved"
        """Sorted set of incidents a unit resolved and no operator has closed yet (with an
        evaluation), scored by the time they were resolved: the console's "to close" list."""
        self.escalated = f"{p}:incidents:escalated"
        """Sorted set of incidents waiting for a free unit, scored by escalation time."""
        self.ack_deadlines = f"{p}:ack-deadlines"
        """Sorted set of ``incident|unit`` dispatches awaiting acknowledgement, by deadline."""
        self.dispatch_types = f"{p}:dispatch:types"
        """Hash ``alarm type -> MessagePack parameters`` (priority, merge group, radius,
        window, units, capability; ``*`` is the default), written by the dispatcher at start,
        read by its functions."""
        # --- pub/sub (PUBLISH reaches every node's subscribers on a cluster)
        self.unit_changes = f"{p}:notify:unit-changes"
        """Channel: ids of the zone's units whose record (duty, status) a dispatcher call
        changed, space-separated, one PUBLISH per call at most; sent when the call's writes
        are done, so a reader that hears it reads the new record (the console's live feed)."""

    def __repr__(self) -> str:
        return f"Zone({self.name!r})"

    @property
    def streams(self) -> tuple[str, str, str]:
        """The three streams the zone's dispatchers consume."""
        return (self.alarms, self.patrol_events, self.commands)

    def unit_inbox(self, unit: str) -> str:
        """The unit's own stream of :class:`~polewatch.wire.Dispatch` / ``DispatchCancel``."""
        return f"{self.prefix}:unit:{unit}:inbox"

    def unit(self, unit_id: str) -> str:
        """Hash of one unit: duty, status, grid, capabilities, position time, incident."""
        return f"{self.prefix}:unit:{unit_id}"

    def incident(self, incident_id: str) -> str:
        """Hash of one incident: state, priority, place, units, a timestamp per transition."""
        return f"{self.prefix}:incident:{incident_id}"

    def incident_alarms(self, incident_id: str) -> str:
        """List of the alarm ids merged into an incident, in arrival order."""
        return f"{self.prefix}:incident:{incident_id}:alarms"

    def incident_timeline(self, incident_id: str) -> str:
        """List of the incident's :class:`~polewatch.wire.IncidentEvent` (MessagePack), oldest
        first: the per-incident view of the audit stream, for the incident detail page."""
        return f"{self.prefix}:incident:{incident_id}:timeline"

    def incident_tried(self, incident_id: str) -> str:
        """Set of units that declined or timed out on an incident (never asked again)."""
        return f"{self.prefix}:incident:{incident_id}:tried"

    def merge_area(self, group: str) -> str:
        """GEO set of recent incidents of one merge group, searched to merge new reports."""
        return f"{self.prefix}:merge:{group}"

    def merge_refs(self, group: str) -> str:
        """GEO set of open incidents of *other* zones (ids) placed in this zone: border alarms
        this zone routed away, so that later reports there merge into them."""
        return f"{self.prefix}:merge-refs:{group}"

    def alarm(self, alarm_id: str) -> str:
        """The incident an alarm went to (the idempotency record), with a TTL."""
        return f"{self.prefix}:alarm:{alarm_id}"

    def alarm_body(self, alarm_id: str) -> str:
        """The alarm itself (MessagePack), kept with a TTL for incident detail and exports."""
        return f"{self.prefix}:alarm:{alarm_id}:body"

    def alarm_route(self, alarm_id: str) -> str:
        """The zone a border alarm read from this zone's stream was sent to (so a replay after
        a crash sends it to the same zone), with a TTL."""
        return f"{self.prefix}:alarm:{alarm_id}:route"


DEFAULT: Final = Zone()
"""The only zone of a deployment without zones; the module-level names below are its keys."""

ALARMS: Final = DEFAULT.alarms
PATROL_EVENTS: Final = DEFAULT.patrol_events
COMMANDS: Final = DEFAULT.commands
AUDIT: Final = DEFAULT.audit
DEADLETTER: Final = DEFAULT.deadletter
UNITS: Final = DEFAULT.units
UNITS_GEO: Final = DEFAULT.units_geo
UNITS_FREE_GEO: Final = DEFAULT.units_free_geo
INCIDENT_SEQ: Final = DEFAULT.incident_seq
INCIDENTS_OPEN: Final = DEFAULT.incidents_open
RESOLVED: Final = DEFAULT.resolved
ESCALATED: Final = DEFAULT.escalated
ACK_DEADLINES: Final = DEFAULT.ack_deadlines
DISPATCH_TYPES: Final = DEFAULT.dispatch_types
unit_inbox = DEFAULT.unit_inbox
unit = DEFAULT.unit
incident = DEFAULT.incident
incident_alarms = DEFAULT.incident_alarms
incident_timeline = DEFAULT.incident_timeline
incident_tried = DEFAULT.incident_tried
merge_area = DEFAULT.merge_area
alarm = DEFAULT.alarm
alarm_body = DEFAULT.alarm_body


def zone(name: str) -> Zone:
    """The keys of zone ``name`` (``""``: the default zone)."""
    return _ZONES.get(name) or _ZONES.setdefault(name, Zone(name))


_ZONES: dict[str, Zone] = {"": DEFAULT}


def zone_of_incident(incident_id: str) -> Zone:
    """The zone an incident lives in: ids of a named zone are ``<zone>-<n>``."""
    name, sep, _ = incident_id.rpartition("-")
    return zone(name) if sep else DEFAULT


def snapshot(snapshot_id: str) -> str:
    """A JPEG snapshot attached to an alarm, with a TTL."""
    return f"{PREFIX}:snapshot:{snapshot_id}"


# --- pole registry -----------------------------------------------------------------------
CITIES: Final = f"{PREFIX}:cities"


def poles(city: str) -> str:
    """Hash ``code -> MessagePack pole record`` of one city's registry."""
    return f"{PREFIX}:poles:{{{city}}}"


def poles_geo(city: str) -> str:
    """GEO set of one city's poles by code."""
    return f"{PREFIX}:poles:{{{city}}}:geo"


def poles_version(city: str) -> str:
    """Counter bumped on every change to a city's registry; in-process indexes compare it."""
    return f"{PREFIX}:poles:{{{city}}}:version"


def poles_staging(city: str) -> str:
    """Where a full replacement of a city's registry is written before it is renamed live."""
    return f"{PREFIX}:poles:{{{city}}}:staging"


def poles_geo_staging(city: str) -> str:
    """The GEO twin of :func:`poles_staging`."""
    return f"{PREFIX}:poles:{{{city}}}:geo:staging"


# --- road network (polewatch.roads) --------------------------------------------------------
def roads_graph(city: str) -> str:
    """One city's routable road graph: a MessagePack blob (``RoadNetwork.to_bytes``)."""
    return f"{PREFIX}:roads:{{{city}}}:graph"


def roads_features(city: str) -> str:
    """One city's roads as a GeoJSON FeatureCollection (UTF-8 JSON), for the street map."""
    return f"{PREFIX}:roads:{{{city}}}:features"


def roads_version(city: str) -> str:
    """Counter bumped when a city's road graph is replaced; loaded networks compare it."""
    return f"{PREFIX}:roads:{{{city}}}:version"


def roads_staging(key: str) -> str:
    """Where a replacement of :func:`roads_graph` / :func:`roads_features` is written before
    it is renamed live (same hash tag)."""
    return f"{key}:staging"


ROADS_NOTIFY: Final = f"{PREFIX}:notify:roads"
"""Channel: a city name, published when its road graph changes."""


# --- edge --------------------------------------------------------------------------------
def camera(camera_id: str) -> str:
    """Hash with a camera's last health report and latest snapshot id."""
    return f"{PREFIX}:camera:{camera_id}"


def camera_frame(camera_id: str) -> str:
    """The latest JPEG frame of a camera (short TTL), for the camera wall."""
    return f"{PREFIX}:camera:{camera_id}:frame"


def camera_config(camera_id: str) -> str:
    """Hash of a camera's configuration as the video agent should run it: ``version`` (an
    integer that only grows), ``toml`` (the camera's TOML file), ``by``, ``ts``, and ``size``
    (``WxH`` of the source frames, written by the agent)."""
    return f"{PREFIX}:camera:{camera_id}:config"


CAMERA_AUDIT: Final = f"{PREFIX}:audit:cameras"
"""Stream: every camera configuration saved through the API (who, when, version)."""


def clip(clip_id: str) -> str:
    """An event clip (H.264 MP4) of a video alarm, with a TTL (see ``Alarm.clip``)."""
    return f"{PREFIX}:clip:{clip_id}"


def camera_clips(camera_id: str) -> str:
    """Sorted set of a camera's stored clips, ``clip_id:bytes`` scored by time, for its size
    budget."""
    return f"{PREFIX}:camera:{camera_id}:clips"


# --- abuse control -----------------------------------------------------------------------
def ratelimit(scope: str, subject: str) -> str:
    """Token bucket (hash ``tokens``, ``ts``) of one rate-limited ``subject`` (a client address,
    a pole code) in ``scope`` (e.g. ``client``, ``pole``); expires once full again."""
    return f"{PREFIX}:ratelimit:{scope}:{subject}"


def login_attempts(scope: str, subject: str) -> str:
    """Console login attempts of one ``subject`` in ``scope`` (``account``: a login,
    ``address``: a client address): hash ``fails`` and ``until`` (lock end, ms of Redis'
    clock); expires with the lockout window (see :mod:`gateway.console.lockout`)."""
    return f"{PREFIX}:login:{scope}:{subject}"


LOGIN_AUDIT: Final = f"{PREFIX}:audit:login"
"""Stream of console login attempts (``ts``, ``login``, ``address``, ``outcome``: ok, wrong,
locked), capped."""


# --- pub/sub -----------------------------------------------------------------------------
UNIT_NOTIFY: Final = f"{PREFIX}:notify:unit"
"""Channel: a unit id, published when something lands in that unit's inbox."""
INCIDENT_NOTIFY: Final = f"{PREFIX}:notify:incident"
"""Channel: an incident id, published on every transition."""
POLES_NOTIFY: Final = f"{PREFIX}:notify:poles"
"""Channel: a city name, published when its registry changes."""
