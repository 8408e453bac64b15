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


@pytest.mark.parametrize("service", ["city", "dispatcher", "gateway"])
def test_every_polewatch_command_in_compose_parses(service: str) -> None:
    commands = dict(polewatch_commands())
    parser = build_parser()
    args = parser.parse_args(commands[service])  # exits (SystemExit) on an unknown command
    assert callable(args.func)


def test_the_image_entrypoint_is_the_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["polewatch"]' in text
    assert "polewatch = \"polewatch.cli:main\"" in (ROOT / "pyproject.toml").read_text()
