"""A ``pw_batch`` call packed for the wire ahead of time.

redis-py packs a command's arguments when it sends them, about 5 us of Python per alarm (a
batch's call has six to nine arguments per alarm): time in which Redis waits for the next
call. A replica packs batch n+1's call (RESP) while Redis runs batch n's, all but the alarms'
road shortlists, which are packed when it is sent (they lose the units batch n took:
:mod:`dispatcher.shortlist`), and writes it on a connection of the client's pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import redis.asyncio as aioredis

from dispatcher import intake
from dispatcher.library import ALARM, BATCH
from dispatcher.shortlist import RANK, Ranked

T = TypeVar("T")


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


_RANK_HEAD = _bulk(RANK) + _bulk(b"")


class Command:
    """``FCALL pw_batch 1 <key> <settings> <entries...>`` as RESP, but for the shortlists."""

    def __init__(self, key: str, conf: bytes, ranked: Ranked) -> None:
        self._ranked = ranked
        args, ranks = ranked.args, ranked.lists
        count = 5 + len(args) + (3 * len(ranks) if ranks is not None else 0)
        head = b"*%d\r\n" % count + b"".join(
            _bulk(a) for a in (b"FCALL", BATCH.encode(), b"1", key.encode(), conf)
        )
        bulks = [b"$%d\r\n%b\r\n" % (len(a), a) for a in args]
        alarms = [] if ranks is None else [i for i in range(0, len(args), 3) if args[i] == ALARM]
        self._runs: list[bytes] = []
        """The packed arguments between two shortlists (each alarm's goes before it)."""
        start = 0
        for at in alarms:
            self._runs.append(head + b"".join(bulks[start:at]) + _RANK_HEAD)
            head, start = b"", at
        self._runs.append(head + b"".join(bulks[start:]))

    def packed(self) -> list[bytes]:
        """The command as of now (:meth:`Ranked.arguments`), in pieces to write in order."""
        if self._ranked.lists is None:
            return self._runs
        out = [self._runs[0]]
        for ranked, run in zip(self._ranked.lists.packed(), self._runs[1:], strict=True):
            out += (_bulk(ranked), run)
        return out


async def call(
    client: aioredis.Redis, command: Command, written: asyncio.Event | None = None
) -> Any:
    """Write ``command`` on a connection of ``client``'s pool (then set ``written``) and read
    its reply (an error reply raises, as redis-py's calls do). A failure closes the
    connection: it may hold a reply never read."""
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(command.packed(), check_health=False)
        if written is not None:
            written.set()
        return await connection.read_response()
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)


class Batch(NamedTuple):
    """A batch read, checked and ranked (``Dispatcher._prepare``), to be sent."""

    good: list[tuple[intake.Entry, bytes]]
    bad: list[intake.Rejected]
    ranked: Ranked
    packed: Command | None
    """Its call, packed but for the shortlists (``None``: made through redis-py)."""
    replay: bool
    prepared_s: float


async def started(send: Callable[[asyncio.Event], Awaitable[T]]) -> asyncio.Future[T]:
    """``send(written)`` under way, once it has set ``written`` (its call is on the wire) or
    ended: the caller's work comes after the call is written."""
    written = asyncio.Event()
    sending = asyncio.ensure_future(send(written))
    waiting = asyncio.ensure_future(written.wait())
    try:
        await asyncio.wait((sending, waiting), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        sending.cancel()
        raise
    finally:
        waiting.cancel()
    return sending


class Idle:
    """The replica's process CPU between a call's reply and its next call's write, while
    Redis waits for it (:attr:`cpu_s`; ``polewatch bench dispatch`` reports it per alarm),
    the wall time of those gaps (:attr:`wall_s`) and when the first call was written."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.first_written: float | None = None
        """``time.perf_counter()`` when the loop's first call was written."""
        self._since: tuple[float, float] | None = None

    def replied(self) -> None:
        """A call's reply is in."""
        self._since = (time.process_time(), time.perf_counter())

    def written(self) -> None:
        """The next call is written (or failed)."""
        if self.first_written is None:
            self.first_written = time.perf_counter()
        if self._since is not None:
            cpu, wall = self._since
            self.cpu_s += time.process_time() - cpu
            self.wall_s += time.perf_counter() - wall
            self._since = None
