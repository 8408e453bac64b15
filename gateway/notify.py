"""One shared pub/sub listener per gateway process.

Handlers never poll Redis per client: a WebSocket waits for its unit's id on
``keys.UNIT_NOTIFY``, an SSE stream for its incident's id on ``keys.INCIDENT_NOTIFY``. A waiter
registers (:meth:`Notifier.watch`) *before* it reads, clears its flag, reads, then waits; a
publish that lands during the read sets the flag again, so nothing falls between the wake-up
and the read. After a lost pub/sub connection every waiter is woken once, because messages
published while it was down are gone.

A payload is one id or several separated by single spaces (the dispatcher may announce a whole
batch in one PUBLISH); each id wakes its own waiters. A *listener* (:meth:`Notifier.listen`)
is called with every id of a channel instead, and with :data:`ANY` after a reconnect: the
WebSocket fan-out (:mod:`gateway.inboxes`) uses one for all the units of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio as aioredis

from polewatch.connection import RETRY_ERRORS

log = logging.getLogger(__name__)

ANY = "*"
"""Watch every message of a channel, whatever its payload."""


class Notifier:
    """Subscribes to ``channels`` on one connection and wakes the waiters of each payload."""

    def __init__(self, redis: aioredis.Redis, channels: tuple[str, ...]) -> None:
        self.redis = redis
        self.channels = channels
        self.ready = asyncio.Event()
        """Set while the subscription is live."""
        self._waiters: dict[str, dict[str, set[asyncio.Event]]] = {c: {} for c in channels}
        self._listeners: dict[str, list[Callable[[str], None]]] = {c: [] for c in channels}
        self.messages = 0

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(id)`` for every id published on ``channel`` (:data:`ANY` after a
        reconnect, when anything may have been missed)."""
        self._listeners[channel].append(callback)

    @contextlib.contextmanager
    def watch(self, channel: str, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``key`` (or anything, for :data:`ANY`) is published."""
        event = asyncio.Event()
        waiters = self._waiters[channel].setdefault(key, set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters[channel].pop(key, None)

    def watchers(self, channel: str) -> int:
        return sum(len(w) for w in self._waiters[channel].values())

    def _wake(self, channel: str, payload: str) -> None:
        waiters, listeners = self._waiters[channel], self._listeners[channel]
        for key in payload.split(" "):
            for event in waiters.get(key, ()):
                event.set()
            for listener in listeners:
                listener(key)
        for event in waiters.get(ANY, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake every waiter (after a reconnect, and at shutdown so streams can end)."""
        for waiters in self._waiters.values():
            for events in waiters.values():
                for event in events:
                    event.set()
        for listeners in self._listeners.values():
            for listener in listeners:
                listener(ANY)

    def _reconnected(self, connection: object) -> None:
        log.warning("pub/sub connection re-established; every waiter reads again")
        self.wake_all()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing with backoff after connection errors."""
        delay = 0.05
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.channels)
                # redis-py reconnects a dropped subscription by itself (and resubscribes), so
                # the loop below never sees the error: wake everyone on that reconnect too
                connection = getattr(pubsub, "connection", None)
                if connection is not None and hasattr(connection, "register_connect_callback"):
                    connection.register_connect_callback(self._reconnected)
                self.ready.set()
                self.wake_all()  # whatever was published before (re)subscribing is lost
                delay = 0.05
                while True:
                    message: Any = await pubsub.get_message(timeout=30.0)
                    if message is None or message.get("type") != "message":
                        continue
                    channel, data = message["channel"], message["data"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    key = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                    self.messages += 1
                    if channel in self._waiters:
                        self._wake(channel, key)
            except tuple(RETRY_ERRORS) as exc:
                self.ready.clear()
                log.warning("pub/sub connection lost (%s); resubscribing in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
