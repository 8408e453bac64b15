"""The command centre's history: incidents that are over (resolved, closed, cancelled),
searched by text, so an operator can read them again and close any resolved one with an
evaluation.

Redis keeps no index of finished incidents; their ends are in each zone's audit stream. A page
reads the streams backwards from where the previous page stopped, at most ``history_scan``
entries (:mod:`gateway.endings`), and reads the hashes of the incidents whose end it finds
while Redis holds them. With an archive (``database_url``) the page also reads the incidents
Redis let go there (:func:`analytics.archive.finished_incidents`): each incident once, Redis'
copy while Redis has it, in one order, ``(finished, id)`` newest first.

A page shows only what both sides have searched completely: incidents placed at or after the
Redis side's edge (how far back it has read). So a page may be short, even empty, and still
give a cursor: ``next`` (``before`` of the next page) carries the last place shown (or the
edge) and where each zone's stream is read on from; ``searched_to`` says how far back the
search has gone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import web

from analytics.archive import Incidents, finished_incidents
from gateway.archive import ARCHIVE_DOWN, answering, incidents, searching
from gateway.auth import authorize
from gateway.endings import FINAL, TOP, Found, Key, Scan, place
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api
from gateway.state import GATEWAY, Gateway, incident_zone
from polewatch import records, wire

STATES: Final = ("any", *FINAL)
MAX_RESULTS: Final = 200
MAX_QUERY: Final = 100
_POSITION: Final = re.compile(r"([a-z0-9_]{0,24})=(\(?[0-9]{1,20}-[0-9]{1,20})")

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the next shows what is placed below ``key``, reading each zone's
    audit stream on from ``positions`` (zone name -> stream id; a zone not named has nothing
    left; ``None``: every zone from its newest entry)."""

    key: Key
    positions: Mapping[str, str] | None = None


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

    @property
    def below(self) -> Key:
        return TOP if self.before is None else self.before.key


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
    """A page cursor as :func:`cursor` writes it, ``<finished>/<id>`` then ``~<zone>=<stream
    id>`` for each zone with more (an older gateway's ``<finished>/<id>`` alone: every zone
    from its newest); :class:`ValueError` otherwise."""
    place, tilde, rest = text.partition("~")
    ts, sep, iid = place.partition("/")
    try:
        finished = float(ts) if ts.isascii() else math.nan
        if iid or not tilde:
            msgspec.convert(iid, wire.Ident)
    except (ValueError, msgspec.ValidationError):
        finished = math.nan
    found = [_POSITION.fullmatch(p) for p in rest.split("~") if p] if tilde else []
    ids = [int(n) for m in found if m for n in m[2].lstrip("(").split("-")]
    below_nothing = any(m and m[2] == "(0-0" for m in found)  # Redis refuses it; never written
    if (not sep or not math.isfinite(finished) or not all(found)
            or max(ids, default=0) >= 2**64 or below_nothing):  # fmt: skip
        raise ValueError("'before' must be the 'next' of a previous page")
    positions = {m[1]: m[2] for m in found if m} if tilde else None
    return Cursor((finished, iid), positions)


def cursor(at: Cursor) -> str:
    """The text of a page cursor (:func:`parse_cursor` reads it back)."""
    ts, iid = at.key
    text = f"{ts!r}/{iid}"
    if at.positions is None:
        return text
    return text + "~" + "~".join(f"{z}={p}" for z, p in sorted(at.positions.items()))


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
        Query("before", "The 'next' of the previous page: the search goes on from there"),
    ),
    answers={422: "'state', 'q', 'limit' or 'before' out of range", 503: ARCHIVE_DOWN},
)  # fmt: skip
async def history(request: web.Request) -> web.Response:
    """Finished incidents (resolved, closed, cancelled), most recently finished first, each
    with ``finished`` (when), ``reason`` (the cancellation's, when cancelled) and ``archived``
    (read from the archive). A page reads a bounded part of Redis' audit streams, so it may
    hold fewer than ``limit`` and still have more after it: ``next`` is the ``before`` of the
    next page (``null``: nothing more), ``searched_to`` how far back the search has gone
    (seconds; ``null`` when it has gone through everything); ``archive``: whether incidents
    Redis let go are searched too."""
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, "operator", "supervisor")
    try:
        search = parse_search(request.query)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    source = incidents(gw)
    async with answering():
        found, after = await _search(gw, source, search)
    return json_response({
        "state": search.state, "q": search.text, "incidents": [_view(f) for f in found],
        "next": cursor(after) if after else None,
        "searched_to": after.key[0] if after else None, "archive": source.archived,
    })  # fmt: skip


async def _search(
    gw: Gateway, source: Incidents, search: Search
) -> tuple[list[Found], Cursor | None]:
    """One page of ``search`` over Redis and the archive, and the cursor after it (``None``:
    nothing more)."""
    positions = None if search.before is None else search.before.positions
    scan = Scan(gw.need_redis(), gw.zones.all_keys(), positions, search.below, search.states,
                lambda incident, detail: _matches(incident, search, detail))  # fmt: skip
    await scan.run(search.limit, gw.settings.history_scan)
    edge = scan.edge
    hot = [f for f in scan.found.values() if f.key[0] >= edge]
    cold = await _archived(gw, search, edge) if source.archived else []
    merged = {f.incident.id: f for f in cold} | {f.incident.id: f for f in hot}
    found = sorted(merged.values(), key=lambda f: f.key, reverse=True)
    page = found[: search.limit]
    if len(found) > search.limit:
        below = page[-1].key
    elif edge > -math.inf:
        below = (edge, "")
    else:
        return page, None
    return page, Cursor(below, scan.positions(below))


async def _archived(gw: Gateway, search: Search, edge: float) -> list[Found]:
    """The archive's first ``limit + 1`` matches placed below the page's start and at or after
    ``edge``: an incident Redis still holds is shown as Redis has it now (it may have been
    amended), at its place there."""
    out: list[Found] = []
    below = search.below
    redis = gw.need_redis()
    while True:
        async with searching(gw) as conn:
            rows = await finished_incidents(conn, search.states, search.text, search.limit + 1,
                                            None if below == TOP else below)  # fmt: skip
        held = [(r, z) for r in rows if (z := incident_zone(gw.zones, r.incident.id))]
        async with redis.pipeline(transaction=False) as pipe:
            for row, zone in held:
                pipe.hgetall(zone.incident(row.incident.id))
            hashes: list[Any] = await pipe.execute()
        now = {r.incident.id: records.incident_from_hash(h)
               for (r, _), h in zip(held, hashes, strict=True)}  # fmt: skip
        for row in rows:
            incident = now.get(row.incident.id)
            key = (row.finished, row.incident.id) if incident is None else place(
                incident, row.finished)  # fmt: skip
            if edge <= key[0] and key < search.below and _matches(
                    incident or row.incident, search, row.detail):  # fmt: skip
                out.append(Found(key, incident or row.incident, row.detail, incident is None))
        if len(rows) <= search.limit or len(out) > search.limit or rows[-1].finished < edge:
            return out
        below = (rows[-1].finished, rows[-1].incident.id)


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


def _view(found: Found) -> dict[str, Any]:
    incident = found.incident
    reason = found.detail if incident.state == "cancelled" else None
    return {**msgspec.to_builtins(incident), "finished": found.key[0], "reason": reason,
            "archived": found.archived}  # fmt: skip
