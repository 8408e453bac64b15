"""The dead-letter convention every consumer follows.

A stream entry that cannot be used (undecodable, invalid, refers to nothing) is never retried
forever and never stops a consumer: it is acknowledged on its stream and copied to
``keys.DEADLETTER`` with the reason, the stream and id it came from, the consumer, and the raw
fields, so an operator can inspect and replay it. The dead-letter stream is capped
(approximately ``MAXLEN``) so a flood of garbage cannot fill memory.
"""

from __future__ import annotations

import time
from typing import Any

from polewatch import keys

MAXLEN = 100_000


def record(
    stream: str, entry_id: bytes | str, fields: dict[bytes, bytes], reason: str, consumer: str
) -> dict[bytes | str, Any]:
    """The fields of the dead-letter entry for one bad stream entry."""
    out: dict[bytes | str, Any] = {
        "stream": stream,
        "id": entry_id,
        "reason": reason[:1000],
        "consumer": consumer,
        "ts": f"{time.time():.6f}",
    }
    for name, value in fields.items():
        key = name if isinstance(name, bytes) else str(name).encode()
        out[b"raw:" + key] = value
    return out


def add(
    pipe: Any,
    stream: str,
    group: str,
    entry_id: bytes | str,
    fields: dict[bytes, bytes],
    reason: str,
    consumer: str,
    *,
    to: str = keys.DEADLETTER,
) -> None:
    """Queue on ``pipe`` (a Redis pipeline) the dead-letter entry (on ``to``, the dead-letter
    stream of the zone the entry came from) and the ack of the original."""
    pipe.xadd(
        to,
        record(stream, entry_id, fields, reason, consumer),
        maxlen=MAXLEN,
        approximate=True,
    )
    pipe.xack(stream, group, entry_id)
