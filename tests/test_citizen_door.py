"""The citizen door over HTTP: citizen types only, the system's priority, JSON only, no other
site's page acting through a visitor's browser, and the reporter's position checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st
from waiting import until_written

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.metrics import Metrics
from gateway.origin import origin_of, refusal
from gateway.settings import GatewaySettings
from gateway.state import GATEWAY, Gateway
from gateway.testing import (
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    stream_alarms,
)
from polewatch import keys
from polewatch.poles.index import FAR_M

POLE = TEST_POLES[0]
EVIL = "http://evil.example"
OPERATOR = bearer(operator_token("alice"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url)
    async with gateway_client(redis_url) as client:
        yield client


@pytest.mark.parametrize("kind", ["door_forced", "intrusion", "camera_offline", "anything"])
async def test_only_citizen_types(
    client: TestClient[Any, Any], aredis: aioredis.Redis, kind: str
) -> None:
    resp = await client.post("/api/alarms", json={"pole": POLE.code, "type": kind})
    assert resp.status == 422
    assert "$.type" in (await resp.json())["error"]
    assert await stream_alarms(aredis) == []


async def test_citizen_types_pass_and_priority_is_the_systems(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    for kind in ("citizen_sos", "call"):
        resp = await client.post("/api/alarms", json={"pole": POLE.code, "type": kind})
        assert resp.status == 202, await resp.text()
    resp = await client.post("/api/alarms", json={"pole": POLE.code, "priority": 1})
    assert resp.status == 422 and "priority" in (await resp.json())["error"]
    assert [a.type for a in await stream_alarms(aredis)] == ["citizen_sos", "call"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
async def test_only_json_bodies(
    client: TestClient[Any, Any], aredis: aioredis.Redis, content_type: str
) -> None:
    body = b'{"pole": "%s"}' % POLE.code.encode()
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post(
        "/api/alarms", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert resp.status == 415, await resp.text()
    assert "application/json" in (await resp.json())["error"]
    resp = await client.post(
        "/api/alarms", data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert resp.status == 202
    assert len(await stream_alarms(aredis)) == 1
    document = await (await client.get("/api/openapi.json")).json()
    assert "415" in document["paths"]["/api/alarms"]["post"]["responses"]


def state_changing(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path) of the document that is not a read, path parameters filled."""
    found = []
    for path, ops in document["paths"].items():
        for method in ops:
            if method.upper() not in ("GET", "HEAD", "OPTIONS"):
                found.append((method.upper(), path.replace("{", "x").replace("}", "")))
    return found


async def test_other_sites_pages_change_nothing(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    routes = state_changing(document)
    for ops in document["paths"].values():
        for method, op in ops.items():
            assert method in ("get", "head") or "403" in op["responses"], op["operationId"]
    assert ("POST", "/api/alarms") in routes and ("POST", "/api/console/login") in routes
    assert ("POST", "/api/incidents/xincident/cancel") in routes
    foreign = (
        {"Origin": EVIL},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"},
        {"Origin": "null"},
    )
    for method, path in routes:
        for headers in foreign:
            resp = await client.request(
                method, path, json={"pole": POLE.code}, headers={**OPERATOR, **headers}
            )
            assert resp.status == 403, (method, path, headers, await resp.text())
            assert "refused" in (await resp.json())["error"]
    assert await stream_alarms(aredis) == []
    # the gateway's own pages, and clients that are no browser page, go through
    own = str(client.make_url("")).rstrip("/")
    for headers in ({"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Origin": own}, {}):
        resp = await client.post("/api/alarms", json={"pole": POLE.code}, headers=headers)
        assert resp.status == 202, headers
    assert len(await stream_alarms(aredis)) == 3


async def test_no_cors_is_offered(client: TestClient[Any, Any]) -> None:
    preflight = await client.options("/api/alarms", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})  # fmt: skip
    assert preflight.status >= 400
    read = await client.get(f"/api/alarms/{'0' * 32}-{'0' * 12}", headers={"Origin": EVIL})
    for resp in (preflight, read):
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


async def test_a_raw_cross_site_form_post_is_refused(
    client: TestClient[Any, Any], aredis: aioredis.Redis
) -> None:
    """What a hidden form on another site sends, byte for byte."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    body = b'{"pole":"%s"}' % POLE.code.encode()
    writer.write(
        b"POST /api/alarms HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n"
        b"Sec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b"access-control-allow" not in answer.lower()
    assert await stream_alarms(aredis) == []


async def test_a_report_far_from_its_pole_is_flagged_on_the_incident(
    client: TestClient[Any, Any], aredis: aioredis.Redis, redis_url: str
) -> None:
    far = (POLE.lon + 0.12, POLE.lat)  # about 12 km east
    beside = TEST_POLES[3]
    dispatcher = Dispatcher(DispatcherSettings(redis_url=redis_url, block_ms=100))
    running = asyncio.create_task(dispatcher.run())
    try:
        first = await client.post(
            "/api/alarms", json={"pole": POLE.code, "lon": far[0], "lat": far[1]}
        )
        assert first.status == 202
        plain = await client.post(
            "/api/alarms", json={"pole": beside.code, "lon": beside.lon, "lat": beside.lat}
        )
        assert plain.status == 202

        async def both_in_incidents() -> bool:
            return len(await aredis.keys(keys.incident("*"))) >= 2

        await until_written(aredis, keys.AUDIT, both_in_incidents, "two incidents", 15,
                            alongside=running)  # fmt: skip
    finally:
        dispatcher.stop()
        await asyncio.wait_for(running, 10)
    alarms = {a.pole: a for a in await stream_alarms(aredis)}
    assert float(alarms[POLE.code].extra["caller_far_m"]) > FAR_M
    assert "caller_far_m" not in alarms[beside.code].extra
    assert float(alarms[beside.code].extra["caller_distance_m"]) < 10
    listed = await (await client.get("/api/incidents", headers=OPERATOR)).json()
    flags = {i["pole"]: i.get("caller_far_m") for i in listed["incidents"]}
    assert flags[POLE.code] is not None and flags[POLE.code] > FAR_M
    assert flags[beside.code] is None


APP = web.Application()
APP[GATEWAY] = Gateway(
    settings=GatewaySettings(secret="x" * 16, public_url="https://pw.example"), metrics=Metrics()
)
HEADER = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["POST", "PUT", "DELETE", "PATCH"]), HEADER | st.none(), HEADER | st.none())
def test_any_origin_headers_are_judged_without_error(
    method: str, origin: str | None, site: str | None
) -> None:
    headers = {"Host": "pw.example"}
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    why = refusal(make_mocked_request(method, "/api/alarms", headers=headers, app=APP))
    own = origin is not None and origin_of(origin) in ("http://pw.example", "https://pw.example")
    if (site or "").strip().lower() in ("same-origin", "none") or own:
        assert why is None
    elif origin is None and not (site or "").strip():
        assert why is None  # no browser page
    else:
        assert why is not None and "refused" in why
