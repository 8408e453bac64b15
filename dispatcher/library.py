"""The Redis Functions library (``dispatcher/lua/*.lua``): building, loading and calling it.

Redis Functions take one source per library, so the parts in ``dispatcher/lua/`` (one concern
each) are concatenated here in :data:`PARTS` order into the one ``polewatch_dispatch`` library.
The Lua source names keys through a table generated here from :mod:`polewatch.keys`, so key
names are still made in one place. The library is loaded with ``FUNCTION LOAD REPLACE`` by every
replica at start; ``VERSION`` changes whenever the concatenated source does.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import deadletter, keys, wire

LIBRARY: Final = "polewatch_dispatch"
BATCH: Final = "pw_batch"
TICK: Final = "pw_tick"
ROUTE: Final = "pw_route"
NEAREST: Final = "pw_nearest"

PARTS: Final = ("common", "incidents", "units", "alarms", "patrol", "commands", "border", "entry")
"""The library's parts (``dispatcher/lua/<part>.lua``) in load order: each uses only the
locals of the parts before it."""

STATS: Final = (
    "alarms",
    "duplicates",
    "incidents",
    "merged",
    "dispatched",
    "escalated",
    "rejected",
    "skipped",
    "patrol",
    "commands",
    "expired",
)
"""Names of the counters ``pw_batch`` and ``pw_tick`` return, in order."""

ALARM: Final = b"a"
PATROL: Final = b"p"
COMMAND: Final = b"c"
"""The first item of each ``pw_batch`` entry triple says which of the zone's streams it came
from."""
DIGEST: Final = b"f"
"""A triple ``f`` ``''`` <:func:`digest`> right after an alarm's: the alarm as the function
needs it, so it neither decodes the alarm nor formats its numbers (optional)."""


class _Digestible(msgspec.Struct):
    """What a digest holds of an alarm already validated (intake.check): read without the
    wire schema's checks, a third of the cost of decoding it as a ``wire.Alarm``."""

    id: str
    type: str
    lon: float
    lat: float
    ts: float
    pole: str | None = None
    district: str | None = None
    grid: str | None = None
    text: str | None = None
    extra: dict[str, Any] = {}


_DIGESTIBLE: Final = msgspec.msgpack.Decoder(_Digestible)

_ZONED = {
    "ALARMS": "alarms",
    "PATROL_EVENTS": "patrol_events",
    "COMMANDS": "commands",
    "AUDIT": "audit",
    "DEADLETTER": "deadletter",
    "UNITS": "units",
    "UNITS_GEO": "units_geo",
    "UNITS_FREE_GEO": "units_free_geo",
    "INCIDENT_SEQ": "incident_seq",
    "INCIDENTS_OPEN": "incidents_open",
    "RESOLVED": "resolved",
    "ESCALATED": "escalated",
    "ACK_DEADLINES": "ack_deadlines",
    "DISPATCH_TYPES": "dispatch_types",
    "UNIT_CHANGES": "unit_changes",
}
_ZONED_TEMPLATES = (
    "unit",
    "unit_inbox",
    "incident",
    "incident_alarms",
    "incident_timeline",
    "incident_tried",
    "merge_area",
    "merge_refs",
    "alarm",
    "alarm_body",
)
_GLOBAL = ("UNIT_NOTIFY", "INCIDENT_NOTIFY")


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_table(items: list[str]) -> str:
    return "{\n  " + ",\n  ".join(items) + ",\n}"


def _key_tables() -> tuple[str, str]:
    """The Lua tables of zoned key templates (relative to a zone's prefix) and global names."""
    marker = "\1"
    template = keys.Zone(prefix=marker)
    zoned = []
    for lua_name, attr in _ZONED.items():
        zoned.append(f"{lua_name} = {_lua_string(getattr(template, attr).removeprefix(marker))}")
    for name in _ZONED_TEMPLATES:
        head, tail = getattr(template, name)("\0").removeprefix(marker).split("\0")
        zoned.append(f"{name} = {{{_lua_string(head)}, {_lua_string(tail)}}}")
    glob = [f"{name} = {_lua_string(getattr(keys, name))}" for name in _GLOBAL]
    return _lua_table(zoned), _lua_table(glob)


def source() -> str:
    """The library's Lua source, keys filled in and versioned by its own content."""
    folder = resources.files("dispatcher").joinpath("lua")
    text = f"#!lua name={LIBRARY}\n" + "\n".join(
        f"-- ==== {part}.lua ====\n" + folder.joinpath(f"{part}.lua").read_text() for part in PARTS
    )
    zoned, glob = _key_tables()
    text = text.replace("{{ZONED}}", zoned).replace("{{GLOBAL}}", glob)
    version = hashlib.sha1(text.encode()).hexdigest()[:12]
    return text.replace("{{VERSION}}", version)


async def load(
    client: aioredis.Redis, table: PriorityTable, zones: list[keys.Zone] | None = None
) -> None:
    """Load (replace) the library (on every shard of a cluster) and publish the alarm-type
    table the functions read into each zone."""
    await client.function_load(source(), replace=True)
    packed = table.packed()
    for zone in zones or [keys.DEFAULT]:
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(zone.dispatch_types)
            pipe.hset(zone.dispatch_types, mapping=packed)  # type: ignore[arg-type]
            await pipe.execute()


def digest(alarm: wire.Alarm | _Digestible) -> bytes | None:
    """The alarm's fields as ``pw_batch`` reads them from a ``DIGEST`` triple: a MessagePack
    array of id, type, lon, lat, ts (doubles: read without parsing text), the same three
    formatted as the arguments they become in the function (lon and lat as ``%.17g``, ts as
    ``%.6f``), pole, district, grid, text (absent ones as ``''``). ``None`` for an alarm with
    ``caller_far_m`` in its extra (rare: the function decodes that one itself)."""
    if "caller_far_m" in alarm.extra:
        return None
    lon, lat, ts = float(alarm.lon), float(alarm.lat), float(alarm.ts)
    return msgspec.msgpack.encode([
        alarm.id, alarm.type, lon, lat, ts, f"{lon:.17g}", f"{lat:.17g}", f"{ts:.6f}",
        alarm.pole or "", alarm.district or "", alarm.grid or "", alarm.text or "",
    ])  # fmt: skip


def alarm_triples(payload: bytes, entry_id: bytes = b"") -> list[bytes]:
    """The ``pw_batch`` arguments of a valid alarm (its canonical encoding): its triple and,
    when it has one, its digest's."""
    flat = digest(_DIGESTIBLE.decode(payload))
    if flat is None:
        return [ALARM, entry_id, payload]
    return [ALARM, entry_id, payload, DIGEST, b"", flat]


def settings_arg(
    settings: DispatcherSettings, consumer: str, zone: keys.Zone = keys.DEFAULT
) -> bytes:
    """ARGV[1] of every call in ``zone``: the settings the functions need, as MessagePack."""
    conf: dict[str, Any] = {
        "prefix": zone.prefix,
        "id_prefix": f"{zone.name}-" if zone.name else "",
        "group": keys.DISPATCH_GROUP,
        "consumer": consumer,
        "ack_timeout_s": settings.ack_timeout_s,
        "stale_after_s": settings.stale_after_s,
        "radii": settings.radii(),
        "max_radius_m": settings.max_radius_m,
        "grid_pref_m": settings.grid_preference_m,
        "grid_pref_s": settings.grid_preference_s,
        "alarm_ttl_s": settings.alarm_ttl_s,
        "audit_maxlen": settings.audit_maxlen,
        "inbox_maxlen": settings.inbox_maxlen,
        "deadletter_maxlen": deadletter.MAXLEN,
        "expire_batch": settings.expire_batch,
        "escalated_batch": settings.escalated_batch,
        "unresponsive_after": settings.unresponsive_after,
    }
    return msgspec.msgpack.encode(conf)


def counters(reply: list[Any]) -> dict[str, int]:
    """The counters a function returned, by name."""
    return {name: int(value) for name, value in zip(STATS, reply, strict=False)}


def left_free(reply: list[Any]) -> list[bytes | str]:
    """The units a ``pw_batch`` or ``pw_tick`` call took off the free set (claimed, gone off
    duty...), in order: the item after the counters (none from a library before it)."""
    return list(reply[len(STATS)]) if len(reply) > len(STATS) else []
