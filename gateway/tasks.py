"""Background tasks owned by the app: started for a block, cancelled and awaited after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable


@contextlib.asynccontextmanager
async def running(work: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    """A background task that lives as long as the block, cancelled and awaited after it."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        # redis-py's pub/sub ``get_message(timeout=...)`` can swallow a cancellation that
        # lands as its timeout fires, so cancel again until the task is really gone.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError):
            await task
