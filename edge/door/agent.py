"""The access-control agent: door events in (webhook, TCP JSON lines), door alarms out.

:class:`DoorAgent` is an async context manager owning its publisher, its two listeners and
its two background loops (rule ticks, heartbeats); the clock is a parameter so tests drive
time. :func:`serve` runs it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from edge import lifecycle
from edge.door import config as door_config
from edge.door.config import Door, DoorSettings
from edge.door.events import MAX_BODY, MAX_LINE, DoorEvent, DoorEventError, decode, decode_many
from edge.door.osdp import OsdpBus
from edge.door.rules import DoorRules
from edge.publisher import AlarmPublisher
from edge.spool import FileSpool, MemorySpool, Store
from polewatch import connection, wire
from polewatch.poles.registry import PoleRegistry

log = logging.getLogger(__name__)

AGENT_KEY: web.AppKey[DoorAgent] = web.AppKey("agent")


class DoorAgent:
    """One agent process's doors, rules, listeners and publisher."""

    def __init__(
        self,
        conf: DoorSettings,
        *,
        publisher: AlarmPublisher | None = None,
        clock: Callable[[], float] = time.time,
        background: bool = True,
        osdp_channels: dict[str, Any] | None = None,
    ) -> None:
        door_config.check(conf)
        self.conf = conf
        self.clock = clock
        self.background = background
        """False: no tick/heartbeat loops (tests call :meth:`tick` with their own clock)."""
        self.publisher = publisher or AlarmPublisher.from_settings(
            conf, name=conf.name, spool=_spool(conf)
        )
        self.rules: DoorRules | None = None
        self.events = 0
        self.rejected = 0
        self.alarms = 0
        self.http_port: int | None = None
        self.tcp_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._osdp_channels = osdp_channels
        self.osdp: OsdpBus | None = None
        self._handoffs: set[asyncio.Task[list[wire.Alarm]]] = set()

    # --- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> DoorAgent:
        doors = await self._locate(self.conf.doors)
        self.rules = DoorRules(doors, door_config.controllers(self.conf), start=self.clock())
        await self.publisher.__aenter__()
        try:
            if self.conf.osdp:
                controllers = {d.id: d.controller for d in doors}
                self.osdp = OsdpBus(
                    self.conf.osdp, controllers, self._from_osdp, channels=self._osdp_channels
                )
                self.osdp.start()
            await self._listen()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        if self.background:
            self._tasks = [
                asyncio.create_task(self._every(self.conf.tick_s, self.tick)),
                asyncio.create_task(self._every(self.conf.heartbeat_s, self.heartbeat)),
            ]
        log.info("door agent: %d doors, http %s, tcp %s", len(doors), self.http_port, self.tcp_port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await lifecycle.cancel(self._tasks)
        if self.osdp is not None:
            await asyncio.to_thread(self.osdp.stop)  # joins libosdp's polling threads
            self.osdp = None
        if self._handoffs:
            await asyncio.wait(self._handoffs)
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.publisher.close()

    # --- the work --------------------------------------------------------------------------
    async def accept(self, events: list[DoorEvent]) -> list[wire.Alarm]:
        """Run events through the rules and publish what they raise."""
        assert self.rules is not None, "DoorAgent is not started"
        raised: list[wire.Alarm] = []
        for ev in events:
            self.events += 1
            raised += self.rules.event(ev, self.clock())
        await self._publish(raised)
        return raised

    async def tick(self) -> list[wire.Alarm]:
        """Evaluate the time-based rules now."""
        assert self.rules is not None, "DoorAgent is not started"
        now = self.clock()
        if self.osdp is not None:  # an online OSDP reader is its controller's heartbeat
            for ev in self.osdp.heartbeats(now):
                self.rules.event(ev, now)
        raised = self.rules.tick(now)
        await self._publish(raised)
        return raised

    async def heartbeat(self) -> None:
        """The agent's heartbeat, and one per controller (``online``/``offline``)."""
        now = time.time()
        await self.publisher.heartbeat(
            wire.Heartbeat(source=self.conf.name, kind="door_agent", status="online", ts=now)
        )
        offline = self.rules.offline() if self.rules else set()
        for ctl in door_config.controllers(self.conf):
            status: wire.HeartbeatStatus = "offline" if ctl in offline else "online"
            await self.publisher.heartbeat(
                wire.Heartbeat(source=f"controller:{ctl}", kind="door_controller",
                               status=status, ts=now)
            )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """Counters for ``GET /status`` and logs."""
        rules = self.rules
        return {
            "events": self.events,
            "rejected": self.rejected,
            "alarms": self.alarms,
            "suppressed": rules.suppressed if rules else 0,
            "unknown": rules.unknown if rules else 0,
            "pending": self.publisher.pending,
            "redis": "up" if self.publisher.connected else "down",
        }

    async def _publish(self, alarms: list[wire.Alarm]) -> None:
        for alarm in alarms:
            log.warning("door alarm %s: %s", alarm.type, alarm.text)
            await self.publisher.publish(alarm)
        self.alarms += len(alarms)

    def _from_osdp(self, events: list[DoorEvent]) -> None:
        task = asyncio.create_task(self.accept(events))
        self._handoffs.add(task)
        task.add_done_callback(self._handoffs.discard)

    def _reject(self, where: str, reason: str) -> None:
        self.rejected += 1
        log.warning("door event rejected (%s): %s", where, reason)

    async def _every(self, period_s: float, job: Callable[[], Any]) -> None:
        while True:
            try:
                await job()
            except Exception:
                log.exception("door agent: periodic job failed")
            await asyncio.sleep(period_s)

    async def _locate(self, doors: list[Door]) -> list[Door]:
        if all(d.lon is not None and d.lat is not None for d in doors):
            return doors
        client = connection.connect(
            self.conf.redis_url, name=f"{self.conf.name}:poles", cluster=self.conf.redis_cluster
        )
        try:
            return await door_config.locate(doors, PoleRegistry(client, self.conf.city).get)
        finally:
            await client.aclose()

    # --- listeners -------------------------------------------------------------------------
    async def _listen(self) -> None:
        host = self.conf.http_host
        if self.conf.http_port >= 0:
            app = web.Application(client_max_size=MAX_BODY)
            app[AGENT_KEY] = self
            app.router.add_post("/events", _post_events)
            app.router.add_get("/status", _get_status)
            self._runner, self.http_port = await lifecycle.listen(app, host, self.conf.http_port)
        if self.conf.tcp_port >= 0:
            self._tcp = await asyncio.start_server(
                self._serve_lines, host, self.conf.tcp_port, limit=MAX_LINE
            )
            self.tcp_port = self._tcp.sockets[0].getsockname()[1]

    async def _serve_lines(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = str(writer.get_extra_info("peername"))
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE: the rest of the stream is unframed
                    self._reject(peer, f"line longer than {MAX_LINE} bytes")
                    await _reply(writer, {"ok": False, "error": f"line longer than {MAX_LINE}"})
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    ev = decode(line)
                except DoorEventError as exc:
                    self._reject(peer, exc.reason)
                    await _reply(writer, {"ok": False, "error": exc.reason})
                    continue
                raised = await self.accept([ev])
                await _reply(writer, {"ok": True, "alarms": [a.id for a in raised]})
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _post_events(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    body = await request.read()
    try:
        events = decode_many(body)
    except DoorEventError as exc:
        agent._reject(str(request.remote), exc.reason)  # noqa: SLF001
        return web.json_response({"error": exc.reason}, status=400)
    raised = await agent.accept(events)
    return web.json_response({"accepted": len(events), "alarms": [a.id for a in raised]})


async def _get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[AGENT_KEY].status())


async def _reply(writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
    writer.write(json.dumps(body).encode() + b"\n")
    await writer.drain()


def _spool(conf: DoorSettings) -> Store:
    return FileSpool(Path(conf.spool_dir)) if conf.spool_dir else MemorySpool()


async def serve(conf: DoorSettings) -> None:
    """Run the agent until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with DoorAgent(conf):
        await stop.wait()
