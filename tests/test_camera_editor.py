"""Tuning a camera without a restart: an operator draws a tripwire on the camera's picture in
the console (real Chromium), saves it through the configuration API, and the running video
agent counts a synthetic crossing on it; the API refuses bad configurations naming the key,
refuses stale edits, audits saves; the TOML writer round-trips what the parser accepts."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from browser import launch, needs_chromium
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import testing
from edge.video import agent, synthetic
from edge.video import config as cfg
from gateway.console.accounts import hash_password
from gateway.console.settings import Account, ConsoleSettings
from gateway.testing import bearer, gateway_client, operator_token, unit_token
from polewatch import camera_configs, keys, wire

CAMERA = "gate-cam"
PASSWORD = "tuning-the-gate-2026"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
OPERATOR = bearer(operator_token("ada"))


def camera_file(tmp_path: Path) -> Path:
    """A 320x240 camera looping a figure that walks left to right across the picture; its
    config has no rule yet."""
    frames = synthetic.scene([synthetic.walk((30, 200), (290, 200), 40)], lead=30)
    video = synthetic.write(tmp_path / "gate.avi", frames, fps=20)
    path = tmp_path / "gate.toml"
    path.write_text(
        f'# the gate camera\nid = "{CAMERA}"\nsource = "{video}"\nlon = 114.06\nlat = 22.54\n\n'
        '[analysis]\nfps = 20\nperson_min_height = 20\nsweep = 0\n\n[detector]\nkind = "motion"\n'
    )
    return path


def crossings(client: redis.Redis, rule: str) -> list[wire.Alarm]:
    return [a for a in testing.alarms(client) if a.rule == rule and a.type == "tripwire"]


def running_version(client: redis.Redis) -> int:
    beats = [wire.decode_entry(f, wire.Heartbeat) for _, f in client.xrange(keys.HEARTBEATS)]  # type: ignore[union-attr,arg-type]
    versions = [h.config_version for h in beats if h.source == f"camera:{CAMERA}"]
    return next((v for v in reversed(versions) if v is not None), 0)


@contextlib.asynccontextmanager
async def running_agent(tmp_path: Path, redis_url: str) -> AsyncIterator[Path]:
    path = camera_file(tmp_path)
    conf = agent.VideoSettings(redis_url=redis_url, heartbeat_s=0.5, frame_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve([cfg.load(path)], conf, stop, paths=[path]))
    try:
        yield path
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_saved_tripwire_counts_crossings_without_a_restart(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis
) -> None:
    async with running_agent(tmp_path, redis_url) as path, gateway_client(redis_url) as client:
        await testing.until(lambda: running_version(sync_redis) == 1, within_s=20)
        got = await client.get(f"/api/console/cameras/{CAMERA}/config", headers=OPERATOR)
        stored = await got.json()
        assert stored["version"] == 1 and stored["toml"].startswith("# the gate camera")
        await testing.until(lambda: sync_redis.hget(keys.camera_config(CAMERA), "size"))
        config = stored["config"]
        config["rules"] = [{"type": "tripwire", "name": "gate-line", "cooldown": 0,
                            "line": [[160, 100], [160, 239]], "direction": "b_to_a"}]  # fmt: skip
        put = await client.put(f"/api/console/cameras/{CAMERA}/config", headers=OPERATOR,
                               json={"base": 1, "config": config})  # fmt: skip
        assert put.status == 200, await put.text()
        assert (await put.json())["version"] == 2
        await testing.until(lambda: running_version(sync_redis) == 2, within_s=10)
        # a left-to-right walk crosses from side b (west of a downward line) to side a
        found = await testing.until(lambda: crossings(sync_redis, "gate-line"), within_s=30)
        assert found[0].extra["direction"] == "b_to_a"
        written = tomllib.loads(path.read_text())
        assert written["rules"][0]["name"] == "gate-line"  # a restart runs the edit
        audit: Any = sync_redis.xrange(keys.CAMERA_AUDIT)
        assert [(e[b"login"], e[b"version"]) for _, e in audit] == [(b"ada", b"2")]


async def test_the_api_refuses_bad_and_stale_configurations(redis_url: str, aredis: Any) -> None:
    text = f'id = "{CAMERA}"\nsource = "0"\nlon = 114.0\nlat = 22.5\n'
    await camera_configs.save(aredis, CAMERA, text, base=None, by="agent-start")
    url = f"/api/console/cameras/{CAMERA}/config"
    line = {"type": "tripwire", "line": [[1, 2]]}
    async with gateway_client(redis_url) as client:
        missing = await client.get("/api/console/cameras/nobody/config", headers=OPERATOR)
        assert missing.status == 404
        unit = await client.put(url, headers=bearer(unit_token("U1")), json={"base": 1})
        assert unit.status == 403
        cases = [
            ({"base": 1, "toml": text + "rules = [{type = 'tripwire', line = [[1, 2]]}]\n"},
             422, "rules[0].line: expected two points"),
            ({"base": 1, "config": {"id": CAMERA, "source": "0", "lon": 114.0, "lat": 22.5,
                                    "rules": [line | {"line": [[1, 2], [3, "x"]]}]}},
             422, "rules[0].line[1][1]"),
            ({"base": 1, "toml": "id = "}, 422, "not valid TOML"),
            ({"base": 1, "toml": text.replace(CAMERA, "other")}, 422, "id: 'other'"),
            ({"base": 1}, 422, "either config or toml"),
            ({"base": 0, "toml": text}, 409, "now version 1"),
        ]  # fmt: skip
        for body, status, message in cases:
            answer = await client.put(url, headers=OPERATOR, json=body)
            assert answer.status == status, (body, await answer.text())
            assert message in (await answer.json())["error"]
        ok = await client.put(url, headers=OPERATOR, json={"base": 1, "toml": text})
        assert (ok.status, (await ok.json())["version"]) == (200, 2)


@st.composite
def configs(draw: st.DrawFn) -> cfg.CameraConfig:
    point = st.tuples(st.integers(0, 2000), st.integers(0, 2000)).map(list)
    name = st.from_regex(r"[A-Za-z0-9_.:@#/-]{1,20}", fullmatch=True)
    rules = st.lists(st.one_of(
        st.builds(lambda a, b, d: {"type": "tripwire", "line": [a, b], "direction": d},
                  point, point, st.sampled_from(["any", "a_to_b", "b_to_a"])),
        st.builds(lambda p, dwell: {"type": "loitering", "polygon": p, "dwell": dwell},
                  st.lists(point, min_size=3, max_size=6), st.floats(0, 600)),
    ), max_size=4)  # fmt: skip
    data = {"id": draw(name), "source": draw(st.text(min_size=1, max_size=30)),
            "lon": 114.0, "lat": 22.5, "district": draw(st.text(max_size=10)),
            "rules": [r | {"name": f"r{i}"} for i, r in enumerate(draw(rules))]}  # fmt: skip
    try:
        return cfg.parse(data)
    except cfg.ConfigError:
        return cfg.parse({"id": "fallback", "source": "0", "lon": 1.0, "lat": 1.0})


@settings(max_examples=150, deadline=None)
@given(configs())
def test_the_toml_writer_round_trips_every_valid_config(config: cfg.CameraConfig) -> None:
    assert cfg.loads(cfg.dumps(config)) == config


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_naming_why(text: str) -> None:
    try:
        cfg.loads(text, where="toml")
    except cfg.ConfigError as exc:
        assert str(exc).startswith("toml")


@needs_chromium
async def test_an_operator_draws_a_tripwire_and_the_running_agent_counts_a_crossing(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    console = ConsoleSettings(users={"ada": Account(role="operator",
                                                    password=hash_password(PASSWORD))})  # fmt: skip
    async with (
        running_agent(tmp_path, redis_url),
        gateway_client(redis_url, console=console) as client,
        playwright_api.async_playwright() as p,
    ):
        await testing.until(lambda: sync_redis.get(keys.camera_frame(CAMERA)), within_s=20)
        await testing.until(lambda: sync_redis.hget(keys.camera_config(CAMERA), "size"))
        browser = await launch(p)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(str(client.make_url("/console/")))
            await page.fill("#login-name", "ada")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
            await page.click("button[data-view=cameras]")
            await page.click(f'.cam[data-id="{CAMERA}"] button.edit')
            await page.wait_for_selector("#cam-editor .running[data-running='1']")
            await page.click("#cam-editor button[data-tool=tripwire]")
            box = await page.locator("#cam-editor .overlay").bounding_box()
            assert box is not None
            for fx, fy in ((0.5, 100 / 240), (0.5, 235 / 240)):  # across the walkway
                await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            assert await page.locator("#cam-editor .overlay line.tripwire").count() == 1
            await page.click("#cam-editor button[data-tool=mask]")  # a tree in the corner
            for fx, fy in ((0.05, 0.05), (0.25, 0.05), (0.15, 0.25)):
                await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            await page.click("#editor-finish")
            assert await page.locator("#cam-editor .overlay polygon.mask").count() == 1
            await page.fill("#cam-editor .rule[data-type=tripwire] input.name", "drawn-line")
            await page.fill("#cam-editor .rule[data-type=tripwire] input[name=cooldown]", "0")
            await page.locator("#cam-editor .rule[data-type=tripwire] input[name=cooldown]").blur()
            await page.click("#editor-save")
            await page.wait_for_selector("#cam-editor .status.ok")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "camera-editor.png"))
            await page.wait_for_selector("#cam-editor .running[data-running='2']", timeout=15_000)
            found = await testing.until(lambda: crossings(sync_redis, "drawn-line"), within_s=30)
            assert found[0].camera == CAMERA
            stored = tomllib.loads(sync_redis.hget(keys.camera_config(CAMERA), "toml").decode())  # type: ignore[union-attr]
            (x1, y1), (x2, y2) = stored["rules"][0]["line"]
            assert abs(x1 - 160) <= 2 and abs(x2 - 160) <= 2 and abs(y1 - 100) <= 2
            assert stored["rules"][0]["cooldown"] == 0  # the edited parameter was saved
            assert len(stored["analysis"]["motion_mask"]) == 1
        finally:
            await browser.close()
