"""Several dispatcher replicas racing on the same streams, and one killed mid-work: no unit is
assigned twice, every alarm lands in exactly one incident, nothing is lost or sent twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import redis
import redis.asyncio as aioredis
from waiting import ending, until_written

from dispatcher import scenario as sc
from polewatch import keys, records, wire
from polewatch.zones import ZoneMap

BBOX = (113.85, 22.50, 114.15, 22.70)
TYPES = ["intrusion", "door_forced", "crowd", "citizen_sos", "camera_offline"]


def populate(
    client: redis.Redis, seed: int, units: int, alarms: int, zones: ZoneMap | None = None
) -> list[wire.Alarm]:
    rng = random.Random(seed)
    points = list(sc.random_points(units, rng, BBOX))
    duty = [sc.on_duty(f"u{i}", lon, lat) for i, (lon, lat) in enumerate(points)]
    sc.write(client, duty, zones)
    # A few hot spots so that some reports merge; the rest spread over the city.
    spots = list(sc.random_points(40, rng, BBOX))
    out = []
    for i in range(alarms):
        lon, lat = rng.choice(spots) if i % 4 == 0 else next(sc.random_points(1, rng, BBOX))
        out.append(sc.alarm(lon, lat, type=rng.choice(TYPES)))
    for start in range(0, alarms, 1000):
        sc.write(client, out[start : start + 1000], zones)
    return out


def check_invariants(
    client: redis.Redis, alarms: list[wire.Alarm], zones: ZoneMap | None = None
) -> Counter[str]:
    """Everything that must hold after any number of replicas processed ``alarms``, in every
    zone (``zones``) or in a deployment without zones."""
    seen: Counter[str] = Counter()
    holder: dict[str, str] = {}
    states: Counter[str] = Counter()
    every = zones.all_keys() if zones else [keys.DEFAULT]
    for zone in every:
        for stream in zone.streams:
            assert client.xpending(stream, keys.DISPATCH_GROUP)["pending"] == 0
        n = int(client.get(zone.incident_seq) or 0)
        prefix = f"{zone.name}-" if zone.name else ""
        for iid in (f"{prefix}{i}" for i in range(1, n + 1)):
            inc = records.incident_from_hash(client.hgetall(zone.incident(iid)))
            assert inc is not None
            listed: Any = client.lrange(zone.incident_alarms(iid), 0, -1)
            alarm_ids = records.incident_alarm_ids(listed, inc)
            seen.update(alarm_ids)
            assert inc.reports == len(alarm_ids)
            states[inc.state] += 1
            states[f"zone:{zone.name}"] += 1
            assert inc.state in ("dispatched", "escalated"), inc
            assert (inc.state == "dispatched") == bool(inc.units)
            for u in inc.units:
                assert u not in holder, f"unit {u} holds incidents {holder[u]} and {iid}"
                holder[u] = iid
                assert client.hget(zone.unit(u), "incident") == iid.encode()
                assert sc.home(client, u) is zone, f"unit {u} of another zone on {iid}"
    assert seen == Counter(a.id for a in alarms), "an alarm is missing or doubled"
    for a in alarms:
        taken = [z for z in every if client.get(z.alarm(a.id)) is not None]
        assert len(taken) == 1, f"alarm {a.id} recorded in zones {taken}"
    free = {m.decode() for z in every for m in client.zrange(z.units_free_geo, 0, -1)}
    assert not free & set(holder)
    # Nothing was sent twice: one Dispatch per assignment, in the right unit's inbox.
    sent = Counter()
    for u in holder:
        for msg in sc.inbox(client, u):
            assert isinstance(msg, wire.Dispatch) and msg.incident == holder[u]
            sent[u] += 1
    assert set(sent.values()) == {1}
    states["alarms"] = len(alarms)
    return states


async def test_two_replicas_in_process(redis_url: str, sync_redis: redis.Redis) -> None:
    alarms = populate(sync_redis, seed=7, units=1500, alarms=3000)
    await asyncio.gather(
        *(sc.drain(redis_url, consumer=name, batch_size=40) for name in ("r1", "r2"))
    )
    states = check_invariants(sync_redis, alarms)
    assert states["dispatched"] > 1000 and states["escalated"] > 0
    assert sum(states[s] for s in ("dispatched", "escalated")) < len(alarms)  # some merged


def replica(redis_url: str, name: str, *extra: str, batch: int = 40) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "POLEWATCH_BATCH_SIZE": str(batch),
           "POLEWATCH_LOG_LEVEL": "WARNING"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", "dispatcher", "--consumer", name, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_three_replica_processes(redis_url: str, sync_redis: redis.Redis) -> None:
    alarms = populate(sync_redis, seed=8, units=1200, alarms=3000)
    procs = [replica(redis_url, f"p{i}", "--burst") for i in range(3)]
    for proc in procs:
        _, err = await asyncio.to_thread(proc.communicate, timeout=90)
        assert proc.returncode == 0, err.decode()[-2000:]
    states = check_invariants(sync_redis, alarms)
    assert states["dispatched"] > 1000
    consumers = sync_redis.xinfo_consumers(keys.ALARMS, keys.DISPATCH_GROUP)
    assert len(consumers) == 3


async def test_sigkilled_replica_loses_nothing(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    alarms = populate(sync_redis, seed=9, units=1500, alarms=4000)
    proc = replica(redis_url, "doomed", batch=25)

    def progressed() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        return int(sync_redis.get(keys.INCIDENT_SEQ) or 0) >= 300

    try:  # the incident numbers are taken in the call that writes the incidents' audit entries
        with ending(proc) as ended:
            await until_written(
                aredis, keys.AUDIT, progressed, "300 incidents", 60, alongside=ended
            )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    pending = sync_redis.xpending(keys.ALARMS, keys.DISPATCH_GROUP)["pending"]
    done = int(sync_redis.get(keys.INCIDENT_SEQ) or 0)
    assert done < 2500, "the replica finished before it could be killed"
    # It was killed holding a batch it had read but not processed: another replica claims it.
    totals = await sc.drain(redis_url, consumer="rescuer", claim_idle_ms=1)
    states = check_invariants(sync_redis, alarms)
    assert states["dispatched"] > 1000
    assert totals["alarms"] + totals["skipped"] <= len(alarms)
    assert totals["duplicates"] == 0 and totals["alarms"] > 1000
    print(f"killed after {done} incidents with {pending} alarms pending; rescuer: {totals}")


async def test_an_entry_claimed_by_another_replica_is_done_once(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    from dispatcher import intake
    from dispatcher.service import Dispatcher
    from dispatcher.settings import DispatcherSettings

    sc.write(sync_redis, [sc.on_duty("u1", 114.0, 22.55), sc.on_duty("u2", 114.0, 22.56)])
    await sc.drain(redis_url)
    alarm = sc.alarm(114.0, 22.5)
    sc.write(sync_redis, [alarm])
    slow = Dispatcher(DispatcherSettings(redis_url=redis_url, consumer="slow"))
    reply = await slow.client.xreadgroup(keys.DISPATCH_GROUP, "slow", {keys.ALARMS: ">"})
    entries = intake.flatten(reply)
    assert len(entries) == 1
    # The slow replica looks dead: another one claims the entry and does the work ...
    rescue = await sc.drain(redis_url, consumer="fast", claim_idle_ms=1)
    assert rescue["incidents"] == 1
    # ... and when the slow one finally gets to it, it is skipped.
    late = await slow.process(entries)
    await slow.client.aclose()
    assert late["skipped"] == 1 and late["incidents"] == 0 and late["duplicates"] == 0
    assert sync_redis.get(keys.INCIDENT_SEQ) == b"1"
    assert sum(len(sc.inbox(sync_redis, u)) for u in ("u1", "u2")) == 1


async def test_sigterm_stops_a_replica_cleanly(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    proc = replica(redis_url, "calm")
    try:
        with ending(proc) as ended:
            await until_written(aredis, keys.HEARTBEATS, lambda: sync_redis.xlen(keys.HEARTBEATS),
                                "a heartbeat", 30, alongside=ended)  # fmt: skip
            alarm = sc.alarm(114.0, 22.5)
            sc.write(sync_redis, [alarm])
            await until_written(aredis, keys.AUDIT, lambda: sync_redis.exists(keys.alarm(alarm.id)),
                                "the alarm taken", 30, alongside=ended)  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    beats = [wire.decode_entry(f, wire.Heartbeat) for _, f in sync_redis.xrange(keys.HEARTBEATS)]
    assert beats[0].status == "online" and beats[-1].status == "stopping"
    assert beats[-1].source == "calm" and beats[-1].kind == "dispatcher"
