"""Consumer groups' housekeeping, shared by every service that reads a stream in a group (the
dispatchers' ``dispatchers``, the archivers' ``archivers``).

A replica names itself ``<hostname>-<pid>`` (:func:`polewatch.settings.consumer_name`), so every
restart leaves a consumer behind in its groups. What such a consumer held is taken over by the
live replicas (``XAUTOCLAIM`` after the claim idle time); the consumer itself stays listed in
``XINFO CONSUMERS`` for good unless someone deletes it: :func:`forget_gone` does.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# One script, so a consumer cannot read entries between the look and the deletion (XGROUP
# DELCONSUMER drops the pending entries of the consumer it deletes: they would be lost).
FORGET: Final = """
local gone = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info.pending == 0 and info.idle >= tonumber(ARGV[2]) and info.name ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info.name)
    gone[#gone + 1] = info.name
  end
end
return gone
"""


async def forget_gone(
    redis: aioredis.Redis, stream: str, group: str, consumer: str, idle_ms: int
) -> list[str]:
    """Delete from ``group`` of ``stream`` every consumer but ``consumer`` that holds no pending
    entries and has been idle ``idle_ms`` or longer; their names (logged). A replica alive
    that is deleted (a quiet stream) comes back with its next read, holding nothing it could
    lose."""
    found: Any = await redis.eval(FORGET, 1, stream, group, idle_ms, consumer)
    gone = [name.decode() if isinstance(name, bytes) else str(name) for name in found]
    if gone:
        log.info("%s: consumers gone from %s (nothing pending, idle %d ms): %s", stream, group,
                 idle_ms, ", ".join(gone))  # fmt: skip
    return gone
