"""docker-compose.yml: valid for docker-compose, and every command it runs exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from polewatch.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, object]:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose (Debian package docker-compose) must be installed"
    out = subprocess.run(
        [docker_compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded: dict[str, object] = yaml.safe_load(out.stdout)
    return loaded


def test_docker_compose_config_accepts_the_file() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert {"redis", "dispatcher", "gateway"} <= set(services)
    redis_cmd = services["redis"]["command"]
    assert "--appendonly" in redis_cmd and "yes" in redis_cmd


def polewatch_commands() -> list[tuple[str, list[str]]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return [
        (name, [str(arg) for arg in spec["command"]])
        for name, spec in services.items()
        if spec.get("image", "").startswith("polewatch")
    ]


@pytest.mark.parametrize(
    "service",
    ["city", "dispatcher", "gateway", "city-cluster", "dispatcher-cluster", "gateway-cluster"],
)
def test_every_polewatch_command_in_compose_parses(service: str) -> None:
    commands = dict(polewatch_commands())
    parser = build_parser()
    args = parser.parse_args(commands[service])  # exits (SystemExit) on an unknown command
    assert callable(args.func)


def test_the_cluster_profile_runs_the_same_services_zoned_on_three_masters() -> None:
    from polewatch.settings import Settings, load

    services = compose()["services"]
    assert isinstance(services, dict)
    nodes = [s for s in services.values() if "--cluster-enabled" in s.get("command", [])]
    assert len(nodes) == 3 and all(n["profiles"] == ["cluster"] for n in nodes)
    init = " ".join(services["cluster-init"]["command"])
    assert "--cluster create redis-c1:6379 redis-c2:6379 redis-c3:6379" in init
    for name in ("city-cluster", "dispatcher-cluster", "gateway-cluster"):
        env = services[name]["environment"]
        assert env["POLEWATCH_REDIS_CLUSTER"] == "true"
        # The zones file the services are given is the shared districts file, mounted at
        # /shared/data; the settings accept that environment once the path is the local one.
        zones = env["POLEWATCH_ZONES"].replace("/shared/data", str(ROOT.parent / "shared" / "data"))
        conf = load(Settings, section="x", env={**env, "POLEWATCH_ZONES": zones})
        assert conf.redis_cluster and len(conf.zone_map().names) == 10


def test_the_image_entrypoint_is_the_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["polewatch"]' in text
    assert 'polewatch = "polewatch.cli:main"' in (ROOT / "pyproject.toml").read_text()
