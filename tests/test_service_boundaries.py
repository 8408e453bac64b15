"""Services depend on the shared core, never on each other: importing a service loads none of
the others (CONTRIBUTING.md). The camera configuration schema, which both the video agent and
the gateway's editor validate with, lives in the core (``polewatch.camera_schema``); what two
gateway modules share is public."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gateway
from edge.video import config
from polewatch import camera_schema

SERVICES = ("edge", "dispatcher", "gateway", "archiver", "simulators", "loadtest")
ENTRY_POINTS = {
    "gateway": ["gateway.app", "gateway.cli", "gateway.console.cameras"],
    "edge": ["edge.video.agent", "edge.video.cli"],
}


def loaded_packages(modules: list[str]) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("service", sorted(ENTRY_POINTS))
def test_a_service_imports_no_other_service(service: str) -> None:
    others = set(SERVICES) - {service}
    assert loaded_packages(ENTRY_POINTS[service]) & others == set()


def test_the_agent_and_the_editor_share_one_camera_schema() -> None:
    assert config.CameraConfig is camera_schema.CameraConfig
    assert config.parse is camera_schema.parse and config.ConfigError is camera_schema.ConfigError
    text = camera_schema.dumps(camera_schema.loads('id = "c"\nsource = "0"\npole = "3101201"\n'))
    assert config.loads(text) == camera_schema.loads(text)


def test_no_gateway_module_borrows_another_modules_private_names() -> None:
    """What two modules share is a public module of its own (the benches' ``benchrig``)."""
    borrowed = []
    for path in sorted(Path(gateway.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                private = [a.name for a in node.names if re.match(r"_[^_]", a.name)]
                borrowed += [f"{path.name}: {node.module}.{name}" for name in private]
    assert borrowed == []
