"""A dispatcher replica deletes from its groups the consumers that are gone (a replica stopped,
or restarted under a new ``<hostname>-<pid>`` name) and hold nothing, so they do not pile up
in ``XINFO CONSUMERS``; one still holding entries stays until they are claimed. Real Redis."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from waiting import until

from dispatcher import scenario as sc
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire


async def consumers(redis: aioredis.Redis, stream: str) -> dict[str, dict[str, Any]]:
    found = await redis.xinfo_consumers(stream, keys.DISPATCH_GROUP)
    return {c["name"].decode() if isinstance(c["name"], bytes) else c["name"]: c for c in found}


async def test_gone_consumers_leave_the_group_and_holders_stay(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    settings = DispatcherSettings(redis_url=redis_url, forget_idle_ms=1)
    replica = Dispatcher(settings, client=aredis, burst=True)
    await replica.prepare()
    # "gone-1" did its entry and stopped, as this replica did one (it never deletes itself);
    # "holding" read an alarm and died with it.
    for name in ("gone-1", replica.consumer):
        done = await aredis.xadd(keys.PATROL_EVENTS, wire.entry(sc.off_duty(name)))  # type: ignore[arg-type]
        await aredis.xreadgroup(keys.DISPATCH_GROUP, name, {keys.PATROL_EVENTS: ">"}, count=1)
        await aredis.xack(keys.PATROL_EVENTS, keys.DISPATCH_GROUP, done)
    await aredis.xadd(keys.ALARMS, wire.entry(sc.alarm(114.05, 22.55)))  # type: ignore[arg-type]
    await aredis.xreadgroup(keys.DISPATCH_GROUP, "holding", {keys.ALARMS: ">"}, count=1)

    async def idle_a_while() -> bool:  # time is the subject: idle >= forget_idle_ms
        found = await consumers(aredis, keys.PATROL_EVENTS)
        return all(int(found[name]["idle"]) >= 1 for name in ("gone-1", replica.consumer))

    await until(idle_a_while, "both idle 1 ms")
    await replica.claim(keys.DEFAULT)
    try:
        assert set(await consumers(aredis, keys.PATROL_EVENTS)) == {replica.consumer}
        holders = await consumers(aredis, keys.ALARMS)
        assert holders["holding"]["pending"] == 1  # its alarm is not lost: it waits for a claim
    finally:
        await replica.ranker.close()
