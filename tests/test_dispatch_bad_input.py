"""Bad entries never stop a dispatcher: each is acknowledged and dead-lettered with the reason,
and the good entries of the same batch are still dispatched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from waiting import until_written

from dispatcher import intake
from dispatcher import scenario as sc
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from polewatch import keys, records, wire
from polewatch.settings import SettingsError, load

LON, LAT = 114.05, 22.55


def good_alarm_fields(**changes: object) -> dict[bytes, bytes]:
    body = msgspec.to_builtins(sc.alarm(LON, LAT))
    body.update(changes)
    return {b"m": msgspec.msgpack.encode({k: v for k, v in body.items() if v is not None})}


BAD = {
    "undecodable": {b"m": b"\xc1\xff\x00"},
    "wrong type": good_alarm_fields(lon="east"),
    "impossible coordinates": good_alarm_fields(lat=89.9),
    "out of range": good_alarm_fields(lon=200.0),
    "null island": good_alarm_fields(lon=0.0, lat=0.0),
    "missing field": good_alarm_fields(id=None),
    "no m field": {b"x": b"1"},
}


async def test_bad_entries_are_dead_lettered_and_good_ones_dispatched(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", LON, LAT + 0.01), sc.on_duty("u2", LON, LAT - 0.01)])
    first = sc.alarm(LON, LAT, type="door_forced")
    sc.write(sync_redis, [first])
    bad_ids = [sync_redis.xadd(keys.ALARMS, fields) for fields in BAD.values()]  # type: ignore[arg-type]
    sync_redis.xadd(keys.PATROL_EVENTS, {b"m": b"garbage"})
    sync_redis.xadd(keys.COMMANDS, wire.entry(sc.command("close", "1")))  # no evaluation
    last = sc.alarm(LON + 0.05, LAT, type="intrusion")
    sc.write(sync_redis, [last])

    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, consumer="live", block_ms=50))
    task = asyncio.create_task(dispatcher.run())
    try:
        await until_written(aredis, keys.DEADLETTER, lambda: sync_redis.xlen(keys.DEADLETTER)
                            >= len(BAD) + 2, "every bad entry dead-lettered", 10,
                            alongside=task)  # fmt: skip
        # Still running: a good alarm written now is dispatched too.
        later = sc.alarm(LON - 0.05, LAT, type="crowd")
        sc.write(sync_redis, [later])
        await until_written(aredis, keys.AUDIT, lambda: sync_redis.exists(keys.alarm(later.id)),
                            "the later alarm dispatched", 10, alongside=task)  # fmt: skip
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 5)

    for alarm in (first, last):
        assert sc.incident(
            sync_redis, str(records.alarm_incident(sync_redis.get(keys.alarm(alarm.id))))
        ).units
    dead = {(f[b"stream"], f[b"id"]): f for _, f in sync_redis.xrange(keys.DEADLETTER)}
    for name, entry_id in zip(BAD, bad_ids, strict=True):
        record = dead[keys.ALARMS.encode(), entry_id]
        assert record[b"reason"] and record[b"raw:m" if b"m" in BAD[name] else b"raw:x"], name
        assert record[b"consumer"] == b"live"
    reasons = b" | ".join(f[b"reason"] for f in dead.values())
    for fragment in (b"undecodable", b"impossible coordinates", b"close needs an evaluation",
                     b"no 'm' field", b"Expected `float`"):  # fmt: skip
        assert fragment in reasons
    assert dispatcher.totals["deadletter"] == len(BAD) + 2
    for stream in (keys.ALARMS, keys.PATROL_EVENTS, keys.COMMANDS):
        assert sync_redis.xpending(stream, keys.DISPATCH_GROUP)["pending"] == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([keys.ALARMS, keys.PATROL_EVENTS, keys.COMMANDS]))
def test_intake_never_crashes_on_bytes(data: bytes, stream: str) -> None:
    try:
        out = intake.check(stream, {b"m": data})
    except wire.WireError as exc:
        assert exc.reason
    else:
        assert isinstance(out, bytes)


_value = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20),
    st.lists(st.integers(-(2**63), 2**63), max_size=3),
)  # fmt: skip
_fields = ["k", "v", "id", "type", "source", "ts", "lon", "lat", "unit", "duty", "incident",
           "action", "op", "actor", "evaluation", "other", "capabilities"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(_fields), _value, max_size=10),
    st.sampled_from([keys.ALARMS, keys.PATROL_EVENTS, keys.COMMANDS]),
)
def test_intake_never_crashes_on_maps(body: dict[str, object], stream: str) -> None:
    try:
        out = intake.check(stream, {b"m": msgspec.msgpack.encode(body)})
    except wire.WireError as exc:
        assert exc.reason
    else:
        assert wire.decode(out)  # what goes to Redis is a valid message


def test_invalid_alarm_type_config_fails_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "polewatch.toml"
    config.write_text("[dispatcher.types.intrusion]\npriority = 7\n")
    with pytest.raises(SettingsError, match=r"types.*intrusion.*priority"):
        load(DispatcherSettings, section="dispatcher", config_file=config, env={})
    config.write_text("[dispatcher.types.intrusion]\npriorty = 1\n")
    with pytest.raises(SettingsError, match="priorty"):
        load(DispatcherSettings, section="dispatcher", config_file=config, env={})


def test_alarm_type_config_overrides_and_adds(tmp_path: Path) -> None:
    from dispatcher.priorities import PriorityTable

    config = tmp_path / "polewatch.toml"
    config.write_text(
        "[dispatcher]\nack_timeout_s = 20\n"
        "[dispatcher.types.intrusion]\npriority = 1\nradius_m = 150\n"
        "[dispatcher.types.gunshot]\npriority = 1\nunits = 3\ncapability = 'armed'\n"
    )
    s = load(DispatcherSettings, section="dispatcher", config_file=config, env={})
    table = PriorityTable(s.alarm_types())
    assert s.ack_timeout_s == 20
    assert (table["intrusion"].priority, table["intrusion"].radius_m) == (1, 150)
    assert table["intrusion"].group == "intrusion" and table["tripwire"].priority == 2
    assert (table["gunshot"].units, table["gunshot"].capability) == (3, "armed")
    assert table.group("gunshot") == "gunshot" and table["unheard_of"].priority == 3
    assert table["citizen_sos"].units == 2 and table["citizen_sos"].priority == 1
