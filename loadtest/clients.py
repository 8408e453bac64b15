"""Non-HTTP clients of the load test, reporting into locust's statistics with
``events.request``: an edge agent's Redis stream client and a patrol unit's WebSocket.

The patrol socket is where the figure that matters is taken: a :class:`wire.Dispatch` carries
the ``alarm_ts`` of the alarm that caused it, so its arrival at the unit's socket gives the
time from alarm raised to dispatch received (request type ``E2E``, name ``alarm->dispatch``).
Clocks: the load test and the alarm's source must share a clock (one machine, or NTP).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any, Final

import gevent
import redis
import websocket
from locust.event import EventHook

from loadtest.population import redis_client
from loadtest.thresholds import E2E, E2E_NAME, PUSH_NAME
from polewatch import wire

WS: Final = "WS"


def report(hook: EventHook, **sample: Any) -> None:
    """Fire locust's request event (typed wrapper: locust's ``fire`` is untyped)."""
    hook.fire(**sample)  # type: ignore[no-untyped-call]


class StreamClient:
    """Appends wire messages to Redis streams, timing each XADD as a locust request."""

    def __init__(self, url: str, request: EventHook, name: str, *, cluster: bool = False) -> None:
        self.redis = redis_client(url, cluster=cluster, name=name)
        self.request = request

    def append(
        self, stream: str, message: wire.Message, label: str, maxlen: int | None = None
    ) -> None:
        fields: Any = wire.entry(message)
        started = time.perf_counter()
        exception: Exception | None = None
        try:
            self.redis.xadd(stream, fields, maxlen=maxlen, approximate=maxlen is not None)
        except redis.RedisError as exc:
            exception = exc
        report(
            self.request,
            request_type="XADD",
            name=label,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(fields[wire.FIELD]),
            exception=exception,
            context={},
        )

    def close(self) -> None:
        self.redis.close()


class PatrolSocket:
    """A unit's WebSocket: frames out (each timed until the gateway's ``ok``), inbox in.

    ``on_inbox(message)`` is called (in the receiving greenlet) for each inbox message; a lost
    connection is resumed from the last inbox id seen, exactly like the patrol app.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        request: EventHook,
        on_inbox: Callable[[dict[str, Any]], None],
    ) -> None:
        self.url = base_url.replace("http", "ws", 1).rstrip("/") + "/api/patrol/ws"
        self.token = token
        self.request = request
        self.on_inbox = on_inbox
        # Start after "now": a unit reused from an earlier run must not replay old dispatches.
        self.last = f"{int(time.time() * 1000)}-0"
        self.ws: websocket.WebSocket | None = None
        self.closing = False
        self.dispatches = 0
        self._refs = itertools.count(1)
        self._sent: dict[int, tuple[str, float]] = {}
        self._reader: gevent.Greenlet[Any, Any] | None = None

    def connect(self) -> None:
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(
                f"{self.url}?token={self.token}&last={self.last}", timeout=30
            )
            self._fire("connect", started, None)
        except (OSError, websocket.WebSocketException) as exc:
            self._fire("connect", started, exc)
            raise
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read)

    def send(self, name: str, frame: dict[str, Any]) -> None:
        """Send a frame; its latency is recorded when the gateway's ``ok`` comes back."""
        if self.closing:  # the user is stopping: work in progress is abandoned, not failed
            return
        ref = next(self._refs)
        self._sent[ref] = (name, time.perf_counter())
        try:
            if self.ws is None:
                raise websocket.WebSocketConnectionClosedException("not connected")
            self.ws.send(json.dumps({**frame, "ref": ref}))
        except (OSError, websocket.WebSocketException) as exc:
            self._fire(name, self._sent.pop(ref)[1], exc)

    def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            self.ws.close()
        if self._reader is not None:
            self._reader.kill(block=False)

    def _read(self) -> None:
        while not self.closing:
            try:
                assert self.ws is not None
                self._frame(json.loads(self.ws.recv()))
            except (OSError, websocket.WebSocketException, ValueError, AssertionError) as exc:
                if self.closing:
                    return
                self._fire("disconnected", time.perf_counter(), exc)
                self._reconnect()

    def _reconnect(self) -> None:
        delay = 0.2
        while not self.closing:
            gevent.sleep(delay)
            try:
                self.ws = websocket.create_connection(
                    f"{self.url}?token={self.token}&last={self.last}", timeout=30
                )
                self._fire("reconnect", time.perf_counter(), None)
                return
            except (OSError, websocket.WebSocketException):
                delay = min(delay * 2, 5.0)

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("ok", "error"):
            sent = self._sent.pop(frame.get("ref") or 0, None)
            if sent is not None:
                error = None if kind == "ok" else RuntimeError(str(frame.get("error")))
                self._fire(sent[0], sent[1], error)
        elif kind == "inbox":
            self.last = str(frame["id"])
            message = frame.get("message") or {}
            if message.get("k") == "dispatch" and message.get("alarm_ts"):
                self.dispatches += 1
                now = time.time()
                self._measure(E2E_NAME, now - float(message["alarm_ts"]), message)
                # The push path alone: written by the dispatcher -> on the unit's socket.
                self._measure(PUSH_NAME, now - float(message["ts"]), message)
            self.on_inbox(message)

    def _measure(self, name: str, seconds: float, message: dict[str, Any]) -> None:
        report(
            self.request,
            request_type=E2E,
            name=name,
            response_time=max(0.0, seconds) * 1000,
            response_length=0,
            exception=None,
            context={"incident": message.get("incident")},
        )

    def _fire(self, name: str, started: float, exception: BaseException | None) -> None:
        report(
            self.request,
            request_type=WS,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )
