"""A supervisor in the command centre, simulated: watches the live feed like a person at the
console and closes each resolved incident with an evaluation (1-5) after reading it for a
while, through the real console API. Closed incidents are what the archiver moves to the
incident archive, so with a supervisor at work the demo's archive fills.

It follows ``GET /api/console/live`` (Server-Sent Events, the console's own feed) with a
supervisor token; an audit event ``resolved`` starts the review of its incident, and after a
review time (tens of seconds to a few minutes, shortened by the demo's time scale) it sends
``POST /api/incidents/{id}/close``. A lost feed is reopened after a pause; an incident whose
close is refused (already closed, cancelled by someone else) is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import msgspec

log = logging.getLogger(__name__)

EVALUATIONS: Final = ((5, 0.45), (4, 0.32), (3, 0.13), (2, 0.06), (1, 0.04))
"""How satisfied a supervisor is with the handling of an incident (most are handled well)."""
REVIEW_S: Final = (30.0, 240.0)
"""Time a supervisor takes to read a resolved incident before closing it (real seconds)."""
RECONNECT_S: Final = 2.0
MAX_BUFFER: Final = 8 * 1024 * 1024
"""An unfinished event larger than this is dropped (the feed is broken, not that chatty)."""


class Frame(msgspec.Struct, frozen=True):
    """One Server-Sent Event: its ``event`` name (``message`` when unnamed) and its data."""

    event: str
    data: str


class EventStream:
    """Server-Sent Events from the bytes of a response, in whatever pieces they arrive
    (the WHATWG ``text/event-stream`` rules this feed uses: ``event:``, ``data:``, comments,
    blank line ends an event; undecodable bytes are replaced, never raised)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        """The events completed by ``chunk``."""
        self._buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while (end := self._buffer.find(b"\n\n")) >= 0:
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            frame = _frame(block.decode("utf-8", errors="replace"))
            if frame is not None:
                yield frame
        if len(self._buffer) > MAX_BUFFER:
            self._buffer = b""


def _frame(block: str) -> Frame | None:
    name, data = "message", []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return Frame(name, "\n".join(data)) if data else None


class _Resolved(msgspec.Struct):
    incident: str
    event: str


_audit = msgspec.json.Decoder(list[_Resolved])


def resolved_incidents(frame: Frame) -> list[str]:
    """The incidents an ``audit`` frame reports resolved (none for any other or a bad one)."""
    if frame.event != "audit":
        return []
    try:
        events = _audit.decode(frame.data)
    except msgspec.DecodeError:  # ValidationError included
        return []
    return [e.incident for e in events if e.event == "resolved"]


@dataclass
class SupervisorStats:
    reviewing: int = 0
    closed: int = 0
    refused: int = 0
    failed: int = 0
    evaluations: dict[int, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"  supervisor closed {self.closed} (reviewing {self.reviewing})"


class Supervisor:
    """Close the incidents resolved in the feed of ``gateway_url``, with ``token`` (a
    supervisor's), after a review time divided by ``time_scale``."""

    def __init__(
        self,
        gateway_url: str,
        token: str,
        seed: int,
        *,
        time_scale: float = 1.0,
        review_s: tuple[float, float] = REVIEW_S,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.url = gateway_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(seed)
        self.time_scale = time_scale
        self.review_s = review_s
        self.stats = SupervisorStats()
        self.connected = asyncio.Event()
        """Set while the live feed is open (tests wait on it)."""
        self._seen: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop``; reviews in progress are dropped then (a shift ends)."""
        reviews: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        ended = asyncio.ensure_future(stop.wait())
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as session:
            try:
                while not stop.is_set():
                    follow = asyncio.ensure_future(self._follow(session, reviews))
                    await asyncio.wait({follow, ended}, return_when=asyncio.FIRST_COMPLETED)
                    if not follow.done():  # stopped while the feed was quiet
                        follow.cancel()
                    (outcome,) = await asyncio.gather(follow, return_exceptions=True)
                    if isinstance(outcome, aiohttp.ClientError | OSError):
                        log.info("supervisor: live feed lost (%s); reconnecting", outcome)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), RECONNECT_S)
            finally:
                ended.cancel()
                for task in reviews:
                    task.cancel()
                await asyncio.gather(*reviews, return_exceptions=True)

    async def _follow(
        self, session: aiohttp.ClientSession, reviews: set[asyncio.Task[None]]
    ) -> None:
        async with session.get(f"{self.url}/api/console/live") as resp:
            resp.raise_for_status()
            stream = EventStream()
            self.connected.set()
            try:
                async for chunk in resp.content.iter_any():
                    for frame in stream.feed(chunk):
                        for incident in resolved_incidents(frame):
                            self._review(session, incident, reviews)
            finally:
                self.connected.clear()

    def _review(
        self, session: aiohttp.ClientSession, incident: str, reviews: set[asyncio.Task[None]]
    ) -> None:
        if incident in self._seen:
            return
        self._seen.add(incident)
        task = asyncio.create_task(self._close_later(session, incident))
        reviews.add(task)
        task.add_done_callback(reviews.discard)

    async def _close_later(self, session: aiohttp.ClientSession, incident: str) -> None:
        self.stats.reviewing += 1
        try:
            # a person reading the incident: the delay is the simulated behaviour itself
            await asyncio.sleep(self.rng.uniform(*self.review_s) / self.time_scale)
            evaluation = self.rng.choices([e for e, _ in EVALUATIONS],
                                          [w for _, w in EVALUATIONS])[0]  # fmt: skip
            await self._close(session, incident, evaluation)
        finally:
            self.stats.reviewing -= 1
            self._seen.discard(incident)  # resolved once: its event does not come again

    async def _close(self, session: aiohttp.ClientSession, incident: str, evaluation: int) -> None:
        body: dict[str, Any] = {"evaluation": evaluation}
        try:
            async with session.post(
                f"{self.url}/api/incidents/{incident}/close", json=body
            ) as resp:
                if resp.status == 202:
                    self.stats.closed += 1
                    self.stats.evaluations[evaluation] = (
                        self.stats.evaluations.get(evaluation, 0) + 1
                    )
                else:
                    self.stats.refused += 1
                    log.info("supervisor: closing %s refused: %s", incident, await resp.text())
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.failed += 1
            log.info("supervisor: closing %s failed: %s", incident, exc)
