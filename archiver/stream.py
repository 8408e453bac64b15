"""A zone's audit stream as the archiver reads it: batches through a script, decoded into rows
and entries to dead-letter with the reason."""

from __future__ import annotations

import contextlib
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from archiver import writer
from polewatch import keys, wire

GROUP: Final = keys.ARCHIVE_GROUP
Bad = list[tuple[Any, dict[bytes, bytes], str]]
"""Entries to dead-letter: ``(entry id, fields, reason)``."""

# XREADGROUP in a script, its reply flattened to id, message, id, message, ...: redis-py's
# XREADGROUP reply callback builds a dict per entry, about a quarter of the archiver's time
# (side by side: archiver 88-93 -> 69-79 us per incident, Redis 38-39 -> 45-47 us). An entry
# with other fields than the message comes back with all its fields (a list; empty if the
# entry was deleted while pending).
READ: Final = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], ARGV[4])
local out = {}
if not reply or not reply[1] then return out end
for _, e in ipairs(reply[1][2]) do
  local fields = e[2] or {}
  out[#out + 1] = e[1]
  if #fields == 2 and fields[1] == ARGV[5] then out[#out + 1] = fields[2]
  else out[#out + 1] = fields end
end
return out
"""


async def read(
    redis: aioredis.Redis,
    stream: str,
    consumer: str,
    cursor: str,
    count: int,
    *,
    block: int | None,
) -> list[Any]:
    """Up to ``count`` ``(id, fields)`` entries for ``consumer`` from ``cursor`` (``>``: new
    ones; an id: its own pending ones after it), through :data:`READ`; with ``block``, plain
    ``XREADGROUP`` waiting that long for new ones (a script cannot block)."""
    if block is None:
        return entries(await redis.eval(READ, 1, stream, GROUP, consumer, count, cursor,
                                         wire.FIELD))  # fmt: skip
    reply: Any = await redis.xreadgroup(GROUP, consumer, {stream: cursor}, count=count,
                                        block=block)  # fmt: skip
    return list(reply[0][1]) if reply else []


def entries(flat: list[Any]) -> list[tuple[Any, dict[bytes, bytes]]]:
    """``(id, fields)`` entries out of the :data:`READ` script's flat reply."""
    out: list[tuple[Any, dict[bytes, bytes]]] = []
    for entry_id, value in zip(flat[::2], flat[1::2], strict=True):
        if isinstance(value, list):
            out.append((entry_id, dict(zip(value[::2], value[1::2], strict=True))))
        else:
            out.append((entry_id, {wire.FIELD: value}))
    return out


def decode_batch(zone: str, entries: list[Any]) -> tuple[list[writer.AuditRow], Bad]:
    """Split ``(id, fields)`` audit entries into decoded rows and entries to dead-letter with
    the reason; every entry lands in exactly one of them."""
    rows: list[writer.AuditRow] = []
    bad: Bad = []
    for entry_id, fields in entries:
        try:
            event = wire.decode_entry(fields or {}, wire.StoredIncidentEvent)
        except wire.WireError as exc:
            bad.append((entry_id, fields or {}, exc.reason))
            continue
        rows.append(writer.AuditRow(zone, _text(entry_id), event, fields[wire.FIELD]))
    return rows, bad


async def ensure_group(redis: aioredis.Redis, stream: str) -> None:
    """The ``archivers`` group from the start of the stream (the whole history is archived)."""
    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
