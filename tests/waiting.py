"""Waiting in tests for what a test means, within a bound that names what did not happen.

Prefer a wait on an event the system announces: a stream growing (:func:`until_written`), the
dispatcher's announcements (:func:`until_announced_sync`), the test's own reader receiving
something (:func:`until_notified`), a process ending (:func:`ending`), a page (Playwright's
``expect``). :func:`until` and :func:`until_sync` look again at a condition every few tens of
milliseconds, for the conditions that nothing announces (another process's database, a socket
that opens). docs/waiting.md says which fits where.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

T = TypeVar("T")
EVERY_S = 0.05  # how often a condition nothing announces is looked at again


async def _value(check: Callable[[], Any]) -> Any:
    result = check()
    return await result if inspect.isawaitable(result) else result


def _alive(alongside: asyncio.Future[Any] | None, what: str) -> None:
    """The work the wait depends on ended: fail now with its reason, not at the bound."""
    if alongside is not None and alongside.done():
        if alongside.cancelled():
            reason = "cancelled"
        else:
            reason = repr(alongside.exception() or alongside.result())
        raise AssertionError(f"{what}: the work it waits on ended ({reason})")


@contextlib.contextmanager
def ending(proc: subprocess.Popen[bytes]) -> Iterator[asyncio.Future[int]]:
    """A future that gets ``proc``'s exit status when it ends (its pidfd turns readable): the
    ``alongside`` of a wait on that process's work."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[int] = loop.create_future()
    fd = os.pidfd_open(proc.pid)

    def readable() -> None:
        loop.remove_reader(fd)
        if not ended.done():
            ended.set_result(proc.wait())

    loop.add_reader(fd, readable)
    try:
        yield ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        ended.cancel()


async def until(
    check: Callable[[], Any],
    what: str = "the condition",
    within_s: float = 15.0,
    *,
    alongside: asyncio.Future[Any] | None = None,
    every_s: float = EVERY_S,
) -> Any:
    """The first true result of ``check`` (plain or async), looked at every ``every_s``.

    Fails naming ``what`` after ``within_s``, or at once when ``alongside`` (the task or process
    whose work the wait depends on: :func:`ending`) ends.
    """
    try:
        async with asyncio.timeout(within_s):
            while not (result := await _value(check)):
                _alive(alongside, what)
                await asyncio.sleep(every_s)  # nothing announces this condition: look again
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None
    return result


def until_sync(
    check: Callable[[], T | None], what: str, within_s: float = 15.0, *, every_s: float = EVERY_S
) -> T:
    """:func:`until` for a test without an event loop."""
    deadline = time.monotonic() + within_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        time.sleep(every_s)  # nothing announces this condition: look again
    return result


async def until_written(
    client: aioredis.Redis,
    stream: str,
    check: Callable[[], Any],
    what: str,
    within_s: float = 15.0,
    *,
    alongside: asyncio.Future[Any] | None = None,
) -> Any:
    """The first true result of ``check`` (plain or async), looked at after each ``stream`` entry.

    For a condition that only changes together with an entry on ``stream`` (the dispatcher writes
    the audit stream with every change of an incident; a refusal goes to the dead letter stream).
    The stream's last id is read before the first check, so an entry written between a check and
    the next ``XREAD BLOCK`` wakes it at once. Fails as :func:`until` does.
    """
    top: Any = await client.xrevrange(stream, count=1)
    last = top[0][0] if top else "0-0"
    try:
        async with asyncio.timeout(within_s):
            while not (result := await _value(check)):
                _alive(alongside, what)
                read = asyncio.ensure_future(client.xread({stream: last}, block=0))
                waited = {read} if alongside is None else {read, alongside}
                try:
                    await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not read.done():
                        read.cancel()
                        await asyncio.gather(read, return_exceptions=True)
                got: Any = read.result() if read.done() and not read.cancelled() else None
                if got:
                    last = got[0][1][-1][0]
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None
    return result


async def until_notified(
    condition: asyncio.Condition, check: Callable[[], T], what: str, within_s: float = 15.0
) -> T:
    """The first true result of ``check``, looked at again each time ``condition`` is notified
    (by the test's own reader of a socket or a feed, after each thing it received)."""
    try:
        async with asyncio.timeout(within_s), condition:
            return await condition.wait_for(check)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None


def until_written_sync(
    client: redis.Redis, stream: str, check: Callable[[], T], what: str, within_s: float = 15.0
) -> T:
    """:func:`until_written` for a test without an event loop."""
    deadline = time.monotonic() + within_s
    top: Any = client.xrevrange(stream, count=1)
    last = top[0][0] if top else "0-0"
    while not (result := check()):
        left_ms = int((deadline - time.monotonic()) * 1000)
        assert left_ms > 0, f"not within {within_s} s: {what}"
        got: Any = client.xread({stream: last}, block=left_ms)
        if got:
            last = got[0][1][-1][0]
    return result


def until_announced_sync(
    client: redis.Redis, channel: str, check: Callable[[], T | None], what: str, within_s: float
) -> T:
    """The first true result of ``check``, looked at again after each message on ``channel`` (the
    dispatcher's announcements, published once a call's writes are done). Subscribed, and the
    subscription confirmed, before the first look: nothing announced after it is missed."""
    deadline = time.monotonic() + within_s
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(channel)
        while not pubsub.get_message(timeout=max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, f"not subscribed to {channel}"
        while not (result := check()):
            left = deadline - time.monotonic()
            assert left > 0, f"not within {within_s} s: {what}"
            pubsub.get_message(timeout=left)
    finally:
        pubsub.close()
    return result
