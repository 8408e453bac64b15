"""The command centre's history: incidents that are over (resolved, closed, cancelled),
searched by text, so an operator can read them again and close any resolved one with an
evaluation.

Redis keeps no index of finished incidents; their finishing events are in each zone's audit
stream. A search reads the audit streams backwards (newest first, one pipelined round trip
per page across the zones, at most :data:`AUDIT_SCAN` entries per zone), takes the incidents
whose resolution, closing or cancellation it finds, and reads their hashes while Redis still
holds them (the retention window; older ones are in the archive).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from gateway.auth import authorize
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY
from polewatch import keys, records, wire

FINAL: Final = ("resolved", "closed", "cancelled")
STATES: Final = ("any", *FINAL)
AUDIT_PAGE: Final = 1000
AUDIT_SCAN: Final = 20_000
"""Most audit entries one search reads per zone."""
MAX_RESULTS: Final = 200
MAX_QUERY: Final = 100

routes = web.RouteTableDef()


@routes.get("/api/console/history")
@api(
    tag="console",
    roles=("operator", "supervisor"),
    query=(
        Query("state", "any (default), resolved, closed or cancelled",
              {"type": "string", "enum": list(STATES)}),
        Query("q", "Text to find in the id, pole, type, district, grid or description"),
        Query("limit", "At most this many (default 50)",
              {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS}),
    ),
    answers={422: "'state', 'q' or 'limit' out of range"},
)  # fmt: skip
async def history(request: web.Request) -> web.Response:
    """Finished incidents (resolved, closed, cancelled), most recently finished first, each
    with ``finished`` (when) and ``reason`` (the cancellation's, when cancelled)."""
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, "operator", "supervisor")
    state = request.query.get("state", "any")
    if state not in STATES:
        raise HttpError(422, f"'state' must be one of {', '.join(STATES)}")
    text = request.query.get("q", "").strip()
    if len(text) > MAX_QUERY:
        raise HttpError(422, f"'q' is at most {MAX_QUERY} characters")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise HttpError(422, "'limit' must be a whole number") from None
    if not 1 <= limit <= MAX_RESULTS:
        raise HttpError(422, f"'limit' must be 1 to {MAX_RESULTS}")
    found = await finished(gw.need_redis(), gw.zones.all_keys(), state, text, limit)
    return json_response({"state": state, "q": text, "incidents": found})


async def finished(
    redis: Redis, zones: Sequence[keys.Zone], state: str, text: str, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` finished incidents of ``zones`` now in ``state`` (``any``: any final
    state) matching ``text``, most recently finished first."""
    wanted = FINAL if state == "any" else (state,)
    needle = text.casefold()
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    cursors = {z.name: "+" for z in zones}
    read = 0
    while cursors and len(out) < limit and read < AUDIT_SCAN:
        live = [z for z in zones if z.name in cursors]
        async with redis.pipeline(transaction=False) as pipe:
            for zone in live:
                pipe.xrevrange(zone.audit, max=cursors[zone.name], count=AUDIT_PAGE + 1)
            pages: list[Any] = await pipe.execute()
        read += AUDIT_PAGE
        endings: list[tuple[float, keys.Zone, wire.IncidentEvent]] = []
        for zone, page in zip(live, pages, strict=True):
            if len(page) <= AUDIT_PAGE:
                del cursors[zone.name]
            else:
                cursors[zone.name] = _id(page[-1][0])
                page = page[:-1]
            for _, fields in page:
                event = _event(fields)
                if event is not None and event.event in FINAL and event.incident not in seen:
                    seen.add(event.incident)
                    endings.append((event.ts, zone, event))
        endings.sort(key=lambda e: -e[0])
        out += await _matching(redis, endings, wanted, needle)
    return out[:limit]


async def _matching(
    redis: Redis,
    endings: list[tuple[float, keys.Zone, wire.IncidentEvent]],
    wanted: Sequence[str],
    needle: str,
) -> list[dict[str, Any]]:
    async with redis.pipeline(transaction=False) as pipe:
        for _, zone, event in endings:
            pipe.hgetall(zone.incident(event.incident))
        hashes: list[Any] = await pipe.execute()
    out = []
    for (ts, _, event), raw in zip(endings, hashes, strict=True):
        incident = records.incident_from_hash(raw)
        if incident is None or incident.state not in wanted:
            continue
        fields = (incident.id, incident.pole, incident.type, incident.district, incident.grid,
                  incident.text, event.detail)  # fmt: skip
        if needle and not any(needle in f.casefold() for f in fields if f):
            continue
        reason = event.detail if event.event == "cancelled" else None
        out.append({**msgspec.to_builtins(incident), "finished": ts, "reason": reason})
    return out


def _id(raw: bytes | str) -> str:
    """The stream id just before ``raw`` (an exclusive upper bound for the next page)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return "(" + text


def _event(fields: Any) -> wire.IncidentEvent | None:
    try:
        event = wire.decode_entry(fields, wire.IncidentEvent)
    except wire.WireError:
        return None  # the dead-letter of the dispatcher's own audit: not ours to report
    return event if isinstance(event, wire.IncidentEvent) else None
