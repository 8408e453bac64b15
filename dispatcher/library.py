"""The Redis Functions library (``functions.lua``): building, loading and calling it.

The Lua source names keys through a table generated here from :mod:`polewatch.keys`, so key
names are still made in one place. The library is loaded with ``FUNCTION LOAD REPLACE`` by every
replica at start; ``VERSION`` changes whenever the source does.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import deadletter, keys

LIBRARY: Final = "polewatch_dispatch"
BATCH: Final = "pw_batch"
TICK: Final = "pw_tick"

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
STREAM_CODES: Final = {keys.ALARMS: ALARM, keys.PATROL_EVENTS: PATROL, keys.COMMANDS: COMMAND}
"""The first item of each ``pw_batch`` entry triple says which stream it came from."""

_CONSTANTS = (
    "ALARMS",
    "PATROL_EVENTS",
    "COMMANDS",
    "AUDIT",
    "DEADLETTER",
    "UNITS",
    "UNITS_GEO",
    "UNITS_FREE_GEO",
    "INCIDENT_SEQ",
    "INCIDENTS_OPEN",
    "ESCALATED",
    "ACK_DEADLINES",
    "DISPATCH_TYPES",
    "UNIT_NOTIFY",
    "INCIDENT_NOTIFY",
)
_TEMPLATES = (
    "unit",
    "unit_inbox",
    "incident",
    "incident_alarms",
    "incident_timeline",
    "incident_tried",
    "merge_area",
    "alarm",
    "alarm_body",
)


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _key_table() -> str:
    items = [f"{name} = {_lua_string(getattr(keys, name))}" for name in _CONSTANTS]
    for name in _TEMPLATES:
        head, tail = getattr(keys, name)("\0").split("\0")
        items.append(f"{name} = {{{_lua_string(head)}, {_lua_string(tail)}}}")
    return "{\n  " + ",\n  ".join(items) + ",\n}"


def source() -> str:
    """The library's Lua source, keys filled in and versioned by its own content."""
    text = resources.files("dispatcher").joinpath("functions.lua").read_text()
    text = text.replace("{{KEYS}}", _key_table())
    version = hashlib.sha1(text.encode()).hexdigest()[:12]
    return text.replace("{{VERSION}}", version)


async def load(client: aioredis.Redis, table: PriorityTable) -> None:
    """Load (replace) the library and publish the alarm-type table the functions read."""
    await client.function_load(source(), replace=True)
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.DISPATCH_TYPES)
        pipe.hset(keys.DISPATCH_TYPES, mapping=table.packed())  # type: ignore[arg-type]
        await pipe.execute()


def settings_arg(settings: DispatcherSettings, consumer: str) -> bytes:
    """ARGV[1] of every call: the settings the functions need, as a MessagePack map."""
    conf: dict[str, Any] = {
        "group": keys.DISPATCH_GROUP,
        "consumer": consumer,
        "ack_timeout_s": settings.ack_timeout_s,
        "stale_after_s": settings.stale_after_s,
        "radii": settings.radii(),
        "max_radius_m": settings.max_radius_m,
        "grid_pref_m": settings.grid_preference_m,
        "alarm_ttl_s": settings.alarm_ttl_s,
        "audit_maxlen": settings.audit_maxlen,
        "inbox_maxlen": settings.inbox_maxlen,
        "deadletter_maxlen": deadletter.MAXLEN,
        "expire_batch": settings.expire_batch,
        "escalated_batch": settings.escalated_batch,
    }
    return msgspec.msgpack.encode(conf)


def counters(reply: list[Any]) -> dict[str, int]:
    """The counters a function returned, by name."""
    return {name: int(value) for name, value in zip(STATS, reply, strict=False)}
