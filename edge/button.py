"""A pole's alarm button: a press raises a P1 ``citizen_sos`` alarm, and the citizen sees
the system's answer (received, unit dispatched, on scene).

Presses come from any :class:`ButtonInput` (GPIO on a real pole; here :class:`StdinInput`,
:class:`SimulatedInput`) and from ``POST /press``. Presses within ``debounce_s`` of the last
alarm are counted but raise nothing. The alarm carries the pole's place, from the pole registry
(``PoleRegistry(redis, city).get(code)``) or from the configuration.

Feedback: the agent follows ``keys.alarm(alarm id)`` -> the incident hash
(:mod:`polewatch.records`); in a zoned deployment that record is in the zone of the pole's
place, or in the zone its dispatcher routed the alarm to (``alarm_route``), and the incident
hash is in the incident's zone (:func:`polewatch.records.incident_zone`). It is refreshed
on every ``keys.INCIDENT_NOTIFY`` message and polled once a second as a safety net (pub/sub
messages are lost during a reconnect). Each change is passed to ``on_feedback`` (an LED
driver on real hardware; the CLI prints it) and served at ``GET /status``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol

import msgspec
from aiohttp import web
from msgspec import Meta
from redis.asyncio.cluster import RedisCluster

from edge import lifecycle
from edge.publisher import AlarmPublisher
from edge.spool import FileSpool, MemorySpool
from polewatch import connection, keys, records, settings, wire
from polewatch.connection import UNREACHABLE
from polewatch.poles.registry import PoleRegistry

log = logging.getLogger(__name__)

Stage = Literal["idle", "queued", "sent", "received", "dispatched", "on_scene", "resolved"]
"""What the citizen is told: ``queued`` (no network; kept and retried), ``sent`` (in Redis),
``received`` (an incident exists), ``dispatched``, ``on_scene``, ``resolved``."""

_STAGES: dict[str, Stage] = {
    "new": "received",
    "escalated": "received",
    "dispatched": "dispatched",
    "acknowledged": "dispatched",
    "en_route": "dispatched",
    "on_scene": "on_scene",
    "resolved": "resolved",
    "closed": "resolved",
    "cancelled": "resolved",
}


class ButtonSettings(settings.Settings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pole: str = ""
    """The pole's code, exactly as painted (required)."""
    lon: wire.Lon | None = None
    lat: wire.Lat | None = None
    district: str | None = None
    grid: str | None = None
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Meta(ge=-1, le=65535)] = -1
    """``POST /press`` and ``GET /status`` (-1: none, 0: any free port)."""
    stdin: bool = False
    """Each line on stdin is a press (a terminal stands in for the button)."""
    debounce_s: Annotated[float, Meta(ge=0.0)] = 5.0
    spool_dir: str = ""
    heartbeat_s: Annotated[float, Meta(gt=0.0)] = 30.0
    poll_s: Annotated[float, Meta(gt=0.0)] = 1.0
    """Feedback safety-net poll while an alarm is open."""


class Feedback(msgspec.Struct, kw_only=True):
    """The button's view of its last alarm."""

    stage: Stage = "idle"
    alarm: str | None = None
    incident: str | None = None
    state: str | None = None
    """The incident's own state (``records.INCIDENT_STATES``)."""
    units: list[str] = []
    pressed: float | None = None
    presses: int = 0
    debounced: int = 0


class ButtonInput(Protocol):
    """A source of presses: GPIO edge detection on a pole, stdin, a simulator."""

    def presses(self) -> AsyncIterator[float]:
        """Yield the time of each press."""
        ...


class SimulatedInput:
    """Presses pushed by code (simulators, tests): ``press()`` from the loop."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[float] = asyncio.Queue()

    def press(self, ts: float | None = None) -> None:
        self._queue.put_nowait(time.time() if ts is None else ts)

    async def presses(self) -> AsyncIterator[float]:
        while True:
            yield await self._queue.get()


class StdinInput:
    """Each line on standard input is a press."""

    async def presses(self) -> AsyncIterator[float]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while await reader.readline():
            yield time.time()


class ButtonAgent:
    """One pole's button; an async context manager owning its publisher, feedback follower,
    inputs and (optional) HTTP listener."""

    def __init__(
        self,
        conf: ButtonSettings,
        *,
        inputs: list[ButtonInput] | None = None,
        on_feedback: Callable[[Feedback], None] | None = None,
        clock: Callable[[], float] = time.time,
        publisher: AlarmPublisher | None = None,
    ) -> None:
        if not conf.pole:
            raise settings.SettingsError("setting 'pole' is required (the pole's code)")
        self.conf = conf
        self.clock = clock
        self.inputs = inputs or []
        self.on_feedback = on_feedback
        self.feedback = Feedback()
        self.http_port: int | None = None
        self.publisher = publisher or AlarmPublisher.from_settings(
            conf,
            name=f"button:{conf.pole}",
            spool=FileSpool(Path(conf.spool_dir)) if conf.spool_dir else MemorySpool(),
        )
        self.source = f"button:{conf.pole}"
        self.zones = conf.zone_map()
        self._client = connection.connect(
            conf.redis_url, name=f"button:{conf.pole}:feedback", cluster=conf.redis_cluster
        )
        self._place: dict[str, Any] = {}
        self._home = keys.DEFAULT
        """The zone of the pole's place: where its alarms go."""
        self._last_alarm_at = -float("inf")
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> ButtonAgent:
        try:
            self._place = await self._locate()
            self._home = keys.zone(self.zones.locate(self._place["lon"], self._place["lat"]))
        except BaseException:
            await self._client.aclose()
            raise
        await self.publisher.__aenter__()
        self._tasks = [asyncio.create_task(self._follow())]
        self._tasks += [asyncio.create_task(self._read(i)) for i in self.inputs]
        self._tasks.append(asyncio.create_task(self._heartbeats()))
        if self.conf.http_port >= 0:
            await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await lifecycle.cancel(self._tasks)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.publisher.close()
        await self._client.aclose()

    # --- presses ---------------------------------------------------------------------------
    async def press(self) -> Feedback:
        """One press: a new alarm, unless the last one was raised within ``debounce_s``."""
        async with self._lock:
            now = self.clock()
            self.feedback.presses += 1
            if now - self._last_alarm_at < self.conf.debounce_s:
                self.feedback.debounced += 1
                return self.feedback
            self._last_alarm_at = now
            alarm = wire.Alarm(
                id=f"{self.source}:{round(now * 1000)}",
                type="citizen_sos",
                source=self.source,
                ts=now,
                text="pole alarm button pressed",
                **self._place,
            )
            log.warning("button pressed: alarm %s", alarm.id)
            delivery = await self.publisher.publish(alarm)
            self._update(
                stage="sent" if delivery == "sent" else "queued",
                alarm=alarm.id,
                incident=None,
                state=None,
                units=[],
                pressed=now,
            )
            return self.feedback

    async def changed(self) -> Feedback:
        """Wait for the next feedback change."""
        self._changed.clear()
        await self._changed.wait()
        return self.feedback

    # --- feedback --------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the alarm's incident and its state now."""
        fb = self.feedback
        if fb.alarm is None:
            return
        incident = fb.incident
        if incident is None:
            incident = await self._incident_of(fb.alarm)
            if incident is None:
                if fb.stage == "queued" and self.publisher.pending == 0:
                    self._update(stage="sent")
                return
        state, units, merged = await self._client.hmget(
            records.incident_zone(incident, self.zones).incident(incident),
            ["state", "units", "merged_into"],
        )
        text = _text(state)
        if text == "merged" and merged:
            self._update(incident=_text(merged))  # follow the incident it joined
            return await self.refresh()
        if text is None:
            return
        self._update(
            incident=incident,
            state=text,
            units=[u for u in (_text(units) or "").split(",") if u],
            stage=_STAGES.get(text, fb.stage),
        )

    async def _incident_of(self, alarm_id: str) -> str | None:
        """The incident the alarm went to, if it has one yet (one round trip; a second when
        the home zone's dispatcher routed the alarm to another zone)."""
        home = self._home
        if not self.zones.zoned:
            return records.alarm_incident(await self._client.get(home.alarm(alarm_id)))
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(home.alarm(alarm_id))
            pipe.get(home.alarm_route(alarm_id))
            raw, route = await pipe.execute()
        if raw is None and route is not None:
            raw = await self._client.get(keys.zone(_text(route) or "").alarm(alarm_id))
        return records.alarm_incident(raw)

    def _update(self, **changes: Any) -> None:
        before = msgspec.structs.asdict(self.feedback)
        for name, value in changes.items():
            setattr(self.feedback, name, value)
        if msgspec.structs.asdict(self.feedback) != before:
            log.info("feedback: %s", msgspec.json.encode(self.feedback).decode())
            self._changed.set()
            if self.on_feedback is not None:
                self.on_feedback(self.feedback)

    async def _follow(self) -> None:
        # The loops test for a pending cancellation themselves: redis-py's cluster pub/sub can
        # swallow one that lands during a read and go on reading.
        delay = 0.1
        while not lifecycle.stopping():
            try:
                if isinstance(self._client, RedisCluster):
                    await self._client.initialize()  # its pub/sub needs the slot map first
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(keys.INCIDENT_NOTIFY)
                    delay = 0.1
                    while not lifecycle.stopping():
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=self.conf.poll_s
                        )
                        mine = self.feedback.incident
                        # One incident id, or several separated by spaces (one announcement
                        # per dispatcher batch).
                        announced = (_text(message["data"]) or "").split(" ") if message else []
                        if message is None or mine is None or mine in announced:
                            await self.refresh()
            except UNREACHABLE as exc:
                if lifecycle.stopping():
                    break
                log.warning("feedback: redis unreachable (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise asyncio.CancelledError

    async def _read(self, source: ButtonInput) -> None:
        async for _ in source.presses():
            await self.press()

    async def _heartbeats(self) -> None:
        while True:
            hb = wire.Heartbeat(
                source=self.source, kind="button", status="online", ts=time.time(),
                pole=self.conf.pole,
            )  # fmt: skip
            await self.publisher.heartbeat(hb)
            await asyncio.sleep(self.conf.heartbeat_s)

    async def _locate(self) -> dict[str, Any]:
        conf = self.conf
        place: dict[str, Any] = {"pole": conf.pole, "district": conf.district, "grid": conf.grid}
        if conf.lon is not None and conf.lat is not None:
            return {**place, "lon": conf.lon, "lat": conf.lat}
        pole = await PoleRegistry(self._client, conf.city).get(conf.pole)
        if pole is None:
            raise settings.SettingsError(
                f"pole {conf.pole!r} is not in the {conf.city} registry; set 'lon' and 'lat'"
            )
        return {
            "pole": pole.code,
            "lon": pole.lon,
            "lat": pole.lat,
            "district": conf.district or pole.district,
            "grid": conf.grid or pole.grid,
        }

    # --- HTTP ------------------------------------------------------------------------------
    async def _listen(self) -> None:
        app = web.Application()
        app[_AGENT] = self
        app.router.add_post("/press", _post_press)
        app.router.add_get("/status", _get_status)
        self._runner, self.http_port = await lifecycle.listen(
            app, self.conf.http_host, self.conf.http_port
        )


_AGENT: web.AppKey[ButtonAgent] = web.AppKey("button")


async def _post_press(request: web.Request) -> web.Response:
    feedback = await request.app[_AGENT].press()
    return web.json_response(msgspec.to_builtins(feedback))


async def _get_status(request: web.Request) -> web.Response:
    return web.json_response(msgspec.to_builtins(request.app[_AGENT].feedback))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def serve(conf: ButtonSettings) -> None:
    """Run the button until SIGINT/SIGTERM, printing each feedback change as a JSON line."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def show(fb: Feedback) -> None:
        print(msgspec.json.encode(fb).decode(), flush=True)

    inputs: list[ButtonInput] = [StdinInput()] if conf.stdin else []
    async with ButtonAgent(conf, inputs=inputs, on_feedback=show) as agent:
        if agent.http_port is not None:
            print(f"button {conf.pole}: POST http://{conf.http_host}:{agent.http_port}/press")
        await stop.wait()
