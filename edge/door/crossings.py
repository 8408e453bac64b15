"""How a door camera tells the door agent that people crossed the door's line (tailgating).

The video agent (or any people counter) calls :meth:`CrossingReporter.person_crossed` for each
track that crosses the door's tripwire; the reporter posts a ``person_crossed`` event to the
door agent's webhook. In the same process, call ``DoorRules.person_crossed`` instead.
"""

from __future__ import annotations

import logging
from types import TracebackType

import aiohttp

from edge.door.events import Direction

log = logging.getLogger(__name__)


class CrossingReporter:
    """Posts crossings of one door to a door agent (``url``: its base, e.g.
    ``http://10.0.0.5:8470``); an async context manager owning its HTTP session."""

    def __init__(self, url: str, *, controller: str, door: str, timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/") + "/events"
        self.controller = controller
        self.door = door
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.failed = 0

    async def __aenter__(self) -> CrossingReporter:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def person_crossed(self, ts: float, direction: Direction) -> bool:
        """Report one crossing; False (counted, logged) if the door agent did not take it."""
        assert self._session is not None, "use 'async with CrossingReporter(...)'"
        event = {"controller": self.controller, "door": self.door, "event": "person_crossed",
                 "ts": ts, "direction": direction}  # fmt: skip
        try:
            async with self._session.post(self.url, json=event) as resp:
                if resp.status == 200:
                    return True
                reason = (await resp.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = repr(exc)
        self.failed += 1
        log.warning("crossing at door %s not reported: %s", self.door, reason)
        return False
