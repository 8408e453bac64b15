"""The command centre's door: look up poles, raise incidents for callers, read incidents and
units, and override the dispatcher (each override is a :class:`wire.Command` on the command
stream of the incident's zone; the dispatcher carries it out).

With dispatch zones an incident's id names its zone; lists of incidents and units span every
zone (one pipelined round trip per step, whatever the number of zones).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from gateway import archive, bodies
from gateway.alarms import candidate_view, find_pole, pole_view, raise_alarm
from gateway.archive import ARCHIVE_DOWN, answering
from gateway.auth import Principal, authorize
from gateway.errors import HttpError, json_response
from gateway.maplinks import Fix, PositionError, parse_position
from gateway.openapi import Query, api, path_value, read_body
from gateway.state import GATEWAY, Gateway
from gateway.writer import Overloaded
from polewatch import alarmtexts, details, geo, keys, records, wire
from polewatch.poles.codes import CodeError
from polewatch.poles.index import FAR_M
from polewatch.zones import unit_zone

MAX_LIST: Final = 500
SCAN_PAGE: Final = 100
SCAN_MAX: Final = 2000
"""Most incidents one list request reads to find those of a single state."""
OPERATORS: Final = ("operator", "supervisor")
STATE_FILTERS: Final = ("open", "escalated", *sorted(records.OPEN_STATES - {"escalated"}),
                         "resolved")  # fmt: skip
_INDEXED: Final = ("open", "escalated", "resolved")
"""The filters one index answers exactly (``incidents_open``, ``escalated``, ``resolved``)."""

routes = web.RouteTableDef()


def _operator(request: web.Request) -> tuple[Gateway, Principal]:
    gw = request.app[GATEWAY]
    return gw, authorize(request, gw.settings.secret, *OPERATORS)


def caller_position(query: Any) -> Fix | None:
    """The caller's position in a query string: ``at=`` (typed coordinates, a map link, a
    phone's location fix: :func:`gateway.maplinks.parse_position`), ``near=lon,lat``, or
    ``lon=`` and ``lat=``; 422 when it is not a plausible position."""
    if query.get("at"):
        try:
            return parse_position(query["at"])
        except PositionError as exc:
            raise HttpError(422, f"'at': {exc}", error_key="call.where_invalid") from None
    lon, lat = query.get("lon"), query.get("lat")
    near = parse_near(query.get("near") if lon is None and lat is None else f"{lon},{lat}")
    return None if near is None else Fix(lon=near[0], lat=near[1], source="coordinates")


def parse_near(value: str | None) -> tuple[float, float] | None:
    """``near=lon,lat`` of a query string; 422 when it is not a plausible position."""
    if not value:
        return None
    try:
        lon, lat = (float(part) for part in value.split(","))
    except ValueError:
        raise HttpError(422, "'near' must be lon,lat (decimal degrees)") from None
    if not geo.plausible(lon, lat):
        raise HttpError(422, f"'near' is not a possible position: {value!r}")
    return lon, lat


@routes.get("/api/poles/{code}")
@api(
    tag="operator",
    roles=OPERATORS,
    path={"code": bodies.PoleCode},
    query=(Query("near", "The caller's position, lon,lat: ranks candidates, flags far poles"),
           Query("lon", "The caller's longitude (with lat; instead of near)"),
           Query("lat", "The caller's latitude (with lon; instead of near)"),
           Query("at", "The caller's position as given: lat,lon, a geo: URI, a map link "
                 "(Google, OSM, Amap, Baidu, ...) or a phone's location fix")),
    answers={404: "Unknown code; the body lists ranked candidates",
             422: "Not a pole code, or 'near' is not a position"},
)  # fmt: skip
async def get_pole(request: web.Request) -> web.Response:
    """The pole a caller named, or (404) the poles they may have meant, best first. A real
    code comes with its real look-alikes among the candidates, and ``checks`` lists what the
    call-taker must confirm (``look_alikes``, ``nearer_candidate``, ``far_from_caller``)."""
    gw, _ = _operator(request)
    code = path_value(request, "code", "not a pole code")
    caller = caller_position(request.query)
    near = None if caller is None else (caller.lon, caller.lat)
    # a fix that says it is rough (a cell's: kilometres) is "far" only beyond twice its radius
    far_m = max(FAR_M, 2 * (caller.accuracy_m or 0)) if caller is not None else FAR_M
    try:
        resolution = gw.need_poles().resolve(code, near=near, limit=10, far_m=far_m)
    except CodeError as exc:
        raise HttpError(422, f"not a pole code: {exc}") from None
    answer = {
        "query": code,
        "pole": None if resolution.pole is None else pole_view(resolution.pole),
        "candidates": [candidate_view(c) for c in resolution.candidates],
        "checks": resolution.checks,
        "caller": caller,
    }
    if resolution.pole is None:
        return json_response({"error": f"unknown pole code {code!r}", **answer}, status=404)
    return json_response(answer)


@routes.post("/api/incidents")
@api(tag="operator", roles=OPERATORS, body=bodies.OperatorIncident, ok=202,
     answers={404: "Unknown pole code; the body lists ranked candidates"})  # fmt: skip
async def post_incident(request: web.Request) -> web.Response:
    """Raise an alarm for a caller's pole (source ``operator:<login>``)."""
    gw, who = _operator(request)
    body: bodies.OperatorIncident = await read_body(request)
    near = body.near
    pole = find_pole(gw.need_poles(), body.pole, near)
    answer = await raise_alarm(
        gw, pole=pole, type=body.type, source=f"operator:{who.subject}", channel="operator",
        text=body.text, phone=body.phone, caller=near,
    )  # fmt: skip
    return json_response(answer, status=202, headers={"Location": answer["status_url"]})


@routes.get("/api/incidents")
@api(
    tag="operator",
    roles=OPERATORS,
    query=(
        Query("state", "open (default), escalated, one open state, or resolved (waiting to "
              "be closed by an operator)",
              {"type": "string", "enum": list(STATE_FILTERS)}),
        Query("limit", "At most this many", {"type": "integer", "minimum": 1, "maximum": MAX_LIST}),
    ),
    answers={422: "'state' or 'limit' out of range"},
)  # fmt: skip
async def list_incidents(request: web.Request) -> web.Response:
    """Open incidents, newest first (``state``: open, escalated or one open state), or the
    resolved ones no operator has closed yet (``resolved``, most recently resolved first)."""
    gw, _ = _operator(request)
    state = request.query.get("state", "open")
    if state not in STATE_FILTERS:
        raise HttpError(422, f"'state' must be one of {', '.join(STATE_FILTERS)}")
    limit = _limit(request.query.get("limit"))
    found = await _newest(gw.need_redis(), gw.zones.all_keys(), state, limit)
    return json_response({"state": state, "incidents": found})


async def _newest(
    redis: Redis, zones: Sequence[keys.Zone], state: str, limit: int
) -> list[records.Incident]:
    """The newest ``limit`` incidents of ``zones`` in ``state``, newest first.

    For ``open``, ``escalated`` and ``resolved`` the index (``incidents_open``, ``escalated``,
    ``resolved``) is exactly the set wanted, so one page of ``limit`` ids (and one pipelined
    round trip of HGETALLs) is the answer. A single state (``dispatched``, ...) can only be
    told from the hash, so the open index is read in pages until ``limit`` match;
    :data:`SCAN_MAX` bounds what one request reads. The order is the index' (creation,
    escalation or resolution time), merged across zones;
    the console sorts by priority itself.
    """
    whole = state in _INDEXED
    page = limit if whole else max(limit, SCAN_PAGE)
    indexes = [(z, _index(z, state)) for z in zones]
    newest = Newest(redis, indexes, page)
    found: list[records.Incident] = []
    read = 0
    while len(found) < limit and read < SCAN_MAX:
        ids = await newest.take(page)
        async with redis.pipeline(transaction=False) as pipe:
            for zone, i in ids:
                pipe.hgetall(zone.incident(i))
            hashes: list[Any] = await pipe.execute()
        for raw in hashes:  # a hash may be gone (closed and expired since the index read)
            incident = records.incident_from_hash(raw)
            if incident is not None and (whole or incident.state == state):
                found.append(incident)
        if len(ids) < page:
            break
        read += page
        page = limit - len(found) if whole else page
    return found[:limit]


def _index(zone: keys.Zone, state: str) -> str:
    """The sorted set that lists the incidents of a filter (a single open state: the open
    set, filtered by the hash)."""
    return {"escalated": zone.escalated, "resolved": zone.resolved}.get(state, zone.incidents_open)


class Newest:
    """The members of several sorted sets (one index per zone), highest score first, read in
    pages: one pipelined round trip fills every index' buffer that ran dry."""

    def __init__(self, redis: Redis, indexes: Sequence[tuple[keys.Zone, str]], page: int) -> None:
        self.redis = redis
        self.page = page
        self._indexes = list(indexes)
        self._read = [0] * len(indexes)
        self._ahead: list[deque[tuple[float, str]]] = [deque() for _ in indexes]
        self._done = [False] * len(indexes)

    async def take(self, n: int) -> list[tuple[keys.Zone, str]]:
        """The next (up to) ``n`` members, with the zone of each."""
        out: list[tuple[keys.Zone, str]] = []
        while len(out) < n:
            dry = [k for k, ahead in enumerate(self._ahead) if not ahead and not self._done[k]]
            if dry:
                await self._fill(dry, max(self.page, n - len(out)))
            heads = [(-a[0][0], k) for k, a in enumerate(self._ahead) if a]
            if not heads:
                break
            k = min(heads)[1]
            ahead = self._ahead[k]
            # from the newest index, everything newer than every other index' next member
            bar = max((-h for h, j in heads if j != k), default=-float("inf"))
            while ahead and len(out) < n and ahead[0][0] >= bar:
                out.append((self._indexes[k][0], ahead.popleft()[1]))
                if not ahead and not self._done[k]:
                    break  # its next page may be newer than the other indexes' heads
        return out

    async def _fill(self, which: list[int], count: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for k in which:
                start = self._read[k]
                pipe.zrevrange(self._indexes[k][1], start, start + count - 1, withscores=True)
            replies: list[Any] = await pipe.execute()
        for k, members in zip(which, replies, strict=True):
            self._read[k] += len(members)
            self._done[k] = len(members) < count
            self._ahead[k].extend((float(score), m.decode()) for m, score in members)


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIST:
        raise HttpError(422, f"'limit' must be an integer from 1 to {MAX_LIST}")
    return int(value)


@routes.get("/api/incidents/{incident}")
@api(tag="operator", roles=OPERATORS, path={"incident": wire.Ident},
     answers={404: "No such incident", 422: "Malformed incident id",
              503: ARCHIVE_DOWN})  # fmt: skip
async def get_incident(request: web.Request) -> web.Response:
    """One incident: its hash, its timeline and the alarms merged into it; from the archive
    (``archived``: true) once Redis let it go."""
    gw, _ = _operator(request)
    iid = path_value(request, "incident")
    gw.incident_zone(iid)  # 404 for an id of no zone of this deployment
    detail = await records.read_incident(gw.need_redis(), iid, gw.zones)
    archived = detail is None and gw.archive is not None
    if archived:
        async with answering():
            detail = await archive.incidents(gw).detail(iid)
    if detail is None:
        unarchived = "" if gw.archive else " in Redis (no incident archive is configured)"
        raise HttpError(404, f"no incident {iid!r}{unarchived}")
    return json_response(
        {
            "archived": archived,
            "incident": alarmtexts.label(msgspec.to_builtins(detail.incident)),
            "timeline": [
                {"k": "invalid", "error": e}
                if isinstance(e, str)
                else details.event_view(wire.to_builtins(e))
                for e in detail.timeline
            ],
            "alarms": [
                _alarm_view(i, a) for i, a in zip(detail.alarm_ids, detail.alarms, strict=True)
            ],
        }
    )


def _alarm_view(alarm_id: str, alarm: wire.Alarm | str | None) -> dict[str, Any]:
    if alarm is None:
        return {"id": alarm_id, "expired": True}
    if isinstance(alarm, str):
        return {"id": alarm_id, "k": "invalid", "error": alarm}
    return alarmtexts.label(wire.to_builtins(alarm))


@routes.get("/api/units")
@api(tag="operator", roles=OPERATORS)
async def list_units(request: web.Request) -> web.Response:
    """Every unit ever seen with its duty, status, grid, position and incident."""
    gw, _ = _operator(request)
    return json_response({"units": await all_units(gw.need_redis(), gw.zones.all_keys())})


async def all_units(redis: Redis, zones: Sequence[keys.Zone]) -> list[records.Unit]:
    """Every unit of ``zones``, by id (two pipelined round trips)."""
    ids = await unit_ids(redis, zones)
    async with redis.pipeline(transaction=False) as pipe:
        for u, zone in ids.items():
            pipe.hgetall(zone.unit(u))
        hashes: list[Any] = await pipe.execute()
    return [
        records.unit_from_hash(h) or records.Unit(id=u) for u, h in zip(ids, hashes, strict=True)
    ]


async def unit_ids(redis: Redis, zones: Sequence[keys.Zone]) -> dict[str, keys.Zone]:
    """Every unit id of ``zones`` in order, with its zone (one pipelined round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        for zone in zones:
            pipe.smembers(zone.units)
        members: list[Any] = await pipe.execute()
    found = {u.decode(): zone for zone, m in zip(zones, members, strict=True) for u in m}
    return dict(sorted(found.items(), key=lambda unit: unit[0]))


@routes.post("/api/units/{unit}/restore")
@api(tag="operator", roles=OPERATORS, body=bodies.Restore, ok=202, path={"unit": wire.Ident},
     answers={404: "No such unit", 409: "The unit is not unresponsive"})  # fmt: skip
async def restore_unit(request: web.Request) -> web.Response:
    """Return an unresponsive unit to the rotation: a ``restore_unit`` command, audited on the
    incident whose dispatch it last let time out (see the dispatcher's ``unresponsive_after``)."""
    gw, who = _operator(request)
    unit = path_value(request, "unit")
    body: bodies.Restore = await read_body(request)
    redis = gw.need_redis()
    name = await unit_zone(redis, gw.zones, unit)
    zone = keys.zone(name or "")
    found: Any = await redis.hmget(zone.unit(unit), ["status", "missed_incident"])
    status, incident = (v.decode() if isinstance(v, bytes) else v for v in found)
    if status is None or name is None:
        raise HttpError(404, f"no unit {unit!r}")
    if status != "unresponsive" or not incident:
        raise HttpError(409, f"unit {unit!r} is {status}, not unresponsive")
    cmd = wire.Command(op="restore_unit", incident=incident, unit=unit, actor=who.subject,
                       ts=time.time(), detail=body.reason)  # fmt: skip
    return await send_command(gw, zone, cmd)


COMMANDS: Final[dict[str, tuple[wire.CommandOp, type[bodies.Body]]]] = {
    "reassign": ("reassign", bodies.Reassign),
    "add-unit": ("add_unit", bodies.AddUnit),
    "cancel": ("cancel", bodies.Cancel),
    "close": ("close", bodies.Close),
    "merge": ("merge", bodies.Merge),
    "split": ("split", bodies.Split),
    "note": ("note", bodies.Note),
}
"""URL verb -> (command op, request body)."""


def command(op: wire.CommandOp, incident: str, actor: str, body: bodies.Body) -> wire.Command:
    """The :class:`wire.Command` an override request stands for."""
    fields = msgspec.structs.asdict(body)
    other = fields.get("other") or fields.get("alarm")
    detail = fields.get("reason") or fields.get("detail") or fields.get("text")
    return wire.Command(
        op=op, incident=incident, actor=actor, ts=time.time(), unit=fields.get("unit"),
        other=other, evaluation=fields.get("evaluation"), detail=detail,
    )  # fmt: skip


async def send_command(gw: Gateway, zone: keys.Zone, cmd: wire.Command) -> web.Response:
    """Append ``cmd`` to ``zone``'s command stream: 202 with it and its entry id, or 503."""
    try:
        entry = await gw.need_writer().add(zone.commands, wire.entry(cmd))
    except Overloaded as exc:
        raise HttpError(503, f"not accepted: {exc}; retry") from None
    except Exception as exc:
        raise HttpError(503, f"command store unavailable ({type(exc).__name__}); retry") from None
    return json_response({"command": wire.to_builtins(cmd), "entry": entry}, status=202)


def _override(verb: str, op: wire.CommandOp, kind: type[bodies.Body]) -> Any:
    async def override(request: web.Request) -> web.Response:
        gw, who = _operator(request)
        iid = path_value(request, "incident")
        body = await read_body(request)
        zone = gw.incident_zone(iid)
        if op == "merge":
            other = getattr(body, "other", None)
            if other == iid:
                raise HttpError(422, "cannot merge an incident into itself")
            if gw.zones.zoned and other and keys.zone_of_incident(other).name != zone.name:
                raise HttpError(422, "incidents of different dispatch zones cannot be merged")
        return await send_command(gw, zone, command(op, iid, who.subject, body))

    override.__doc__ = f"Override: {OVERRIDES[verb]} (a ``{op}`` command for the dispatcher)."
    override.__name__ = f"override_{op}"
    return api(tag="operator", roles=OPERATORS, body=kind, ok=202, path={"incident": wire.Ident},
               answers=UNKNOWN_ZONE)(override)  # fmt: skip


UNKNOWN_ZONE: Final = {404: "Zoned deployments: the incident id names no dispatch zone"}
OVERRIDES: Final = {
    "reassign": "send the incident to another unit (the nearest free one if none is named)",
    "add-unit": "send one more unit (the nearest free one if none is named)",
    "cancel": "cancel the incident, withdrawing its units",
    "close": "close a resolved incident with an evaluation (1-5)",
    "merge": "merge another incident into this one",
    "split": "split an alarm out of this incident into a new one",
    "note": "add a note to the timeline, sent to the phones of the units on the incident",
}

for _verb, (_op, _kind) in COMMANDS.items():
    routes.post(f"/api/incidents/{{incident}}/{_verb}")(_override(_verb, _op, _kind))
