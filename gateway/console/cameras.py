"""The camera wall: which cameras exist and how they are (from their heartbeats), their latest
frames as JPEG or live MJPEG, and the snapshots attached to alarms."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from gateway.auth import authorize
from gateway.bodies import Body
from gateway.errors import HttpError, json_response
from gateway.openapi import Query, api, path_value, read_body
from gateway.state import GATEWAY, Gateway
from polewatch import camera_configs, camera_schema, keys, wire
from polewatch.poles.index import PoleIndex

SCAN_HEARTBEATS: Final = 2000
SCAN_ALARMS: Final = 2000
"""Latest alarms searched for each camera's last one (shared by the zones' alarm streams)."""
MJPEG_INTERVAL_S: Final = 0.2
"""How often a live view looks for a newer frame (the agents store about 2-5 a second)."""
BOUNDARY: Final = "polewatch-frame"
OPERATORS: Final = ("operator", "supervisor")

routes = web.RouteTableDef()


def camera_view(hb: wire.Heartbeat, poles: PoleIndex | None = None) -> dict[str, Any]:
    """A camera as the wall and the map show it: id, health, place."""
    camera = hb.source.removeprefix("camera:")
    view: dict[str, Any] = {
        "id": camera, "status": hb.status, "ts": hb.ts, "fps": hb.fps,
        "detail": hb.detail, "pole": hb.pole, "lon": None, "lat": None,
        "config_version": hb.config_version,
    }  # fmt: skip
    pole = poles.get(hb.pole) if poles is not None and hb.pole else None
    if pole is not None:
        view["lon"], view["lat"] = pole.lon, pole.lat
    return view


async def latest_cameras(
    redis: aioredis.Redis,
    poles: PoleIndex | None = None,
    zones: Sequence[keys.Zone] = (keys.DEFAULT,),
) -> list[Any]:
    """Every camera heard from recently, with its latest heartbeat and latest alarm (from the
    alarm streams of ``zones``)."""
    found: dict[str, dict[str, Any]] = {}
    beats: Any = await redis.xrevrange(keys.HEARTBEATS, count=SCAN_HEARTBEATS)
    for _, fields in beats:
        with contextlib.suppress(wire.WireError):
            hb = wire.decode_entry(fields, wire.Heartbeat)
            if hb.kind == "camera":
                view = camera_view(hb, poles)
                found.setdefault(view["id"], view)
    per_zone = max(SCAN_ALARMS // len(zones), 100)
    async with redis.pipeline(transaction=False) as pipe:
        for zone in zones:
            pipe.xrevrange(zone.alarms, count=per_zone)
        streams: list[Any] = await pipe.execute()
    for _, fields in (entry for entries in streams for entry in entries):
        with contextlib.suppress(wire.WireError):
            alarm = wire.decode_entry(fields, wire.Alarm)
            if alarm.camera and alarm.camera in found and "alarm" not in found[alarm.camera]:
                found[alarm.camera]["alarm"] = {
                    "id": alarm.id, "type": alarm.type, "rule": alarm.rule,
                    "ts": alarm.ts, "snapshot": alarm.snapshot,
                }  # fmt: skip
    return sorted(found.values(), key=lambda c: str(c["id"]))


class CameraConfigEdit(Body, frozen=True, kw_only=True):
    """A camera's new configuration: ``config`` (the TOML's tables as JSON, what the console's
    editor sends) or ``toml`` (the file's text, comments kept), edited from version ``base``."""

    base: Annotated[int, msgspec.Meta(ge=0)]
    config: dict[str, Any] | None = None
    toml: Annotated[str, msgspec.Meta(max_length=200_000)] | None = None


def _operator(request: web.Request) -> Gateway:
    gw = request.app[GATEWAY]
    authorize(request, gw.settings.secret, *OPERATORS)
    return gw


async def _stored_jpeg(request: web.Request, key: str, what: str) -> web.Response:
    gw = _operator(request)
    data: Any = await gw.need_redis().get(key)
    if data is None:
        raise HttpError(404, f"no {what}")
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=5"}
    )


@routes.get("/api/console/cameras")
@api(tag="console", roles=OPERATORS)
async def list_cameras(request: web.Request) -> web.Response:
    """Cameras with their health (last heartbeat), place and latest alarm."""
    gw = _operator(request)
    cameras = await latest_cameras(gw.need_redis(), gw.poles, gw.zones.all_keys())
    return json_response({"cameras": cameras})


@routes.get("/api/console/cameras/{camera}/frame")
@api(tag="console", roles=OPERATORS, content="image/jpeg", path={"camera": wire.Ident},
     answers={404: "No recent frame", 422: "Malformed camera id"})  # fmt: skip
async def camera_frame(request: web.Request) -> web.Response:
    """The camera's latest frame (JPEG)."""
    camera = path_value(request, "camera", "malformed camera id")
    return await _stored_jpeg(request, keys.camera_frame(camera), f"recent frame of {camera!r}")


@routes.get("/api/console/cameras/{camera}/mjpeg")
@api(tag="console", roles=OPERATORS, content=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
     path={"camera": wire.Ident}, answers={422: "Malformed camera id"},
     query=(Query("token", "The operator's token (an <img> cannot send headers)"),))  # fmt: skip
async def camera_mjpeg(request: web.Request) -> web.StreamResponse:
    """Live view: each new frame of the camera as one part of a multipart stream."""
    gw = _operator(request)
    camera = path_value(request, "camera", "malformed camera id")
    redis = gw.need_redis()
    response = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-cache",
        }
    )
    await response.prepare(request)
    gw.streams.add(response)
    sent: bytes | None = None
    try:
        # Each part ends with the next boundary, so a browser shows a frame as soon as it lands.
        await response.write(f"--{BOUNDARY}\r\n".encode())
        while not gw.closing.is_set():
            frame: Any = await redis.get(keys.camera_frame(camera))
            if frame is not None and frame != sent:
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
                await response.write(head.encode() + frame + f"\r\n--{BOUNDARY}\r\n".encode())
                sent = frame
            await asyncio.sleep(MJPEG_INTERVAL_S)
    except ConnectionResetError:
        pass
    return response


@routes.get("/api/console/snapshots/{snapshot}")
@api(tag="console", roles=OPERATORS, content="image/jpeg", path={"snapshot": wire.Ident},
     answers={404: "No such snapshot", 422: "Malformed snapshot id"})  # fmt: skip
async def snapshot(request: web.Request) -> web.Response:
    """A JPEG snapshot attached to an alarm."""
    snap = path_value(request, "snapshot", "malformed snapshot id")
    return await _stored_jpeg(request, keys.snapshot(snap), f"snapshot {snap!r} (expired?)")


@routes.get("/api/console/clips/{clip}")
@api(tag="console", roles=OPERATORS, content="video/mp4", path={"clip": wire.Ident},
     answers={404: "Still recording, expired or dropped for the camera's budget",
              422: "Malformed clip id"})  # fmt: skip
async def clip(request: web.Request) -> web.Response:
    """The event clip (H.264 MP4) of a video alarm (``clip`` of the alarm)."""
    gw = _operator(request)
    clip_id = path_value(request, "clip", "malformed clip id")
    data: Any = await gw.need_redis().get(keys.clip(clip_id))
    if data is None:
        raise HttpError(404, f"clip {clip_id!r} is still being recorded, or has expired")
    return web.Response(
        body=data, content_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"}
    )


@routes.get("/api/console/cameras/{camera}/config")
@api(tag="console", roles=OPERATORS, path={"camera": wire.Ident},
     answers={404: "The camera has published no configuration",
              422: "Malformed camera id"})  # fmt: skip
async def get_camera_config(request: web.Request) -> web.Response:
    """The camera's configuration as its agent runs it (or is about to): version, TOML text,
    its tables as JSON, and the size of the camera's frames (the coordinates' pixels)."""
    gw = _operator(request)
    camera = path_value(request, "camera", "malformed camera id")
    stored = await camera_configs.read(gw.need_redis(), camera)
    if stored is None:
        raise HttpError(404, f"camera {camera!r} has published no configuration")
    config: Any = None
    error: str | None = None
    try:
        config = msgspec.to_builtins(camera_schema.loads(stored.toml, where=camera))
    except camera_schema.ConfigError as exc:
        error = str(exc)
    return json_response({
        "camera": camera, "version": stored.version, "toml": stored.toml, "config": config,
        "error": error, "size": stored.size, "by": stored.by, "ts": stored.ts,
    })  # fmt: skip


@routes.put("/api/console/cameras/{camera}/config")
@api(tag="console", roles=OPERATORS, body=CameraConfigEdit, path={"camera": wire.Ident},
     answers={409: "Saved by somebody else since `base`",
              422: "Invalid configuration; the message names the key"})  # fmt: skip
async def put_camera_config(request: web.Request) -> web.Response:
    """Save the camera's next configuration version (audited); its agent applies it within
    seconds, without a restart, and reports the version in its heartbeats."""
    gw = _operator(request)
    who = authorize(request, gw.settings.secret, *OPERATORS)
    camera = path_value(request, "camera", "malformed camera id")
    body: CameraConfigEdit = await read_body(request)
    if (body.config is None) == (body.toml is None):
        raise HttpError(422, "give either config or toml")
    try:
        if body.toml is not None:
            text, config = body.toml, camera_schema.loads(body.toml, where="toml")
        else:
            config = camera_schema.parse(body.config or {}, where="config")
            text = camera_schema.dumps(config)
    except camera_schema.ConfigError as exc:
        raise HttpError(422, str(exc)) from None
    if config.id != camera:
        raise HttpError(422, f"id: {config.id!r} is not this camera ({camera!r})")
    redis = gw.need_redis()
    try:
        version = await camera_configs.save(
            redis, camera, text, base=body.base, by=f"operator:{who.s}"
        )
    except camera_configs.VersionConflict as exc:
        raise HttpError(409, str(exc), current=exc.current) from None
    entry = {"ts": round(time.time(), 3), "login": who.s, "camera": camera,
             "version": version, "base": body.base}  # fmt: skip
    await redis.xadd(keys.CAMERA_AUDIT, entry, maxlen=10_000, approximate=True)  # type: ignore[arg-type]
    return json_response({"camera": camera, "version": version})
