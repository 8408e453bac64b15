"""The command centre's history: incidents that are over (resolved, closed, cancelled),
searched by text, so an operator can read them again and close any resolved one with an
evaluation.

Redis keeps no index of finished incidents; their finishing events are in each zone's audit
stream. A search reads the audit streams backwards (newest first, one pipelined round trip
per page across the zones, at most :data:`AUDIT_SCAN` entries per zone), takes the incidents
whose resolution, closing or cancellation it finds, and reads their hashes while Redis still
holds them (the retention window). With an archive (``database_url``) the search also reads
the incidents Redis let go there (:func:`analytics.archive.finished_incidents`): each incident
once, Redis' copy while Redis has it. Pages follow each other by a cursor (``next`` of one
page is ``before`` of the next): the last incident shown, as ``<finished>/<id>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from analytics.archive import Incidents
from gateway.archive import ARCHIVE_DOWN, answering, incidents
from gateway.auth import authorize
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY, Gateway, incident_zone
from polewatch import keys, records, wire

FINAL: Final = ("resolved", "closed", "cancelled")
STATES: Final = ("any", *FINAL)
AUDIT_PAGE: Final = 1000
AUDIT_SCAN: Final = 20_000
"""Most audit entries one search reads per zone."""
MAX_RESULTS: Final = 200
MAX_QUERY: Final = 100

routes = web.RouteTableDef()
Cursor = tuple[float, str]
"""``(finished, id)`` of the last incident of a page: the next page is what sorts below it."""


@dataclass(frozen=True)
class Search:
    """A history search: which finished incidents, and which page of them."""

    state: str = "any"
    text: str = ""
    limit: int = 50
    before: Cursor | None = None

    @property
    def states(self) -> tuple[str, ...]:
        return FINAL if self.state == "any" else (self.state,)


def parse_search(query: Mapping[str, str]) -> Search:
    """The search a query string asks for; :class:`ValueError` naming the parameter when one
    makes no sense."""
    state = query.get("state", "any")
    if state not in STATES:
        raise ValueError(f"'state' must be one of {', '.join(STATES)}")
    text = query.get("q", "").strip()
    if len(text) > MAX_QUERY:
        raise ValueError(f"'q' is at most {MAX_QUERY} characters")
    raw = query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_RESULTS:
        raise ValueError(f"'limit' must be a whole number from 1 to {MAX_RESULTS}")
    before = parse_cursor(query["before"]) if "before" in query else None
    return Search(state, text, int(raw), before)


def parse_cursor(text: str) -> Cursor:
    """A page cursor ``<finished>/<id>`` (:func:`cursor`); :class:`ValueError` otherwise."""
    ts, sep, iid = text.partition("/")
    try:
        finished = float(ts) if ts.isascii() else math.nan
        msgspec.convert(iid, wire.Ident)
    except (ValueError, msgspec.ValidationError):
        finished = math.nan
    if not sep or not math.isfinite(finished):
        raise ValueError("'before' must be the 'next' of a previous page: <finished>/<id>")
    return finished, iid


def cursor(incident: Mapping[str, Any]) -> str:
    """The cursor that pages on after ``incident`` (a found one)."""
    return f"{float(incident['finished'])!r}/{incident['id']}"


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
        Query("before", "The 'next' of the previous page: the incidents that finished before"),
    ),
    answers={422: "'state', 'q', 'limit' or 'before' out of range", 503: ARCHIVE_DOWN},
)  # fmt: skip
async def history(request: web.Request) -> web.Response:
    """Finished incidents (resolved, closed, cancelled), most recently finished first, each
    with ``finished`` (when), ``reason`` (the cancellation's, when cancelled) and ``archived``
    (read from the archive); ``next``: the ``before`` of the next page (``null``: no more);
    ``archive``: whether incidents Redis let go are searched too."""
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, "operator", "supervisor")
    try:
        search = parse_search(request.query)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    source = incidents(gw)
    async with answering():
        found, more = await _search(gw, source, search)
    return json_response({
        "state": search.state, "q": search.text, "incidents": found,
        "next": cursor(found[-1]) if more and found else None, "archive": source.archived,
    })  # fmt: skip


async def _search(gw: Gateway, source: Incidents, search: Search) -> tuple[list[Any], bool]:
    """One page of ``search`` over Redis and the archive, and whether more follow. Each source
    gives the first ``limit + 1`` of its own matches below the cursor, so the first ``limit``
    of both together are the page's."""
    want = search.limit + 1
    hot = await finished(gw.need_redis(), gw.zones.all_keys(), search.state, search.text, want,
                         search.before)  # fmt: skip
    if source.archived:
        hot += await _archived(gw, source, search, {i["id"] for i in hot})
    hot.sort(key=lambda i: (i["finished"], i["id"]), reverse=True)
    return hot[: search.limit], len(hot) > search.limit


async def _archived(
    gw: Gateway, source: Incidents, search: Search, shown: set[str]
) -> list[dict[str, Any]]:
    """The archive's first ``limit + 1`` matches below the cursor that Redis did not give:
    an incident Redis still holds is shown as Redis has it now (it may have been amended)."""
    out: list[dict[str, Any]] = []
    below = search.before
    redis = gw.need_redis()
    while len(out) <= search.limit:
        rows = await source.finished(search.states, search.text, search.limit + 1, below)
        held = [(r, z) for r in rows if (z := incident_zone(gw.zones, r.incident.id))]
        async with redis.pipeline(transaction=False) as pipe:
            for row, zone in held:
                pipe.hgetall(zone.incident(row.incident.id))
            hashes: list[Any] = await pipe.execute()
        now = {r.incident.id: records.incident_from_hash(h)
               for (r, _), h in zip(held, hashes, strict=True)}  # fmt: skip
        for row in rows:
            incident = now.get(row.incident.id) or row.incident
            if incident.id in shown or not _matches(incident, search, row.detail):
                continue
            out.append(_view(incident, row.finished, row.detail, archived=True))
        if len(rows) <= search.limit:
            break
        below = (rows[-1].finished, rows[-1].incident.id)
    return out


async def finished(
    redis: Redis,
    zones: Sequence[keys.Zone],
    state: str,
    text: str,
    limit: int,
    before: Cursor | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` finished incidents of ``zones`` now in ``state`` (``any``: any final
    state) matching ``text`` that Redis holds, most recently finished first, all below
    ``before`` when given."""
    search = Search(state, text, limit, before)
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
                    if before is None or (event.ts, event.incident) < before:
                        endings.append((event.ts, zone, event))
        endings.sort(key=lambda e: (e[0], e[2].incident), reverse=True)
        out += await _matching(redis, endings, search)
    return out[:limit]


async def _matching(
    redis: Redis,
    endings: list[tuple[float, keys.Zone, wire.IncidentEvent]],
    search: Search,
) -> list[dict[str, Any]]:
    async with redis.pipeline(transaction=False) as pipe:
        for _, zone, event in endings:
            pipe.hgetall(zone.incident(event.incident))
        hashes: list[Any] = await pipe.execute()
    out = []
    for (ts, _, event), raw in zip(endings, hashes, strict=True):
        incident = records.incident_from_hash(raw)
        if incident is not None and _matches(incident, search, event.detail):
            out.append(_view(incident, ts, event.detail, archived=False))
    return out


def _matches(incident: records.Incident, search: Search, detail: str | None) -> bool:
    """Whether ``incident`` is in a wanted state and holds the text (in any case: lower-cased
    as the archive's search does) in its id, pole, type, district, grid, description or the
    ``detail`` of the event that finished it."""
    if incident.state not in search.states:
        return False
    needle = search.text.lower()
    fields = (incident.id, incident.pole, incident.type, incident.district, incident.grid,
              incident.text, detail)  # fmt: skip
    return not needle or any(needle in f.lower() for f in fields if f)


def _view(
    incident: records.Incident, finished: float, detail: str | None, *, archived: bool
) -> dict[str, Any]:
    reason = detail if incident.state == "cancelled" else None
    return {**msgspec.to_builtins(incident), "finished": finished, "reason": reason,
            "archived": archived}  # fmt: skip


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
