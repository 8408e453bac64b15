"""The whole loop through the gateway with the real dispatcher (burst mode, in process): a
citizen presses Help, the nearest unit gets the dispatch over its WebSocket, answers, and the
citizen's event stream follows it to the end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from gateway.testing import (
    TEST_POLES,
    bearer,
    gateway_client,
    operator_token,
    store_poles,
    unit_token,
)

POLE = TEST_POLES[0]


async def next_status(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode()
        if line.startswith("data: "):
            event: dict[str, Any] = json.loads(line[6:])
            return event


async def status_until(resp: aiohttp.ClientResponse, wanted: str) -> dict[str, Any]:
    while True:
        event = await next_status(resp)
        if event["status"] == wanted:
            return event


async def frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        got: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
        if got["type"] == kind:
            return got


async def test_help_button_to_unit_on_scene_and_resolved(redis_url: str) -> None:
    await store_poles(redis_url)

    async def dispatch_round() -> None:
        await Dispatcher(DispatcherSettings(redis_url=redis_url), burst=True).run()

    async with gateway_client(redis_url) as client:
        near = await client.ws_connect(f"/api/patrol/ws?token={unit_token('U1')}")
        await frame(near, "hello")
        await near.send_json({"type": "duty", "duty": "on_duty", "grid": POLE.grid,
                              "lon": POLE.lon + 0.002, "lat": POLE.lat})  # fmt: skip
        await frame(near, "ok")
        far = bearer(unit_token("U2"))
        resp = await client.post("/api/patrol/duty", headers=far, json={
            "duty": "on_duty", "lon": POLE.lon + 0.02, "lat": POLE.lat})  # fmt: skip
        assert resp.status == 202
        await dispatch_round()

        answer = await (await client.post("/api/alarms", json={"pole": POLE.code})).json()
        events = await client.get(answer["events_url"])
        assert (await next_status(events))["status"] == "received"
        await dispatch_round()

        pushed = (await frame(near, "inbox"))["message"]
        assert pushed["k"] == "dispatch" and pushed["pole"] == POLE.code
        incident = pushed["incident"]
        dispatched = await status_until(events, "dispatched")
        assert dispatched["incident"] == incident
        nearest = next(u for u in dispatched["units"] if u["unit"] == "U1")
        assert 190 < nearest["distance_m"] < 220 and nearest["eta_s"] > 0

        for action, phase in [("ack", "on_the_way"), ("on_scene", "on_scene")]:
            message = {"type": "ack", "incident": incident} if action == "ack" else {
                "type": "status", "incident": incident, "action": action}  # fmt: skip
            await near.send_json(message)
            await frame(near, "ok")
            await dispatch_round()
            assert (await status_until(events, phase))["incident"] == incident

        operator = bearer(operator_token("alice"))
        detail = await (await client.get(f"/api/incidents/{incident}", headers=operator)).json()
        assert detail["alarms"][0]["id"] == answer["alarm"]
        assert {"new", "dispatched", "acknowledged", "on_scene"} <= {
            e["event"] for e in detail["timeline"]}  # fmt: skip

        await near.send_json({"type": "status", "incident": incident, "action": "resolved"})
        await frame(near, "ok")
        await dispatch_round()
        assert (await status_until(events, "resolved"))["incident"] == incident
        await near.close()
