"""Store-and-forward: with Redis down alarms go to disk and come back in order, exactly once,
across a Redis restart and across an agent crash; the spool stays bounded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import redis

from edge.publisher import AlarmPublisher
from edge.spool import FileSpool, Record
from edge.testing import alarm, alarm_ids, heartbeat
from polewatch.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_outage_alarms_arrive_once_in_order_when_redis_returns(
    make_redis: type[EmbeddedRedis], tmp_path: Path
):
    port = free_port()
    server = make_redis(tmp_path / "redis", port=port).start()
    spool = FileSpool(tmp_path / "spool")
    async with AlarmPublisher(server.url, name="t", spool=spool, retry_cap_s=0.2) as pub:
        assert [await pub.publish(alarm(i)) for i in range(3)] == ["sent"] * 3
        server.stop()  # SIGTERM: the AOF keeps the first three
        outcomes = [await pub.publish(alarm(i), snapshot=b"jpg") for i in range(3, 10)]
        assert outcomes == ["spooled"] * 7
        assert not pub.connected and len(spool) == 7
        assert sorted(os.listdir(tmp_path / "spool"))[-1].startswith("spool-")

        server = make_redis(tmp_path / "redis", port=port).start()
        # raised after Redis is back but while the spool is still full: behind the spool
        late = [pub.publish(alarm(i)) for i in range(10, 13)]
        await pub.drained(15)
        assert {await f for f in late} <= {"sent", "spooled"}
    client = redis.Redis.from_url(server.url)
    try:
        assert alarm_ids(client) == [f"t-{i}" for i in range(13)]
        assert client.get("pw:snapshot:t-5") == b"jpg"
    finally:
        client.close()
    assert pub.stats.replayed >= 7 and len(spool) == 0


async def test_new_alarms_queue_behind_a_non_empty_spool(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
):
    spool = FileSpool(tmp_path / "spool")
    spool.append([Record(alarm(i)) for i in range(5)])
    async with AlarmPublisher(redis_url, name="t", spool=spool) as pub:
        assert await pub.publish(alarm(99)) == "spooled"
        await pub.drained(10)
    assert alarm_ids(sync_redis) == [*(f"t-{i}" for i in range(5)), "t-99"]


CRASHING_AGENT = """
import asyncio, os, sys
from edge.publisher import AlarmPublisher
from edge.spool import FileSpool
from edge.testing import alarm

async def main():
    pub = AlarmPublisher(sys.argv[1], name="crash", spool=FileSpool(sys.argv[2]))
    await pub.__aenter__()
    for i in range(20):
        assert await pub.publish(alarm(i)) == "spooled"
    os._exit(0)  # no close(), no flush beyond what publish() promised: a crash

asyncio.run(main())
"""


async def test_agent_crash_with_a_full_spool_replays_after_restart(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CRASHING_AGENT, dead, str(tmp_path / "spool")],
        check=True,
        env=env,
        timeout=60,
    )
    spool = FileSpool(tmp_path / "spool")
    assert len(spool) == 20
    async with AlarmPublisher(redis_url, name="t", spool=spool) as pub:
        await pub.drained(10)
    assert alarm_ids(sync_redis) == [f"t-{i}" for i in range(20)]
    # the restarted agent found an empty spool and will not replay again
    after = FileSpool(tmp_path / "spool")
    assert len(after) == 0
    after.close()


def test_replay_resumes_after_the_confirmed_prefix(tmp_path: Path):
    spool = FileSpool(tmp_path)
    spool.append([Record(alarm(i)) for i in range(6)])
    batch = spool.peek(4)
    spool.ack(batch[1][0])  # two confirmed, then the agent stops
    spool.close()
    again = FileSpool(tmp_path)
    assert [r.message.id for _, r in again.peek(10)] == ["t-2", "t-3", "t-4", "t-5"]
    again.close()


def test_full_spool_drops_heartbeats_first_then_oldest_alarms_counted(tmp_path: Path):
    spool = FileSpool(tmp_path, max_records=10, fsync="never")
    spool.append([Record(heartbeat(i)) for i in range(6)])
    spool.append([Record(alarm(i)) for i in range(6)])
    kinds = [r.is_alarm for _, r in spool.peek(20)]
    assert len(kinds) == 9 and kinds.count(True) == 6  # 12 > 10: down to 9, heartbeats first
    assert spool.counters.dropped_heartbeats == 3 and spool.counters.dropped_alarms == 0
    spool.append([Record(alarm(i)) for i in range(6, 12)])
    ids = [r.message.id for _, r in spool.peek(20)]
    assert ids == [f"t-{i}" for i in range(3, 12)]
    assert spool.counters.dropped_heartbeats == 6 and spool.counters.dropped_alarms == 3
    # the compacted spool is what a restart sees
    spool.close()
    reopened = FileSpool(tmp_path)
    assert [r.message.id for _, r in reopened.peek(20)] == ids
    reopened.close()


def test_torn_tail_is_cut_and_the_good_records_kept(tmp_path: Path):
    spool = FileSpool(tmp_path)
    spool.append([Record(alarm(i)) for i in range(4)])
    spool.close()
    log = next(tmp_path.glob("spool-*.log"))
    data = log.read_bytes()
    log.write_bytes(data + data[:17])  # a power cut in the middle of the next write
    again = FileSpool(tmp_path)
    assert again.counters.corrupt == 1
    assert [r.message.id for _, r in again.peek(10)] == [f"t-{i}" for i in range(4)]
    again.append([Record(alarm(9))])
    again.close()
    reopened = FileSpool(tmp_path)
    assert [r.message.id for _, r in reopened.peek(10)][-1] == "t-9"
    reopened.close()
