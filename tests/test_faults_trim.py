"""The stream trimmer (dispatcher/trim.py) cuts only behind the slowest consumer group."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import trim

STREAM = "pw:test:trim"


def fill(client: redis.Redis, count: int) -> list[bytes]:
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(STREAM, {b"m": str(n).encode()})
    return list(pipe.execute())


def entry_ids(client: redis.Redis) -> list[bytes]:
    entries: Any = client.xrange(STREAM)
    return [entry_id for entry_id, _ in entries]


def read(client: redis.Redis, group: str, count: int, ack: int) -> None:
    """``group``'s consumer reads ``count`` entries and acknowledges the first ``ack``."""
    reply: Any = client.xreadgroup(group, "c", {STREAM: ">"}, count=count)
    ids = [entry_id for entry_id, _ in reply[0][1]] if reply else []
    if ack:
        client.xack(STREAM, group, *ids[:ack])


async def test_a_slow_group_holds_the_cut_at_its_oldest_pending_entry(
    sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    ids = fill(sync_redis, 1000)
    for group in ("fast", "slow"):
        sync_redis.xgroup_create(STREAM, group, id="0")
    read(sync_redis, "fast", 1000, ack=1000)
    read(sync_redis, "slow", 700, ack=400)  # 300 pending from ids[400]
    assert await trim.safe_cut(aredis, STREAM, keep_s=0) == ids[400].decode()
    removed = await trim.trim_behind_groups(aredis, [STREAM], keep_s=0)
    left = entry_ids(sync_redis)
    assert left[-600:] == ids[400:], "an entry the slow group needs was trimmed"
    assert removed[STREAM] == 1000 - len(left) >= 300  # whole nodes of 100 below the cut


async def test_unread_entries_and_young_entries_are_kept(
    sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    ids = fill(sync_redis, 500)
    sync_redis.xgroup_create(STREAM, "g", id="0")
    read(sync_redis, "g", 200, ack=200)  # nothing pending; 300 never delivered
    assert await trim.safe_cut(aredis, STREAM, keep_s=0) == _next(ids[199])
    # The retention window wins over the groups: nothing younger than an hour goes.
    assert (await trim.trim_behind_groups(aredis, [STREAM]))[STREAM] == 0
    assert sync_redis.xlen(STREAM) == 500


async def test_a_stream_without_groups_or_at_all_is_left_alone(
    sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    fill(sync_redis, 300)
    assert await trim.trim_behind_groups(aredis, [STREAM, "pw:test:none"], keep_s=0) == {}
    assert sync_redis.xlen(STREAM) == 300


def _next(entry_id: bytes) -> str:
    ms, seq = entry_id.decode().split("-")
    return f"{ms}-{int(seq) + 1}"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=4))
def test_no_group_ever_loses_an_entry_it_still_needs(
    redis_url: str, groups: list[tuple[int, int]]
) -> None:
    """Any mix of groups (read r, acknowledged a <= r): every unacknowledged entry survives."""
    import asyncio

    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)  # the fixture flushed once; each example starts from nothing
    ids = fill(client, 60)
    needed: set[bytes] = set()
    for n, (r, a) in enumerate(groups):
        a = min(a, r)
        client.xgroup_create(STREAM, f"g{n}", id="0")
        if r:
            read(client, f"g{n}", r, ack=a)
        needed |= set(ids[a:])

    async def run() -> None:
        aclient = aioredis.Redis.from_url(redis_url)
        try:
            await trim.trim_behind_groups(aclient, [STREAM], keep_s=0)
        finally:
            await aclient.aclose()

    asyncio.run(run())
    left = set(entry_ids(client))
    assert needed <= left
    client.close()


class AckAfterInfo(aioredis.Redis):
    """A real client that, right after XINFO GROUPS answers, lets ``group`` acknowledge all.

    This is the interleaving seen in runs (a consumer's XACK landing between the trimmer's
    XINFO GROUPS and its XPENDING), made to happen every time instead of by luck.
    """

    group = "g"

    async def xinfo_groups(self, name: Any) -> Any:
        groups = await super().xinfo_groups(name)
        pending = await super().xpending_range(name, self.group, "-", "+", 1000)
        if pending:
            await self.xack(name, self.group, *[p["message_id"] for p in pending])
        return groups


async def test_entries_acknowledged_between_info_and_pending_do_not_break_the_cut(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    ids = fill(sync_redis, 300)
    sync_redis.xgroup_create(STREAM, "g", id="0")
    read(sync_redis, "g", 200, ack=50)  # 150 pending when XINFO GROUPS answers
    client = AckAfterInfo.from_url(redis_url)
    try:
        cut = await trim.safe_cut(client, STREAM, keep_s=0)
    finally:
        await client.aclose()
    assert sync_redis.xpending(STREAM, "g")["pending"] == 0, "the interleaving did not happen"
    # The group was seen with entries pending and delivered up to ids[199]: the cut stays there.
    assert cut == _next(ids[199])
