"""The simulated supervisor: follows the command centre's live feed and closes resolved
incidents (only those) with an evaluation 1-5 through the real console API, which is what
fills the demo's incident archive."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from waiting import until_written

from dispatcher import scenario as sc
from gateway.testing import operator_token, served_gateway
from polewatch import keys, wire
from simulators.supervisors import EventStream, Frame, Supervisor, resolved_incidents

LON, LAT = 114.05, 22.55


async def _close_commands(
    client: aioredis.Redis, count: int, within_s: float
) -> list[wire.Command]:
    async def found() -> list[wire.Command] | None:
        entries: Any = await client.xrange(keys.COMMANDS)
        commands = [wire.decode_entry(f, wire.Command) for _, f in entries]
        return commands if len(commands) >= count else None

    commands: list[wire.Command] = await until_written(
        client, keys.COMMANDS, found, f"{count} commands from the supervisor", within_s
    )
    return commands


async def test_the_supervisor_closes_resolved_incidents_with_an_evaluation(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    sc.units_east(sync_redis, LON, LAT, {"near": 200, "next": 600})
    async with served_gateway(redis_url) as (host, port):
        token = operator_token("chief", role="supervisor")
        supervisor = Supervisor(f"http://{host}:{port}", token, seed=3, review_s=(0.0, 0.2))
        stop = asyncio.Event()
        task = asyncio.create_task(supervisor.run(stop))
        try:
            await asyncio.wait_for(supervisor.connected.wait(), 30)
            far = sc.shifted(LON, LAT, north_m=3000)
            await sc.step(redis_url, sync_redis, sc.alarm(LON, LAT), sc.alarm(*far))
            await sc.step(redis_url, sync_redis, sc.status("near", "1", "acknowledged"),
                          sc.status("near", "1", "resolved"))  # fmt: skip
            [close] = await _close_commands(aredis, 1, 30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert (close.op, close.incident, close.actor) == ("close", "1", "chief")
    assert close.evaluation in range(1, 6)
    await sc.step(redis_url, sync_redis)  # the dispatcher closes it
    assert sc.incident(sync_redis, "1").state == "closed"
    assert sc.incident(sync_redis, "2").state == "dispatched"  # still worked: left alone
    assert supervisor.stats.closed == 1


def _event_bytes(frame: Frame) -> bytes:
    lines = [f"event: {frame.event}"] + [f"data: {line}" for line in frame.data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


_names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
_data = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]))
_frames = st.lists(st.builds(Frame, _names, st.lists(_data, min_size=1).map("\n".join)))


@given(_frames, st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_events_split_anywhere_come_out_whole(
    frames: list[Frame], cuts: list[int], comments: bool
) -> None:
    raw = b"".join((b": keep-alive\n\n" if comments else b"") + _event_bytes(f) for f in frames)
    stream = EventStream()
    got: list[Frame] = []
    at = 0
    for cut in sorted({min(c, len(raw)) for c in cuts}) + [len(raw)]:
        got += stream.feed(raw[at:cut])
        at = cut
    assert got == frames


@given(st.lists(st.binary(max_size=200), max_size=10))
def test_any_bytes_from_the_feed_never_raise(chunks: list[bytes]) -> None:
    stream = EventStream()
    for chunk in chunks:
        for frame in stream.feed(chunk):
            assert isinstance(resolved_incidents(frame), list)
