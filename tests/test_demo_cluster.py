"""`polewatch demo --cluster N`: the whole system on a private Redis Cluster whose dispatch
zones are the districts; incidents are dispatched in several zones, door alarms land in their
zone's stream, and Ctrl-C leaves no process behind (every cluster node included)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
import redis
from test_demo import alive, demo, stop, wait_for_line
from waiting import until_sync

from polewatch import keys, wire
from polewatch.connection import connect_sync
from polewatch.zones import ZoneMap

DEMO_PROCESSES = ("postgres", "dispatcher-1", "dispatcher-2", "gateway", "archiver", "door-agent")
"""The demo's children besides the cluster's nodes: the incident archive, then the services."""


def _dispatches(client: redis.Redis, zones: ZoneMap) -> dict[str, set[tuple[str, str]]]:
    """``zone -> {(incident, unit)}`` of the dispatches in each zone's audit stream."""
    found: dict[str, set[tuple[str, str]]] = {}
    for zone in zones.all_keys():
        entries: Any = client.xrange(zone.audit)
        for _, fields in entries:
            event = wire.decode_entry(fields, wire.IncidentEvent)
            if event.event == "dispatched" and event.unit:
                found.setdefault(zone.name, set()).add((event.incident, event.unit))
    return found


def _door_alarms(client: redis.Redis, zones: ZoneMap) -> list[tuple[str, wire.Alarm]]:
    """``(zone stream's zone, alarm)`` of every door alarm in the zones' alarm streams."""
    out = []
    for zone in zones.all_keys():
        entries: Any = client.xrange(zone.alarms)
        for _, fields in entries:
            alarm = wire.decode_entry(fields, wire.Alarm)
            if alarm.source.startswith("door:"):
                out.append((zone.name, alarm))
    return out


# Its own deadlines (banner 120 s, dispatches 60 s, status 30 s, stop 60 s) are the ones that
# should fail it, naming what did not come; a loaded machine took over 120 s in all.
@pytest.mark.timeout(300)
def test_the_demo_on_a_cluster_dispatches_in_several_zones_and_stops_clean(
    tmp_path: Path, zones_file: Path
) -> None:
    # seed 15: the first door's first visit ends in a tamper alarm (see test_demo_edge)
    proc = demo(
        tmp_path, "--cluster", "3", "--duration", "120", "--units", "40", "--rate", "1",
        "--time-scale", "10", "--cameras", "0", "--doors", "2", "--door-rate", "120",
        "--seed", "15",
    )  # fmt: skip
    client: redis.Redis | None = None
    try:
        banner = "".join(wait_for_line(proc, "Ctrl-C stops everything", 120))
        match = re.search(r"redis:\s+(\S+)\s+\(Redis Cluster of 3 masters\); 10 dispatch", banner)
        assert match, banner
        lines = (tmp_path / "demo.pids").read_text().splitlines()
        pids = [int(line.split()[0]) for line in lines]
        names = sorted(line.split()[1] for line in lines)
        assert names == sorted(["redis-server"] * 3 + [*DEMO_PROCESSES]), lines
        client = connect_sync(match.group(1), name="test", cluster=True)
        zones = ZoneMap.load(zones_file)

        def busy() -> tuple[dict[str, Any], list[Any]] | None:
            """Dispatches in two zones and a door alarm (each look reads every zone's streams,
            a cluster's keys in other slots than one XREAD may block on)."""
            assert proc.poll() is None, proc.communicate()[0]
            dispatches, doors = _dispatches(client, zones), _door_alarms(client, zones)
            return (dispatches, doors) if len(dispatches) >= 2 and doors else None

        dispatches, doors = until_sync(busy, "dispatches in two zones and a door alarm", 60,
                                       every_s=0.5)  # fmt: skip
        unit_zones: Any = client.hgetall(keys.UNIT_ZONES)
        # the status line (every 5 s) sums the zones: with the default zone's keys alone it
        # would count no alarm at all
        status = wait_for_line(proc, "in 10 zones", 30)[-1]
        assert int(status.split("alarms ")[1].split()[0]) > 0, status
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
        if client is not None:
            client.close()
    assert proc.returncode == 0, out
    # every incident and unit of a zone's dispatches belongs to that zone
    for zone, pairs in dispatches.items():
        for incident, unit in pairs:
            assert keys.zone_of_incident(incident).name == zone
            assert unit_zones[unit.encode()].decode() == zone
    # a door alarm is appended to the stream of the zone its pole lies in
    for zone, alarm in doors:
        assert alarm.lon is not None and alarm.lat is not None
        assert zones.locate(alarm.lon, alarm.lat) == zone
    # the demo waited for every child and every node of the cluster it started
    assert not [pid for pid in pids if alive(pid)]
