"""The read side against the real writer: an incident taken through its whole life by the
dispatcher's Redis Functions exports to valid CAP and EIDO, and its response times read from
the real audit stream agree with the transition times in its hash."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from analytics.exports import cap_xml, eido_object
from analytics.exports.validation import validate_cap, validate_eido
from analytics.incidents import load_incident
from analytics.response_times import incident_times, response_times
from dispatcher import scenario as sc

LON, LAT = 114.05, 22.55


async def test_a_dispatched_incident_exports_and_measures(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis, data_dir: Path
) -> None:
    began = time.time()
    sc.units_east(sync_redis, LON, LAT, {"near": 200, "far": 900})
    raised = sc.alarm(
        LON,
        LAT,
        type="citizen_sos",
        text='<img src=x onerror="alert(1)"> & co',
        pole="1023046",
        district="Futian",
        grid="FT-03",
        ts=began - 2.0,
    )
    await sc.step(redis_url, sync_redis, raised)
    await sc.step(redis_url, sync_redis, sc.alarm(LON, LAT, type="citizen_sos"))  # merged report
    for action in ("acknowledged", "en_route", "on_scene", "resolved"):
        await sc.step(redis_url, sync_redis, sc.status("near", "1", action))
    await sc.step(redis_url, sync_redis, sc.command("close", "1", evaluation=5, actor="op7"))

    record = await load_incident(aredis, "1")
    assert record is not None
    assert record.incident.state == "closed" and len(record.alarms) == 2
    assert [e.event for e in record.timeline][:2] == ["new", "dispatched"]
    standards = data_dir / "standards"
    document = cap_xml(record)
    validate_cap(document, standards)
    assert b"&lt;img src=x onerror=" in document
    eido = eido_object(record)
    validate_eido(json.loads(json.dumps(eido)), standards)
    units = {
        r["emergencyResourceName"]: r["secondaryUnitStatusRegistryText"]
        for r in eido["emergencyResourceComponent"]
    }
    assert units["near"] == ["Cleared"]

    (times,) = await incident_times(aredis, began - 60, time.time() + 60)
    t = record.incident.times
    durations = times.durations()
    assert durations["alarm_to_dispatch"] == round(t["dispatched"] - raised.ts, 3)
    assert durations["dispatch_to_ack"] == round(t["acknowledged"] - t["dispatched"], 3)
    assert durations["ack_to_scene"] == round(t["on_scene"] - t["acknowledged"], 3)
    assert durations["resolution"] == round(t["resolved"] - t["new"], 3)
    assert (times.district, times.grid, times.priority, times.reports) == ("Futian", "FT-03", 1, 2)
    figures = await response_times(aredis, began - 60, time.time() + 60)
    assert [g.key for g in figures.by_grid] == ["FT-03"] and figures.incidents == 1
