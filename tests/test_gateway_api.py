"""The gateway as a whole: the OpenAPI document matches the router and the validation, the
metrics endpoint works, bad input at every door is a clear 4xx and the app keeps serving,
concurrent alarms are written in batches, and shutdown writes what was queued."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.openapi import doc_of
from gateway.state import GATEWAY
from gateway.testing import bearer, gateway_client, operator_token, store_poles, unit_token
from gateway.writer import Overloaded, StreamWriter
from polewatch import keys, wire

TOKENS = {
    "unit": bearer(unit_token("U1")),
    "operator": bearer(operator_token("alice")),
    "supervisor": bearer(operator_token("sam", role="supervisor")),
}
VALID_BODIES = {
    "/api/alarms": {"pole": "3101201", "type": "citizen_sos", "lon": 113.93, "lat": 22.52},
    "/api/incidents": {"pole": "3101201", "type": "assault", "text": "fight"},
    "/api/patrol/position": {"lon": 113.9, "lat": 22.5, "speed_mps": 3.0, "heading": 10.0},
    "/api/patrol/duty": {"duty": "on_duty", "grid": "G1", "capabilities": ["car"]},
    "/api/patrol/incidents/{incident}/status": {"action": "acknowledged"},
    "/api/incidents/{incident}/reassign": {"unit": "U2"},
    "/api/incidents/{incident}/add-unit": {},
    "/api/incidents/{incident}/cancel": {"reason": "duplicate call"},
    "/api/incidents/{incident}/close": {"evaluation": 4},
    "/api/incidents/{incident}/merge": {"other": "I2"},
    "/api/incidents/{incident}/split": {"alarm": "a1"},
}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url, max_body_bytes=4096) as client:
        yield client


@pytest.fixture
async def spec(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    document: dict[str, Any] = await resp.json()
    return document


def body_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    ]


def headers_for(op: dict[str, Any]) -> dict[str, str]:
    roles = op.get("x-roles", [])
    return TOKENS[roles[0]] if roles else {}


def schema_of(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    ref = op["requestBody"]["content"]["application/json"]["schema"]
    return {**ref, "components": spec["components"]}


async def test_every_route_is_documented_and_every_documented_path_exists(
    client: TestClient[Any, Any], spec: dict[str, Any]
) -> None:
    assert spec["openapi"].startswith("3.1")
    routed = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert routed == documented
    assert ("/api/patrol/ws", "get") in documented and ("/p/{code}", "get") in documented
    for path, item in spec["paths"].items():
        for op in item.values():
            assert op["summary"], path
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path))


async def test_path_values_the_document_refuses_are_refused_and_allowed_ones_are_not(
    client: TestClient[Any, Any], spec: dict[str, Any]
) -> None:
    who = TOKENS["operator"]
    for path, value, status in (
        ("/api/poles/{}", "%01", 422),  # a control character: the schema's pattern refuses it
        ("/api/poles/{}", "3101201", 200),
        ("/api/poles/{}", "9" * 33, 422),  # longer than any code
        ("/api/incidents/{}", "I%0A1", 422),
        ("/api/console/snapshots/{}", "s%7C1", 422),
        ("/api/console/cameras/{}/frame", "c%201", 422),
        ("/api/console/reports/assessment.{}", "doc", 404),  # not one of the enum's formats
    ):
        resp = await client.get(path.format(value), headers=who)
        assert resp.status == status, (path, value, await resp.text())
        template = path.replace("{}", "{fmt}" if "assessment" in path else "{x}")
        ops = [op for p, item in spec["paths"].items() for op in item.values()
               if re.sub(r"\{\w+\}", "{x}", p) == re.sub(r"\{\w+\}", "{x}", template)]  # fmt: skip
        assert ops and str(status) in ops[0]["responses"], (path, status)

    page = spec["paths"]["/p/{code}"]["get"]["responses"]["404"]
    assert list(page["content"]) == ["text/html"]
    resp = await client.get("/p/%01")
    assert resp.status == 404 and resp.content_type == "text/html"
    redirect = spec["paths"]["/console"]["get"]["responses"]["308"]
    resp = await client.get("/console", allow_redirects=False)
    assert resp.status == 308 and resp.content_type in redirect["content"]
    assert resp.headers["Location"] == "/console/"


async def test_documented_request_bodies_are_what_the_handlers_validate(
    client: TestClient[Any, Any], spec: dict[str, Any]
) -> None:
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    operations = body_operations(spec)
    assert set(VALID_BODIES) <= {path for path, _, _ in operations}
    handlers = {
        (r.resource.canonical, r.method.lower()): r.handler
        for r in client.app.router.routes()
        if r.resource is not None
    }
    for path, method, op in operations:
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        declared = doc_of(handlers[(path, method)])
        assert declared is not None and declared.body is not None
        assert ref.endswith("/" + declared.body.__name__)
        if path not in VALID_BODIES:
            continue  # another area's route (the console): its own tests post to it
        validator = jsonschema.Draft202012Validator(schema_of(spec, op))
        url = path.replace("{incident}", "I1")
        good = VALID_BODIES[path]
        assert validator.is_valid(good), path
        resp = await client.post(url, json=good, headers=headers_for(op))
        assert resp.status == int(next(iter(op["responses"]))), (path, await resp.text())
        for bad in ({**good, "surprise": 1}, {**good, **{k: [] for k in list(good)[:1]}}):
            if not good and "surprise" not in bad:
                continue
            assert not validator.is_valid(bad), (path, bad)
            resp = await client.post(url, json=bad, headers=headers_for(op))
            assert resp.status == 422, (path, bad, await resp.text())


async def test_bad_input_at_every_door_is_a_clear_4xx_and_the_gateway_keeps_serving(
    client: TestClient[Any, Any], spec: dict[str, Any], aredis: aioredis.Redis
) -> None:
    bad_bodies = [
        (b"", 400),
        (b"{", 400),
        (b"\xff\xfe\x00", 400),
        (b'"just a string"', 422),
        (b"[]", 422),
        (b"{}", 422),
        (b'{"lon": "east"}', 422),
        (b"{" + b'"x": 1, ' * 1000 + b'"y": 2}', 413),
    ]
    for path, _, op in body_operations(spec):
        if path not in VALID_BODIES:
            continue
        url = path.replace("{incident}", "I1")
        empty_ok = jsonschema.Draft202012Validator(schema_of(spec, op)).is_valid({})
        for body, status in bad_bodies:
            if body == b"{}" and empty_ok:
                continue  # reassign / add-unit to the nearest free unit
            resp = await client.post(
                url, data=body, headers={**headers_for(op), "Content-Type": "application/json"}
            )
            assert resp.status == status, (path, body[:20], await resp.text())
            assert (await resp.json())["error"]
    for url in ("/api/alarms/x/y/z", "/nowhere", "/api/incidents/a%20b"):
        resp = await client.get(url, headers=TOKENS["operator"])
        assert 400 <= resp.status < 500 and (await resp.json())["error"]
    resp = await client.delete("/api/alarms")
    assert resp.status == 405 and "Allow" in resp.headers
    assert await aredis.xlen(keys.ALARMS) == 0
    assert await aredis.xlen(keys.COMMANDS) == 0
    resp = await client.post("/api/alarms", json=VALID_BODIES["/api/alarms"])
    assert resp.status == 202  # still serving


async def test_metrics_count_requests_alarms_sockets_and_batches(
    client: TestClient[Any, Any],
) -> None:
    for _ in range(3):
        assert (await client.post("/api/alarms", json={"pole": "3101201"})).status == 202
    assert (await client.post("/api/alarms", json={"pole": "3101202"})).status == 404
    ws = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
    await ws.receive_json()
    text = await (await client.get("/metrics")).text()
    await ws.close()
    assert (
        'polewatch_gateway_requests_total{method="POST",route="/api/alarms",status="202"} 3.0'
        in text
    )
    assert 'route="/api/alarms",status="404"} 1.0' in text
    assert 'polewatch_gateway_alarms_accepted_total{channel="citizen"} 3.0' in text
    assert "polewatch_gateway_unknown_pole_codes_total 1.0" in text
    assert "polewatch_gateway_websocket_clients 1.0" in text
    assert "polewatch_gateway_write_batch_size_sum 3.0" in text


async def test_concurrent_alarms_are_written_in_pipelined_batches(
    aredis: aioredis.Redis,
) -> None:
    batches: list[int] = []
    writer = StreamWriter(aredis, batch_max=64, on_batch=batches.append)
    task = asyncio.create_task(writer.run())
    alarms = [
        wire.Alarm(id=f"a{i}", type="t", source="s", ts=1.0, lon=114.0, lat=22.5)
        for i in range(150)
    ]
    ids = await asyncio.gather(*(writer.add(keys.ALARMS, wire.entry(a)) for a in alarms))
    assert batches == [64, 64, 22]  # everything queued while one round trip was in flight
    stored = await aredis.xrange(keys.ALARMS)
    assert [e[0].decode() for e in stored] == ids
    assert [wire.decode_entry(e[1], wire.Alarm).id for e in stored] == [a.id for a in alarms]

    pending = [asyncio.ensure_future(writer.add(keys.ALARMS, wire.entry(alarms[0])))]
    await asyncio.sleep(0)  # one turn of the loop, not time: queued, not yet written
    task.cancel()
    await writer.drain()  # shutdown still writes what was queued ...
    assert await pending[0] and await aredis.xlen(keys.ALARMS) == 151
    with pytest.raises(Overloaded):  # ... and refuses anything new
        await writer.add(keys.ALARMS, wire.entry(alarms[0]))


async def test_a_full_alarm_queue_is_a_503_that_says_when_to_retry(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    writer = client.app[GATEWAY].need_writer()
    writer.queue_max = 0  # as if Redis had fallen behind by a whole queue
    resp = await client.post("/api/alarms", json=VALID_BODIES["/api/alarms"])
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"  # what HTTP clients and proxies read ...
    body = await resp.json()
    assert body["retry_after"] == 1 and "retry" in body["error"]  # ... and what scripts read
    assert await aredis.xlen(keys.ALARMS) == 0
    writer.queue_max = 20000
    assert (await client.post("/api/alarms", json=VALID_BODIES["/api/alarms"])).status == 202
