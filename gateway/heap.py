"""Garbage collection for a process that holds thousands of sockets.

Profiled with 10,000 patrol WebSockets (``polewatch bench fleet``, py-spy and ``gc.callbacks``),
CPython's collector was the gateway's latency: every socket keeps a few objects that live
about one position period (its pending read, its heartbeat timer), so they outlive the young
generations and pile into the old one; a full collection then walks every socket's objects
(0.4-0.6 s with 10,000 sockets, collecting nothing) about every 20 s, and the middle
generation took 20-45 ms every 3 s. Pushes waiting behind those pauses were the p99.

Freezing (:func:`gc.freeze`, constant time) moves everything alive into a generation the
collector never walks; doing it every ``freeze_s`` keeps the young generations small, so
their collections take about a millisecond. Objects that die after being frozen are still
freed by reference counting; only cycles among them (a closed socket's objects) wait for the
full collection that runs every ``full_s`` (unfreeze, collect, freeze again), a pause bounded
by the number of sockets, once in that time instead of every few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import time


async def keep_young_small(freeze_s: float, full_s: float) -> None:
    """Freeze what is alive every ``freeze_s`` and collect everything every ``full_s``, until
    cancelled; the heap is unfrozen again when it ends. ``freeze_s <= 0``: do nothing."""
    if freeze_s <= 0:
        return
    gc.freeze()  # what start-up built (modules, the pole index) is never walked again
    last_full = time.monotonic()
    try:
        while True:
            await asyncio.sleep(freeze_s)
            if full_s > 0 and time.monotonic() - last_full >= full_s:
                gc.unfreeze()
                gc.collect()
                last_full = time.monotonic()
            gc.freeze()
    finally:
        gc.unfreeze()
