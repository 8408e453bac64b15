"""The stored data of issue 15 (an alarm's record holding its body, the alarm list written from
the second alarm on, derived hash fields) and the data an older version left in Redis: every
reader understands both, and the dispatcher goes on from the older data."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from archiver.source import read_incidents
from dispatcher import scenario as sc
from gateway.status import incident_of
from polewatch import keys, records, wire

LON, LAT = 114.05, 22.55


@given(st.binary(max_size=64))
def test_any_record_value_parses(raw: bytes) -> None:
    incident, body = records.alarm_record(raw)
    assert isinstance(incident, str)
    assert body is None or raw.endswith(body)


@given(
    st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), min_size=1),
    st.binary(),
)
def test_a_record_gives_back_its_incident_and_body(incident: str, body: bytes) -> None:
    assert records.alarm_record(incident.encode() + b"\n" + body) == (incident, body)
    assert records.alarm_record(incident) == (incident, None)  # written before issue 15
    assert records.alarm_record(None) == (None, None)


def to_older_layout(client: redis.Redis, alarm_ids: list[str]) -> None:
    """Rewrite incident 1 and its alarms the way the dispatcher stored them before issue 15."""
    for a in alarm_ids:
        incident, body = records.alarm_record(client.get(keys.alarm(a)))
        assert incident is not None and body is not None
        client.set(keys.alarm(a), incident, keepttl=True)
        client.set(keys.alarm_body(a), body, ex=3600)
    t_new: Any = client.hget(keys.incident("1"), "t_new")
    client.hset(keys.incident("1"), mapping={"created": t_new, "group": "intrusion"})
    client.hdel(keys.incident("1"), "t_new")


async def test_readers_and_the_dispatcher_understand_the_older_layout(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    sc.units_east(sync_redis, LON, LAT, {"near": 200, "next": 600})
    first, second = sc.alarm(LON, LAT), sc.alarm(*sc.shifted(LON, LAT, east_m=30))
    await sc.step(redis_url, sync_redis, first, second)
    created = sc.incident(sync_redis).created
    to_older_layout(sync_redis, [first.id, second.id])

    assert sc.incident(sync_redis).created == created
    assert await incident_of(aredis, second.id) == "1"
    detail = await records.read_incident(aredis, "1")
    assert detail is not None and detail.alarm_ids == [first.id, second.id]
    assert detail.alarms == [first, second]
    archived = (await read_incidents(aredis, keys.DEFAULT, ["1"]))["1"]
    assert not isinstance(archived, str) and archived.alarms == [
        wire.encode(first),
        wire.encode(second),
    ]

    totals = await sc.step(redis_url, sync_redis, first)  # a replay is still a duplicate
    assert totals["duplicates"] == 1
    await sc.step(redis_url, sync_redis, sc.command("split", "1", other=second.id))
    assert await incident_of(aredis, second.id) == "2"
    assert sc.incident(sync_redis, "2").first_alarm == second.id
    split = await records.read_incident(aredis, "2")
    assert split is not None and split.alarms == [second]


async def test_a_new_incident_is_stored_once_and_read_whole(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    sc.units_east(sync_redis, LON, LAT, {"near": 200})
    alarm = sc.alarm(LON, LAT)
    await sc.step(redis_url, sync_redis, alarm)
    stored: Any = sync_redis.hgetall(keys.incident("1"))
    assert not {b"created", b"last_ts", b"group"} & set(stored)
    assert not sync_redis.exists(keys.incident_alarms("1"), keys.alarm_body(alarm.id))
    inc = sc.incident(sync_redis)
    assert inc.created == inc.times["new"] and inc.group == "intrusion"
    detail = await records.read_incident(aredis, "1")
    assert detail is not None and detail.alarm_ids == [alarm.id] and detail.alarms == [alarm]
    archived = (await read_incidents(aredis, keys.DEFAULT, ["1"]))["1"]
    assert not isinstance(archived, str) and archived.alarms == [wire.encode(alarm)]
