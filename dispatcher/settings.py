"""Settings of a dispatcher replica (the ``[dispatcher]`` section of the settings file)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from dispatcher.priorities import AlarmTypePatch
from polewatch.settings import Settings

Positive = Annotated[float, Meta(gt=0)]
Count = Annotated[int, Meta(ge=1)]


class DispatcherSettings(Settings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a dispatcher replica is told at start."""

    serve_zones: tuple[str, ...] = ()
    """The zones this replica consumes (empty: all of them)."""
    consumer: str = ""
    """Consumer name in the group; empty: ``<hostname>-<pid>``. Must be unique per replica."""
    batch_size: Annotated[int, Meta(ge=1, le=2_000)] = 500
    """Entries read per stream and call (bounded: the functions unpack id lists)."""
    block_ms: Annotated[int, Meta(ge=1, le=60_000)] = 1000
    claim_idle_ms: Annotated[int, Meta(ge=1)] = 10_000
    """Entries pending this long in another consumer (a dead replica) are claimed."""
    claim_every_s: Positive = 2.0
    forget_idle_ms: Annotated[int, Meta(ge=1)] = 3_600_000
    """A consumer of the group that holds no pending entries and was idle this long (a replica
    stopped, or restarted under a new name) is deleted from the group (looked for with the
    claims, every ``forget_every_s``); a replica alive comes back with its next read."""
    forget_every_s: Positive = 60.0
    ack_timeout_s: Positive = 30.0
    stale_after_s: Positive = 120.0
    """A unit whose last position is older than this is not sent anywhere."""
    search_radii_m: tuple[Positive, ...] = (300.0, 1000.0, 3000.0, 10_000.0)
    """The expanding search; ``max_radius_m`` is always the last step."""
    max_radius_m: Positive = 30_000.0
    grid_preference_m: Annotated[float, Meta(ge=0)] = 300.0
    """A unit of the incident's own grid wins if at most this much farther; 0 disables (for
    a choice by straight line)."""
    drive_time: bool = True
    """Choose units by drive time over the road graph (:mod:`polewatch.roads`) when one is
    stored; off (or without a graph) by straight line, audited as such."""
    grid_preference_s: Annotated[float, Meta(ge=0)] = 60.0
    """By drive time: a unit of the incident's own grid wins if at most this much slower."""
    shortlist: Annotated[int, Meta(ge=1, le=1_000)] = 12
    """Free units taken nearest by air first, then ranked by drive time (the search widens to
    every unit that could still be faster, up to ``shortlist_max``)."""
    shortlist_max: Annotated[int, Meta(ge=1, le=10_000)] = 64
    """At most this many units are ranked for one place (each costs the router a snap)."""
    free_units_refresh_ms: Annotated[float, Meta(ge=0)] = 50.0
    """By drive time, the shortlists search a copy of the zone's free units in the replica
    (:mod:`dispatcher.freeunits`), read again in the background when it is this old: a unit
    freed (or come on duty) since the read is missed until then. The units the Function takes
    are masked in it as its replies name them. 0: a read after every ranking."""
    tick_s: Positive = 0.5
    """How often ack deadlines are checked and escalated incidents retried."""
    unresponsive_after: Annotated[int, Meta(ge=0)] = 2
    """A unit that lets this many dispatches in a row time out is taken out of the rotation
    (``unresponsive``) until it goes off and on duty again or an operator restores it; 0:
    never."""
    expire_batch: Count = 500
    escalated_batch: Count = 50
    alarm_ttl_s: Count = 7 * 86_400
    """How long the idempotency record (and body) of an alarm is kept."""
    audit_maxlen: Count = 5_000_000
    inbox_maxlen: Count = 1000
    heartbeat_s: Positive = 5.0
    metrics_addr: str = "127.0.0.1"
    """Address the ``/metrics`` endpoint listens on (with ``metrics_port``): loopback unless
    a scraper elsewhere must reach it (``0.0.0.0`` in docker-compose's network)."""
    metrics_every_s: Positive = 15.0
    """How often the operational state (incidents, units, streams, agents) is read for it."""
    shutdown_grace_s: Positive = 10.0
    """After SIGTERM, how long the batch in flight may take (e.g. while Redis is down) before
    the replica stops anyway; what it had not acknowledged stays pending for another replica."""
    types: dict[str, dict[str, Any]] = {}
    """Per alarm type overrides of :data:`dispatcher.priorities.DEFAULTS` (see
    :class:`~dispatcher.priorities.AlarmTypePatch`); checked at start, errors name the type."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.alarm_types()  # fail at start, naming the bad entry
        self.served_zones()

    def served_zones(self) -> tuple[str, ...]:
        """The zones to consume; unknown names fail at start, naming the key."""
        names = self.zone_map().names
        unknown = [z for z in self.serve_zones if z not in names]
        if unknown:
            raise ValueError(f"serve_zones: unknown zone(s) {unknown}; the zones are {list(names)}")
        return self.serve_zones or names

    def alarm_types(self) -> dict[str, AlarmTypePatch]:
        """The ``types`` table, validated."""
        out = {}
        for name, patch in self.types.items():
            try:
                out[name] = msgspec.convert(patch, AlarmTypePatch, strict=False)
            except msgspec.ValidationError as exc:
                raise ValueError(f"types.{name}: {exc}") from None
        return out

    def radii(self) -> list[float]:
        """The search radii, ascending, ending with the maximum radius."""
        return sorted({r for r in self.search_radii_m if r < self.max_radius_m}) + [
            self.max_radius_m
        ]
