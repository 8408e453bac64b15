"""The publisher: alarms, snapshots, heartbeats and frames reach Redis in order, from the loop
and from worker threads."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import msgpack
import pytest
import redis

from edge.publisher import AlarmPublisher
from edge.spool import FileSpool, MemorySpool, SpoolError
from edge.testing import alarm, alarm_ids, alarms, heartbeat, until
from polewatch import keys, wire
from polewatch.embedded import EmbeddedRedis


async def test_publish_lands_on_the_alarm_stream_in_order(redis_url: str, sync_redis: redis.Redis):
    async with AlarmPublisher(redis_url, name="t") as pub:
        outcomes = await asyncio.gather(*(pub.publish(alarm(i)) for i in range(50)))
    assert set(outcomes) == {"sent"}
    assert alarm_ids(sync_redis) == [f"t-{i}" for i in range(50)]
    # a non-Python consumer can read the entry with plain msgpack
    _, fields = sync_redis.xrange(keys.ALARMS, count=1)[0]
    assert msgpack.unpackb(fields[b"m"])["id"] == "t-0"


async def test_snapshot_is_stored_with_a_ttl_and_named_by_the_alarm(
    redis_url: str, sync_redis: redis.Redis
):
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"
    async with AlarmPublisher(redis_url, name="t", snapshot_ttl_s=600) as pub:
        assert await pub.publish(alarm(1), snapshot=jpeg) == "sent"
    (stored,) = alarms(sync_redis)
    assert stored.snapshot == "t-1"
    assert sync_redis.get(keys.snapshot("t-1")) == jpeg
    assert 590 < sync_redis.ttl(keys.snapshot("t-1")) <= 600


async def test_worker_threads_submit_safely(redis_url: str, sync_redis: redis.Redis):
    async with AlarmPublisher(redis_url, name="t") as pub:

        def worker(base: int) -> list[str]:
            futures = [pub.submit(alarm(base + i)) for i in range(25)]
            return [f.result(timeout=10) for f in futures]

        results = await asyncio.gather(*(asyncio.to_thread(worker, b * 100) for b in range(4)))
        await pub.drained(10)
    assert all(r == ["sent"] * 25 for r in results)
    ids = alarm_ids(sync_redis)
    assert sorted(ids) == sorted(f"t-{b * 100 + i}" for b in range(4) for i in range(25))
    for b in range(4):  # each thread's own alarms stay in its order
        mine = [i for i in ids if int(i[2:]) // 100 == b]
        assert mine == [f"t-{b * 100 + i}" for i in range(25)]


async def test_heartbeats_and_frames(redis_url: str, sync_redis: redis.Redis):
    done = threading.Event()
    async with AlarmPublisher(redis_url, name="t") as pub:
        assert await pub.heartbeat(heartbeat(1)) == "sent"
        assert await pub.frame("cam-1", b"jpeg-1", ttl_s=5)
        await asyncio.to_thread(lambda: (pub.submit_frame("cam-2", b"jpeg-2"), done.set()))
        pub.submit_heartbeat(heartbeat(2))  # fire and forget is allowed
        await pub.drained(5)
        await until(lambda: sync_redis.get(keys.camera_frame("cam-2")))
    (_, f1), (_, f2) = sync_redis.xrange(keys.HEARTBEATS)
    assert wire.decode_entry(f1, wire.Heartbeat).ts == 2.0
    assert wire.decode_entry(f2, wire.Heartbeat).ts == 3.0
    assert sync_redis.get(keys.camera_frame("cam-1")) == b"jpeg-1"
    assert 0 < sync_redis.ttl(keys.camera_frame("cam-1")) <= 5
    assert sync_redis.get(keys.camera_frame("cam-2")) == b"jpeg-2"
    assert done.is_set()


async def test_frames_are_dropped_not_spooled_when_redis_is_away(tmp_path):
    async with AlarmPublisher("redis://127.0.0.1:1/0", name="t") as pub:
        assert not await pub.frame("cam-1", b"x")
        assert pub.stats.frames_dropped == 1
        assert await pub.publish(alarm(1)) == "spooled"
        assert pub.pending == 1 and not pub.connected


def test_submit_before_start_is_an_error(redis_url: str):
    pub = AlarmPublisher(redis_url, name="t")
    try:
        pub.submit(alarm(1))
    except RuntimeError as exc:
        assert "not started" in str(exc)
    else:
        raise AssertionError("submit() before start must fail")


class FullDisk(MemorySpool):
    def append(self, records):
        raise OSError(28, "No space left on device")


async def test_an_unwritable_spool_is_reported_never_silent(caplog):
    async with AlarmPublisher("redis://127.0.0.1:1/0", name="t", spool=FullDisk()) as pub:
        with pytest.raises(SpoolError, match="not sent and not spooled"):
            await pub.publish(alarm(7))
        assert pub.stats.lost == 1
        assert await pub.frame("c", b"x") is False  # the writer loop is still alive
    assert "alarms ['t-7']" in caplog.text


async def test_frames_from_a_fast_camera_never_pile_up(redis_url: str, sync_redis: redis.Redis):
    async with AlarmPublisher(redis_url, name="t") as pub:
        await asyncio.to_thread(lambda: [pub.submit_frame("cam-9", b"f%d" % i) for i in range(200)])
        await until(lambda: pub.stats.frames + pub.stats.frames_dropped == 200)
        assert pub.stats.frames >= 1
    assert sync_redis.get(keys.camera_frame("cam-9")).startswith(b"f")


async def test_stopping_in_the_middle_of_a_write_keeps_the_batch(
    make_redis: type[EmbeddedRedis], tmp_path: Path
) -> None:
    server = make_redis(tmp_path / "redis", appendonly=False).start()
    assert server.process is not None
    pub = AlarmPublisher(server.url, name="t", spool=FileSpool(tmp_path / "spool"))
    await pub.__aenter__()
    assert await pub.publish(alarm(0)) == "sent"
    os.kill(server.process.pid, signal.SIGSTOP)  # Redis hangs: the next write never returns
    try:
        delivery = pub.submit(alarm(1))
        await until(lambda: pub.pending == 0)  # taken by the writer, not confirmed
        assert not delivery.done()
        await pub.close(drain_s=0)
        assert delivery.result(timeout=0) == "spooled"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    kept = FileSpool(tmp_path / "spool")
    assert [r.message.id for _, r in kept.peek(10)] == ["t-1"]
    kept.close()
