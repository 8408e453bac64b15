"""The read side on a real Redis Cluster with dispatch zones: response times, the CSV and the
assessment read the audit streams of every zone (on different shards), and an incident of
any zone exports to CAP and EIDO documents valid against the official schemas, from the
library and from the ``polewatch report`` / ``polewatch export`` commands."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.cluster import RedisCluster
from test_edge_cluster import FUTIAN, LUOHU, acluster, cluster, zones  # noqa: F401

from analytics.assessment import assess
from analytics.csv_export import incidents_csv
from analytics.exports import cap_xml, eido_object
from analytics.exports.validation import validate_cap, validate_eido
from analytics.incidents import load_incident
from analytics.response_times import incident_times, response_times
from analytics.simulation import known_week, write_incidents_to
from dispatcher import scenario as sc
from polewatch import keys
from polewatch.cli import main
from polewatch.zones import ZoneMap

START = 1_763_942_400.0  # Monday 2025-11-24 00:00 UTC: the known week
ANSWERS = ("acknowledged", "en_route", "on_scene", "resolved")


async def test_incidents_of_two_zones_are_measured_and_exported(
    cluster_url: str,
    cluster: RedisCluster,  # noqa: F811
    acluster: aioredis.Redis,  # noqa: F811
    zones: ZoneMap,  # noqa: F811
    zones_file: Path,
    data_dir: Path,
) -> None:
    audits = (keys.zone("futian").audit, keys.zone("luohu").audit)
    assert len({cluster.get_node_from_key(k).name for k in audits}) == 2
    conf = dict(redis_cluster=True, zones=str(zones_file))
    began = time.time()
    units = [sc.on_duty("F1", *sc.shifted(*FUTIAN, east_m=200)),
             sc.on_duty("L1", *sc.shifted(*LUOHU, east_m=300))]  # fmt: skip
    await sc.step(cluster_url, cluster, *units, **conf)
    first = sc.alarm(*FUTIAN, type="citizen_sos", pole="1023046", district="Futian",
                     grid="FT-03", text="<b>help</b> & co", ts=began - 2.0)  # fmt: skip
    again = sc.alarm(*FUTIAN, type="citizen_sos")
    other = sc.alarm(*LUOHU, type="intrusion", district="Luohu", grid="LH-01", ts=began - 1.0)
    await sc.step(cluster_url, cluster, first, again, other, **conf)
    answers = [sc.status(u, i, a) for u, i in (("F1", "futian-1"), ("L1", "luohu-1"))
               for a in ANSWERS]  # fmt: skip
    await sc.step(cluster_url, cluster, *answers, **conf)
    await sc.step(cluster_url, cluster, sc.command("close", "futian-1", evaluation=5), **conf)

    record = await load_incident(acluster, "futian-1", zones=zones)
    assert record is not None and record.incident.state == "closed"
    assert [a.id for a in record.alarms] == [first.id, again.id]  # both bodies, one shard
    assert [e.event for e in record.timeline][:2] == ["new", "dispatched"]
    standards = data_dir / "standards"
    validate_cap(cap_xml(record), standards)
    validate_eido(json.loads(json.dumps(eido_object(record))), standards)

    times = await incident_times(acluster, began - 60, time.time() + 60, zones=zones)
    by_id = {i.id: i for i in times}  # the zones' dispatchers run side by side: any order
    assert sorted(by_id) == ["futian-1", "luohu-1"]
    t = record.incident.times
    futian, luohu = by_id["futian-1"], by_id["luohu-1"]
    assert futian.durations()["alarm_to_dispatch"] == round(t["dispatched"] - first.ts, 3)
    assert futian.durations()["ack_to_scene"] == round(t["on_scene"] - t["acknowledged"], 3)
    assert (futian.reports, luohu.district, luohu.state) == (2, "Luohu", "resolved")
    # Chunks of one entry interleave the two zones' streams: the same answer.
    one_by_one = await incident_times(acluster, began - 60, time.time() + 60, chunk=1, zones=zones)
    assert msgspec.json.encode(one_by_one) == msgspec.json.encode(times)
    figures = await response_times(acluster, began - 60, time.time() + 60, zones=zones)
    assert figures.incidents == 2 and [g.key for g in figures.by_grid] == ["FT-03", "LH-01"]
    rows = list(csv.reader(io.StringIO(
        await incidents_csv(acluster, began - 60, time.time() + 60, zones=zones)
    )))  # fmt: skip
    assert sorted(r[0] for r in rows[1:]) == ["futian-1", "luohu-1"]
    report = await assess(acluster, began - 60, time.time() + 60, zones=zones)
    assert report.incidents == 2


def test_report_and_export_commands_read_every_zone(
    cluster_url: str,
    redis_url: str,
    zones: ZoneMap,  # noqa: F811
    zones_file: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The known week twice: plain ids on a single Redis, zone ids (by district) on the cluster.
    week = known_week(START)
    assert {zones.locate(i.lon, i.lat) for i in week} == {"futian", "luohu"}
    zoned = [msgspec.structs.replace(i, id=f"{zones.locate(i.lon, i.lat)}-{i.id}") for i in week]
    write_incidents_to(redis_url, week)
    write_incidents_to(cluster_url, zoned, cluster=True, zones=zones)
    period = ["--from", "2025-11-24", "--to", "2025-11-30", "--utc-offset", "0", "--redis-url"]
    assert main(["report", "times", *period, redis_url]) == 0
    single = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("POLEWATCH_REDIS_CLUSTER", "true")
    monkeypatch.setenv("POLEWATCH_ZONES", str(zones_file))
    assert main(["report", "times", *period, cluster_url]) == 0
    assert json.loads(capsys.readouterr().out) == single and single["incidents"] == 8
    assert main(["report", "csv", *period, cluster_url, "--out", "-"]) == 0
    ids = [row[0] for row in csv.reader(io.StringIO(capsys.readouterr().out))][1:]
    assert sorted(ids) == sorted(i.id for i in zoned if START <= i.created < START + 7 * 86_400)
    standards = data_dir / "standards"
    assert main(["export", "cap", "luohu-4", "--redis-url", cluster_url]) == 0
    validate_cap(capsys.readouterr().out.encode(), standards)
    assert main(["export", "eido", "futian-1", "--redis-url", cluster_url]) == 0
    validate_eido(json.loads(capsys.readouterr().out), standards)
    assert main(["export", "eido", "futian-404", "--redis-url", cluster_url]) == 1
    assert "no incident 'futian-404'" in capsys.readouterr().err
