"""A batch's entries are acknowledged by the function, and an entry another replica already
acknowledged (it claimed the entry and did the work) is skipped, whatever its stream id.

``pw_batch`` asks ``XPENDING`` over the range from the batch's lowest to its highest id, so it
compares stream ids; ids of different lengths (``9-10`` and ``10-1``) must compare by number.
"""

from __future__ import annotations

from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import library
from dispatcher.priorities import PriorityTable
from dispatcher.settings import DispatcherSettings
from polewatch import keys, wire

_IDS = st.lists(
    st.tuples(st.integers(1, 10**13), st.integers(0, 10**6)), min_size=1, max_size=25, unique=True
)


def _position(n: int) -> bytes:
    return wire.encode(wire.PatrolPosition(unit=f"u{n}", lon=114.0, lat=22.5, ts=1_800_000_000.0))


# (each example starts from an empty stream and group of its own)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=_IDS, data=st.data())
def test_entries_acknowledged_elsewhere_are_skipped_the_others_done_once(
    sync_redis: redis.Redis, ids: list[tuple[int, int]], data: st.DataObject
) -> None:
    stream, group = keys.PATROL_EVENTS, keys.DISPATCH_GROUP
    sync_redis.delete(stream, keys.UNITS)
    sync_redis.function_load(library.source(), replace=True)
    sync_redis.hset(keys.DISPATCH_TYPES, mapping=PriorityTable().packed())  # type: ignore[arg-type]
    sync_redis.xgroup_create(stream, group, id="0", mkstream=True)
    entry_ids = [f"{ms}-{seq}" for ms, seq in sorted(ids)]
    for n, eid in enumerate(entry_ids):
        sync_redis.xadd(stream, {wire.FIELD: _position(n)}, id=eid)
    read: Any = sync_redis.xreadgroup(group, "slow", {stream: ">"}, count=len(ids))
    assert [e.decode() for e, _ in read[0][1]] == entry_ids
    done_elsewhere = data.draw(st.sets(st.sampled_from(entry_ids)))
    if done_elsewhere:
        sync_redis.xack(stream, group, *done_elsewhere)
    order = data.draw(st.permutations(list(enumerate(entry_ids))))
    args: list[Any] = [library.settings_arg(DispatcherSettings(), "slow")]
    for n, eid in order:
        args += [library.PATROL, eid, _position(n)]
    totals = library.counters(sync_redis.fcall(library.BATCH, 0, *args))
    assert totals["skipped"] == len(done_elsewhere)
    assert totals["patrol"] == len(entry_ids) - len(done_elsewhere)
    assert totals["rejected"] == 0
    assert sync_redis.xpending(stream, group)["pending"] == 0
    done = {u.decode() for u in sync_redis.smembers(keys.UNITS)}  # type: ignore[union-attr]
    assert done == {f"u{n}" for n, eid in enumerate(entry_ids) if eid not in done_elsewhere}
