"""Schemathesis against the live gateway's own ``/api/openapi.json``: generated requests at every
operation (with a token of the role each door wants), no 500s, answers that match the document:
every status, media type and promised header (``Retry-After`` on 429/503) is one it lists.

The gateway runs as a real process on a real port, on a private Redis with a small city and a
live dispatcher; examples per operation are bounded so the whole run stays short.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from test_faults import SECRET, store_city
from waiting import until_sync

from gateway.auth import mint
from polewatch.embedded import EmbeddedRedis, free_port

EXAMPLES = int(os.environ.get("POLEWATCH_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway process (and a dispatcher) on a private Redis; its base URL."""
    import urllib.request

    server = EmbeddedRedis(tmp_path_factory.mktemp("fuzz-redis"), appendonly=False).start()
    store_city(server.url, count=50)
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "POLEWATCH_SECRET": SECRET,
           "POLEWATCH_CITY": "faultcity", "POLEWATCH_LOG_LEVEL": "WARNING"}  # fmt: skip
    log = (tmp_path_factory.mktemp("fuzz-logs") / "gateway.log").open("wb")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "polewatch.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for args in (["gateway", "--port", str(port)], ["dispatcher", "--consumer", "fz"])
    ]
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert procs[0].poll() is None, "the gateway exited"
        try:
            with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    try:
        until_sync(up, "the gateway answers", 30)
        yield base
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        log.close()
        server.stop()
        print(Path(log.name).read_text()[-3000:])


UNIT = mint(SECRET, "unit", "fuzz-unit", 3600)
SUPERVISOR = mint(SECRET, "supervisor", "fuzz-operator", 3600)


STREAMS = ("text/event-stream", "multipart/x-mixed-replace")
"""Operations answering an endless stream cannot be judged request by request; left out."""
SAFETY = ("not_a_server_error", "response_schema_conformance")
"""Never a 5xx; every JSON body of a documented answer matches its schema."""
DOCUMENT = ("status_code_conformance", "content_type_conformance", "response_headers_conformance")
"""Every status and media type is one the document lists."""


def checks(names: tuple[str, ...]) -> list[Any]:
    import schemathesis.specs.openapi.checks  # noqa: F401 (registers the OpenAPI checks)
    from schemathesis.checks import CHECKS

    return [check for check in CHECKS.get_all() if check.__name__ in names]


def fuzz(operation: Any, names: tuple[str, ...]) -> str | None:
    """Run the bounded examples of one operation under the checks ``names``; its failures,
    described, or None. (Schemathesis' pytest plugin does not run on pytest 9, so its Python
    API is used.)"""
    token = UNIT if operation.path.startswith("/api/patrol") else SUPERVISOR
    enforced = checks(names)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        case.call_and_validate(headers=auth, checks=enforced, timeout=20)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # check failures: all reported at the end
        return f"{operation.method.upper()} {operation.path}: {exc}"[:3000]
    return None


@pytest.fixture(scope="module")
def operations(live_gateway: str) -> list[Any]:
    api = schemathesis.openapi.from_url(f"{live_gateway}/api/openapi.json")
    found = [result.ok() for result in api.get_all_operations()]
    assert len(found) >= 15
    return [op for op in found if not any(s in _media(op) for s in STREAMS)]


def _media(operation: Any) -> str:
    return " ".join(map(str, operation.definition.raw.get("responses", {}).values()))


def test_no_generated_request_breaks_the_gateway(operations: list[Any]) -> None:
    failures = [f for f in (fuzz(op, SAFETY) for op in operations) if f]
    assert not failures, "\n\n".join(failures)


def test_every_answer_is_one_the_document_lists(operations: list[Any]) -> None:
    failures = [f for f in (fuzz(op, DOCUMENT) for op in operations) if f]
    assert not failures, "\n\n".join(failures)
