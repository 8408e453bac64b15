"""An alarm's digest (``library.digest``): the function decides exactly as from the alarm itself.

The dispatcher hands ``pw_batch`` each alarm's fields pre-digested (numbers formatted as the
function would format them) so the function neither decodes the alarm nor formats numbers;
these tests hold the two paths to the same stored data, byte for byte where it is not a time.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import intake, library, workload
from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire

# Lua's own reading of the alarm: what the digest must equal.
_LUA_FORMATS = """
local m, f = cmsgpack.unpack(ARGV[1]), cmsgpack.unpack(ARGV[2])
return {string.format('%.17g', m.lon), string.format('%.17g', m.lat),
        string.format('%.6f', m.ts), tostring(f[3] == m.lon and f[4] == m.lat and f[5] == m.ts)}
"""

# Fields that hold the time of a call (two runs differ there and only there).
_TIMES = {"ts", "ack_by", "seen"}


def _alarm(n: int, **kw: Any) -> wire.Alarm:
    base: dict[str, Any] = {"type": "citizen_sos", "lon": 114.0579, "lat": 22.5431}
    return wire.Alarm(**{"id": f"d-{n}", "source": "test", "ts": 1_800_000_000.25, **base, **kw})


# (the client is only read through: nothing carries over between examples)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lon=st.floats(-180, 180, allow_nan=False),
    lat=st.floats(-90, 90, allow_nan=False),
    ts=st.floats(0, 4e9, allow_nan=False),
)
def test_the_digest_formats_numbers_as_the_function_does(
    sync_redis: redis.Redis, lon: float, lat: float, ts: float
) -> None:
    alarm = _alarm(0, lon=lon, lat=lat, ts=ts)
    flat = library.digest(alarm)
    assert flat is not None
    fields = msgpack.unpackb(flat)
    lua: Any = sync_redis.eval(_LUA_FORMATS, 0, wire.encode(alarm), flat)
    assert [x.decode() for x in lua] == [fields[5], fields[6], fields[7], "true"]


def test_a_far_caller_is_decoded_by_the_function() -> None:
    far = _alarm(1, extra={"caller_far_m": 420.5})
    assert library.alarm_triples(wire.encode(far)) == [library.ALARM, b"", wire.encode(far)]
    near = wire.encode(_alarm(2))
    assert library.alarm_triples(near, b"1-0")[:4] == [library.ALARM, b"1-0", near,
                                                       library.DIGEST]  # fmt: skip


_ENTRY_BODIES = st.one_of(
    st.builds(lambda lon, lat, ts, far, grid: msgspec.to_builtins(_alarm(
        0, lon=lon, lat=lat, ts=ts, grid=grid, extra={"caller_far_m": 9.5} if far else {})),
        st.floats(-180, 180), st.floats(-85, 85), st.floats(0, 4e9), st.booleans(),
        st.none() | st.sampled_from(["g1", "g2"])),
    st.dictionaries(st.sampled_from(["id", "type", "lon", "lat", "ts", "source", "k", "unit"]),
                    st.none() | st.integers(-5, 5) | st.floats() | st.text(max_size=5)),
)  # fmt: skip


def _validate(
    entries: list[intake.Entry],
) -> tuple[list[tuple[intake.Entry, bytes]], list[intake.Rejected]]:
    """The reference: each entry checked on its own (intake.check)."""
    good: list[tuple[intake.Entry, bytes]] = []
    bad: list[intake.Rejected] = []
    for entry in entries:
        try:
            good.append((entry, intake.check(entry.stream, entry.fields)))
        except wire.WireError as exc:
            bad.append(intake.Rejected(entry, exc.reason))
    return good, bad


@settings(max_examples=150, deadline=None)
@given(bodies=st.lists(st.tuples(st.sampled_from([0, 1, 2]), _ENTRY_BODIES), max_size=8))
def test_one_decode_per_entry_makes_what_validate_and_arguments_make(
    bodies: list[tuple[int, dict[str, Any]]],
) -> None:
    streams = [keys.ALARMS, keys.PATROL_EVENTS, keys.COMMANDS]
    entries = [intake.Entry(streams[s], f"{i}-0".encode(), {b"m": msgspec.msgpack.encode(b)})
               for i, (s, b) in enumerate(bodies)]  # fmt: skip
    checked = intake.checked(entries)
    good, bad = _validate(entries)
    assert (checked.good, checked.bad) == (good, bad)
    assert checked.args == intake.arguments(good)
    alarms = [wire.decode(p) for e, p in good if e.is_alarm]
    assert checked.places == [(a.lon, a.lat) for a in alarms if isinstance(a, wire.Alarm)]


def _normal(packed: bytes) -> Any:
    """A packed message less its times; anything else (an alarm id) as it is."""
    try:
        value = msgpack.unpackb(packed)
    except ValueError:
        return packed
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _TIMES}
    return value


def _snapshot(client: Any) -> dict[bytes, Any]:
    """Every key's content, less what holds a time (stream ids, t_* fields, scores...)."""
    out: dict[bytes, Any] = {}
    for name in client.scan_iter(count=1000):
        kind = client.type(name)
        if kind == b"hash":
            h = client.hgetall(name)
            out[name] = {k: v for k, v in h.items() if not k.startswith(b"t_") and k != b"seen"}
        elif kind == b"string":
            out[name] = client.get(name)
        elif kind == b"list":
            out[name] = [_normal(x) for x in client.lrange(name, 0, -1)]
        elif kind == b"stream":
            out[name] = [_normal(f[b"m"]) for _, f in client.xrange(name)]
        elif kind == b"zset":
            out[name] = sorted(client.zrange(name, 0, -1))
        elif kind == b"set":
            out[name] = sorted(client.smembers(name))
    return out


async def test_decisions_with_and_without_digests_are_the_same(
    aredis: aioredis.Redis, sync_redis: redis.Redis
) -> None:
    places, _ = workload.city(3_000, seed=1)
    plan = workload.alarm_plan(places, 240, seed=2)
    units = workload.unit_events(places, 120, seed=3)
    now = 1_800_000_000.0
    alarms = [workload.make_alarm(t, n, now + n * 0.01) for n, t in enumerate(plan)]
    alarms += [
        _alarm(1, text="门口有人\n倒地", pole=None, district=None),
        _alarm(2, grid="g-1", extra={"caller_far_m": 420.5}),
        _alarm(1, text="a replay of d-1"),
    ]
    conf = library.settings_arg(DispatcherSettings(), "digest")
    snapshots = []
    for digested in (False, True):
        await workload.reset(aredis, PriorityTable(), units)
        args: list[bytes] = []
        for alarm in alarms:
            raw = wire.encode(alarm)
            args += library.alarm_triples(raw) if digested else [library.ALARM, b"", raw]
        assert (library.DIGEST in args) == digested
        counts = library.counters(await aredis.fcall(library.BATCH, 0, conf, *args))
        assert counts["duplicates"] == 1 and counts["rejected"] == 0
        assert counts["dispatched"] > 100 and counts["merged"] > 10
        snapshots.append(_snapshot(sync_redis))
    assert snapshots[0] == snapshots[1]
