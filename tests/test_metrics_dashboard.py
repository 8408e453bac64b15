"""The monitoring profile: docker-compose accepts it, Prometheus scrapes what the services
serve, and every metric the Grafana dashboard queries exists on a running gateway, dispatcher
(or the archiver's registry)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import scenario as sc
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.settings import GatewaySettings, check
from gateway.testing import gateway_client
from polewatch import keys, wire
from polewatch.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "polewatch.json"
_METRIC = re.compile(r"\bpolewatch_[a-z_]+\b")


def compose_services() -> dict[str, Any]:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose (Debian package docker-compose) must be installed"
    out = subprocess.run(
        [docker_compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "monitoring",
         "config"], capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    services: dict[str, Any] = yaml.safe_load(out.stdout)["services"]
    return services


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """``target -> source`` of a service's volumes (short or long syntax)."""
    out = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        out[target] = source
    return out


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    return {m for e in exprs for m in _METRIC.findall(e)}


def test_the_monitoring_profile_wires_prometheus_and_grafana_to_the_services() -> None:
    services = compose_services()
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for source in mounts(services[name]).values():
            if source.startswith("/"):  # a bind mount of a file or folder of the repository
                assert Path(source).exists(), source
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:8080"]
    assert "8080" in services["gateway"]["command"]
    # the gateway's /metrics wants its metrics_token: Prometheus writes the same one to the
    # file its scrape config names, and the gateway accepts it (at least 16 characters)
    token = services["gateway"]["environment"]["POLEWATCH_METRICS_TOKEN"]
    assert services["prometheus"]["environment"]["POLEWATCH_METRICS_TOKEN"] == token
    assert check(GatewaySettings(secret="x" * 16, metrics_token=token)).metrics_token == token
    token_file = jobs["gateway"]["authorization"]["credentials_file"]
    assert f"> {token_file} &&" in " ".join(services["prometheus"]["entrypoint"])
    env = services["dispatcher"]["environment"]
    assert jobs["dispatcher"]["dns_sd_configs"][0]["port"] == int(env["POLEWATCH_METRICS_PORT"])
    assert env["POLEWATCH_METRICS_ADDR"] == "0.0.0.0"  # reachable by Prometheus in compose
    assert env["REDIS_URL"] == services["gateway"]["environment"]["REDIS_URL"]
    if "archiver" in services:  # its own /metrics (the archive lag in entries)
        port = int(services["archiver"]["environment"]["POLEWATCH_METRICS_PORT"])
        assert jobs["archiver"]["dns_sd_configs"][0]["port"] == port
    # Grafana: the provisioned data source is the one every panel names; the dashboards
    # provider reads the folder the dashboard is mounted at.
    grafana = MONITORING / "grafana" / "provisioning"
    source = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {p["datasource"]["uid"] for p in panels} == {uid}
    provider = yaml.safe_load((grafana / "dashboards" / "polewatch.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert Path(mounts(services["grafana"])[folder]) == DASHBOARD.parent


async def test_every_metric_the_dashboard_queries_is_served(
    redis_url: str, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    sc.write(sync_redis, [sc.on_duty("u1", 114.0, 22.55), sc.alarm(114.0, 22.5)])
    sync_redis.xadd(keys.ALARMS, {b"m": b"junk"})
    beat: Any = wire.entry(
        wire.Heartbeat(source="camera:c1", kind="camera", status="online", ts=time.time())
    )
    sync_redis.xadd(keys.HEARTBEATS, beat)
    sync_redis.xgroup_create(keys.AUDIT, keys.ARCHIVE_GROUP, id="0", mkstream=True)
    dispatcher = Dispatcher(
        DispatcherSettings(redis_url=redis_url, consumer="m"), burst=True, client=aredis
    )
    await dispatcher.run()
    await dispatcher.read_state()
    port = free_port()
    close = dispatcher.metrics.serve(port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        texts = [await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())]
    finally:
        close()
    async with gateway_client(redis_url) as client:
        await client.get("/metrics")  # so that request counters and histograms have a series
        texts.append(await (await client.get("/metrics")).read())
    from archiver.service import Metrics as ArchiverMetrics  # the archive lag is its own

    texts.append(generate_latest(ArchiverMetrics().registry))
    served = {
        name
        for text in texts
        for family in text_string_to_metric_families(text.decode())
        for name in {family.name, *(s.name for s in family.samples)}
    }
    missing = queried_metrics() - served
    assert not missing, f"the dashboard queries metrics nobody serves: {sorted(missing)}"
