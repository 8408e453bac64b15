"""``polewatch bench cluster``: dispatch throughput with 1 and with 3 Redis shards.

Three set-ups measured in one run, the same alarms and units each time, so their ratios are
fair on a noisy machine:

* ``single``: one redis-server, no zones, one dispatcher process (the default deployment);
* ``cluster_1``: a 1-master Redis Cluster, zoned by Shenzhen's 10 districts, ``--dispatchers``
  dispatcher processes;
* ``cluster_3``: a 3-master Redis Cluster, the same zones and dispatchers.

Each round puts the units on duty, starts the dispatcher processes and waits until they are
reading, freezes them (SIGSTOP), preloads the alarms into the zones' streams, thaws them and
times until every alarm is consumed and acknowledged. Redis CPU per alarm (summed over the
shards) says what one shard costs, from which the run estimates the shards a bigger city needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from dispatcher import scenario as sc
from dispatcher import workload
from polewatch import keys, wire
from polewatch.embedded import EmbeddedCluster, EmbeddedRedis
from polewatch.poles.city import BOUNDARIES_FILE, find_data_dir
from polewatch.zones import ZoneMap


def _zones_file() -> Path:
    return find_data_dir() / BOUNDARIES_FILE


def _cpu(nodes: list[redis.Redis]) -> list[float]:
    """CPU seconds each node has used."""
    out = []
    for node in nodes:
        info = node.info("cpu")
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return out


@contextmanager
def _dispatchers(url: str, count: int, env: dict[str, str]) -> Iterator[list[subprocess.Popen]]:  # type: ignore[type-arg]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "polewatch.cli", "dispatcher", "--consumer", f"bench{i}"],
            env={
                **os.environ,
                "REDIS_URL": url,
                "POLEWATCH_LOG_LEVEL": "WARNING",
                "POLEWATCH_BATCH_SIZE": str(workload.BATCH),
                "POLEWATCH_ACK_TIMEOUT_S": "3600",
                **env,
            },  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _process_cpu(procs: list[subprocess.Popen]) -> float:  # type: ignore[type-arg]
    """CPU seconds the processes have used (Linux ``/proc``)."""
    total = 0
    for p in procs:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _wait(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"polewatch bench cluster: not within {within_s:.0f} s: {what}")
        time.sleep(0.02)


def _round(
    client: redis.Redis,
    nodes: list[redis.Redis],
    url: str,
    zones: ZoneMap,
    env: dict[str, str],
    dispatchers: int,
    units: list[wire.PatrolDuty],
    alarms: list[wire.Alarm],
) -> dict[str, Any]:
    every = zones.all_keys()

    def consumers_reading() -> bool:
        try:
            return all(
                len(client.xinfo_consumers(z.alarms, keys.DISPATCH_GROUP)) >= dispatchers
                for z in every
            )
        except redis.ResponseError:  # the groups are not there yet
            return False

    def left() -> int:
        out = 0
        for z in every:
            for group in client.xinfo_groups(z.alarms):
                out += int(group.get("lag") or 0) + int(group["pending"])
        return out

    with _dispatchers(url, dispatchers, env) as procs:
        _wait(consumers_reading, 60, "dispatchers reading every zone")
        sc.write(client, units, zones)
        _wait(lambda: sum(int(client.zcard(z.units_free_geo)) for z in every) == len(units),
              60, "units on duty")  # fmt: skip
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        for start in range(0, len(alarms), 2000):
            sc.write(client, alarms[start : start + 2000], zones)
        cpu, own = _cpu(nodes), _process_cpu(procs)
        started = time.perf_counter()
        for p in procs:
            p.send_signal(signal.SIGCONT)
        _wait(lambda: left() == 0, 300, "every alarm consumed")
        seconds = time.perf_counter() - started
        per_node = [after - before for before, after in zip(cpu, _cpu(nodes), strict=True)]
        own = _process_cpu(procs) - own
    counts = {"incidents": 0, "routed": 0}
    for z in every:
        counts["incidents"] += int(client.get(z.incident_seq) or 0)
    for node in nodes:
        counts["routed"] += sum(1 for _ in node.scan_iter(match="pw:*:route", count=1000))
    return {
        "alarms": len(alarms), "units_on_duty": len(units), "dispatchers": dispatchers,
        "seconds": round(seconds, 3), "alarms_per_s": round(len(alarms) / seconds),
        "redis_cpu_us_per_alarm": round(sum(per_node) / len(alarms) * 1e6, 1),
        "dispatcher_cpu_us_per_alarm": round(own / len(alarms) * 1e6, 1),
        "redis_cpu_share_per_shard": [round(c / sum(per_node), 2) for c in per_node],
        "incidents": counts["incidents"], "routed_across_a_border": counts["routed"],
    }  # fmt: skip


def _single(tmp: str, units: list[wire.PatrolDuty], alarms: list[wire.Alarm]) -> dict[str, Any]:
    with EmbeddedRedis(Path(tmp) / "single", appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        try:
            return _round(client, [client], server.url, ZoneMap.single(), {}, 1, units, alarms)
        finally:
            client.close()


def _cluster(
    tmp: str, masters: int, dispatchers: int, units: list[wire.PatrolDuty],
    alarms: list[wire.Alarm],
) -> dict[str, Any]:  # fmt: skip
    zones_file = _zones_file()
    env = {"POLEWATCH_REDIS_CLUSTER": "true", "POLEWATCH_ZONES": str(zones_file)}
    with EmbeddedCluster(Path(tmp) / f"cluster{masters}", masters=masters) as cluster:
        client = RedisCluster.from_url(cluster.url)
        nodes = [redis.Redis.from_url(u) for u in cluster.urls]
        try:
            zones = ZoneMap.load(zones_file)
            return _round(client, nodes, cluster.url, zones, env, dispatchers, units, alarms)  # type: ignore[arg-type]
        finally:
            client.close()
            for n in nodes:
                n.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point of ``polewatch bench cluster``."""
    count = 4000 if args.quick else 20_000
    dispatchers = getattr(args, "dispatchers", None) or 2
    places, source = workload.city(100_000, seed=1)
    # As many units as the dispatch bench: enough that nothing escalates (the dispatch path).
    units = workload.unit_events(places, int(count * 0.8) + 2_000, seed=2)
    now = time.time()
    plan = workload.alarm_plan(places, count, seed=3)
    alarms = [workload.make_alarm(t, n, now) for n, t in enumerate(plan)]
    out: dict[str, Any] = {
        "command": "polewatch bench cluster --json" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count()},
        "city": {"poles": len(places), "source": source, "zones": "Shenzhen's 10 districts"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["single"] = _single(tmp, units, alarms)
        out["cluster_1"] = _cluster(tmp, 1, dispatchers, units, alarms)
        out["cluster_3"] = _cluster(tmp, 3, dispatchers, units, alarms)
    one, three = out["cluster_1"], out["cluster_3"]
    out["ratio_3_to_1_shards"] = round(three["alarms_per_s"] / one["alarms_per_s"], 2)
    out["ratio_cluster_1_to_single"] = round(one["alarms_per_s"] / out["single"]["alarms_per_s"], 2)
    # One shard is one Redis core: its ceiling is 1 s of CPU over the Redis CPU per alarm.
    per_shard = 1e6 / three["redis_cpu_us_per_alarm"]
    out["per_shard_ceiling_alarms_per_s"] = round(per_shard)
    return out
