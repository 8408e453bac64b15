"""The command centre's analytics tab, CSV and exports with an incident archive: the figures
an operator sees are the same before and after Redis let the archived incidents go, and an
archive that does not answer is a clear 503."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from analytics.simulation import simulate_week, write_incidents
from archiver.service import Metrics, ZoneArchiver
from archiver.settings import ArchiverSettings
from gateway.settings import GatewaySettings
from gateway.testing import TEST_SECRET, bearer, gateway_client, operator_token
from polewatch import keys, wire
from polewatch.embedded import free_port
from polewatch.settings import SettingsError, load

WEEK = 1_767_225_600.0  # 2026-01-01 00:00 UTC
PERIOD = {"from": "2025-12-31T00:00:00+00:00", "to": "2026-01-09T00:00:00+00:00"}


async def _shown(client: Any, iid: str) -> tuple[Any, str, str]:
    """The analytics tab's figures, the CSV and one incident's EIDO export, as served."""
    auth = bearer(operator_token("ada"))
    times = await client.get("/api/console/reports/times", headers=auth, params=PERIOD)
    assert times.status == 200, await times.text()
    csv = await client.get("/api/console/reports/incidents.csv", headers=auth, params=PERIOD)
    assert csv.status == 200, await csv.text()
    eido = await client.get(f"/api/console/incidents/{iid}/export.eido", headers=auth)
    assert eido.status == 200, await eido.text()
    return await times.json(), await csv.text(), await eido.text()


async def _drop_archived(redis: aioredis.Redis, archived: set[str]) -> None:
    """What retention and the audit stream's cap do in time: the archived incidents' keys and
    audit entries leave Redis; the open ones stay."""
    entries: Any = await redis.xrange(keys.AUDIT)
    gone = [eid for eid, f in entries if wire.decode_entry(f, wire.IncidentEvent).incident
            in archived]  # fmt: skip
    await redis.xdel(keys.AUDIT, *gone)
    for iid in archived:
        await redis.delete(keys.incident(iid), keys.incident_timeline(iid),
                           keys.incident_alarms(iid))  # fmt: skip


async def test_the_consoles_figures_are_the_same_after_redis_let_archived_incidents_go(
    redis_url: str, aredis: aioredis.Redis, database_url: str
) -> None:
    week = simulate_week(WEEK, seed=21, per_day=6)
    for inc in week[:3]:  # still being worked: Redis alone holds them
        inc.steps = list(inc.steps)[:2]
    await write_incidents(aredis, week)
    async with gateway_client(redis_url, database_url=database_url) as client:
        before = await _shown(client, week[5].id)
        settings = ArchiverSettings(database_url=database_url, batch=100)
        await ZoneArchiver(aredis, settings, keys.DEFAULT, Metrics()).run(burst=True)
        archived = {inc.id for inc in week[3:]}
        await _drop_archived(aredis, archived)
        assert not await aredis.exists(keys.incident(week[5].id))
        after = await _shown(client, week[5].id)
    assert before[0]["incidents"] == len(week)
    assert after == before


async def test_an_archive_that_does_not_answer_is_a_503_naming_it(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await write_incidents(aredis, simulate_week(WEEK, seed=22, per_day=1))
    nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/archive"
    async with gateway_client(redis_url, database_url=nowhere, database_timeout_s=1.0) as client:
        answer = await client.get("/api/console/reports/times", params=PERIOD,
                                  headers=bearer(operator_token("ada")))  # fmt: skip
        assert answer.status == 503
        assert "incident archive" in (await answer.json())["error"]


def test_a_bad_database_url_stops_the_gateway_naming_the_key() -> None:
    env = {"POLEWATCH_SECRET": TEST_SECRET, "DATABASE_URL": "mysql://localhost/records"}
    with pytest.raises(SettingsError, match="database_url"):
        load(GatewaySettings, section="gateway", env=env)
