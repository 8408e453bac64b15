"""A batch's call packed ahead of time (dispatcher/command.py): the bytes are those redis-py
would write for the same call, also once the shortlists lost units taken since they were
made; a call waits for nothing but its own write before the replica's next work."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from dispatcher import command, freeunits, library
from dispatcher.shortlist import Ranked, Shortlists

CODES = [library.ALARM, library.PATROL, library.COMMAND]


def redis_py_bytes(key: str, conf: bytes, args: list[bytes]) -> bytes:
    return b"".join(Connection().pack_command("FCALL", library.BATCH, 1, key, conf, *args))


@settings(max_examples=100, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.sampled_from(CODES), st.binary(max_size=12), st.binary(max_size=300),
                  st.none() | st.binary(min_size=1, max_size=40)),
        max_size=12,
    ),
    ranked=st.booleans(),
    taken=st.lists(st.integers(0, 7), max_size=8),
)  # fmt: skip
def test_a_packed_call_is_what_redis_py_writes(
    entries: list[tuple[bytes, bytes, bytes, bytes | None]], ranked: bool, taken: list[int]
) -> None:
    args: list[bytes] = []
    for code, eid, payload, digest in entries:
        args += (code, eid, payload)
        if code == library.ALARM and digest is not None:
            args += (library.DIGEST, b"", digest)
    alarms = [i for i in range(0, len(args), 3) if args[i] == library.ALARM]
    lists = None
    if ranked:  # every alarm's list names units 0-7 of a copy, fastest first
        copy = freeunits.FreeUnits([f"u{i}".encode() for i in range(8)], np.arange(8.0), 0.0)
        lists = Shortlists([b"\x80"] * len(alarms), copy, keep=3)
        for place in range(len(alarms)):
            units = np.roll(np.arange(8), place)
            lists.add(place, units, [float(t) for t in range(8)], [10.0 * t for t in range(8)], 9)
    call = command.Command("pw:alarms", b"conf", Ranked(args, lists))
    assert b"".join(call.packed()) == redis_py_bytes("pw:alarms", b"conf", Ranked(args, lists)
                                                     .arguments())  # fmt: skip
    if lists is not None and alarms and taken:
        before = b"".join(call.packed())
        assert copy.take([f"u{i}" for i in taken])  # taken since: the lists lose them
        after = b"".join(call.packed())
        assert after == redis_py_bytes("pw:alarms", b"conf", Ranked(args, lists).arguments())
        kept = {int(u) for place in range(len(alarms)) for u in np.roll(np.arange(8), place)[:3]}
        assert (after != before) == bool(kept & set(taken))  # repacked when a list named one


async def test_the_next_work_waits_for_the_write_only() -> None:
    go_on = asyncio.Event()

    async def send(written: asyncio.Event) -> str:
        written.set()  # on the wire; the reply comes later
        await go_on.wait()
        return "reply"

    sending = await command.started(send)
    assert not sending.done()  # the caller works while the call runs
    go_on.set()
    assert await sending == "reply"

    async def broken(written: asyncio.Event) -> str:
        raise ConnectionError("Redis is gone")  # before writing anything

    failed = await command.started(broken)  # returns: it does not wait for a write forever
    with pytest.raises(ConnectionError):
        await failed
