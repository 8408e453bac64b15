"""The texts edge agents write into alarms, in the reader's language (polewatch.alarmtexts):
every text the camera, door and button agents can write is recognised (the camera's through its
own ``to_alarm``, the door's read out of ``edge/door/rules.py``, so a new one without a form
fails here), a person's words pass through, nothing raises, the gateway adds ``text_key`` to an
incident, its alarms and a patrol's dispatch, and Chromium shows them in zh-CN and en-US
(``POLEWATCH_SCREENSHOTS=docs/screenshots`` keeps ``console-camera-text-{zh,en}.png``)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from browser import needs_chromium, signed_in
from hypothesis import given
from hypothesis import strategies as st
from test_i18n_pages import POLE, browser, client  # noqa: F401

from edge.video import agent
from edge.video import config as cfg
from edge.video.scene import Event
from gateway import frames
from gateway.testing import bearer, operator_token, unit_token, write_incident
from polewatch import alarmtexts, i18n, keys, wire

if TYPE_CHECKING:
    from playwright.async_api import Browser

RULES = Path(__file__).resolve().parents[1] / "edge" / "door" / "rules.py"
SAMPLES = {
    "extra['denials']": "3", "door.denied_window_s:.0f": "60", "ev.direction": "in",
    "_other(ev.direction)": "out", "people": "4", "cards": "1", "ctl_id": "C-1",
    "silent:.0f": "30", "held:.0f": "45",
}  # fmt: skip
"""A value for each expression the door rules put into their texts."""
TEXT = re.compile(r'_raise\(\s*door, "(\w+)", \w+, (f?"[^"]*"|text)')
ASSIGNED = re.compile(r'text = (f?"[^"]*")')
SHOTS = os.environ.get("POLEWATCH_SCREENSHOTS")
NAMES = st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z")


def door_texts() -> list[tuple[str, str]]:
    """(alarm type, text) of every text the door rules write, values filled in, as the agent
    stores it (``door <id>: ...``)."""
    source = RULES.read_text()
    found, last = [], None
    for match in re.finditer(rf"{ASSIGNED.pattern}|{TEXT.pattern}", source):
        if match.group(1):  # text = "...", used by the next _raise
            last = match.group(1)
            continue
        kind, literal = match.group(2), match.group(3)
        literal = last if literal == "text" else literal
        assert literal is not None, match.group(0)
        body = literal.removeprefix("f")[1:-1]
        unknown = set(re.findall(r"\{([^}]*)\}", body)) - set(SAMPLES)
        assert not unknown, f"a door text with new values: {body!r}: {unknown}"
        found.append((kind, "door D-01: " + re.sub(r"\{([^}]*)\}", lambda m: SAMPLES[m[1]], body)))
    return found


def test_every_door_text_has_a_form() -> None:
    texts = door_texts()
    assert len(texts) >= 10
    for kind, text in texts:
        found = alarmtexts.parse(text, kind)
        assert found is not None, (kind, text)
        assert found.args["door"] == "D-01"
        assert i18n.translate(found.key, "zh-CN") != found.key


@given(rule=st.sampled_from(sorted(alarmtexts.CAMERA_RULES)), name=NAMES,
       track=st.none() | st.integers(0, 10**6))  # fmt: skip
def test_every_camera_text_has_a_form(rule: str, name: str, track: int | None) -> None:
    camera = cfg.parse({"id": "cam-1", "source": "0", "pole": "9999999"})
    event = Event(rule=rule, name=name, frame=1, ts=1_700_000_000.0, track=track)
    alarm = agent.to_alarm(camera, agent.Place(114.05, 22.54), event)
    found = alarmtexts.parse(alarm.text, alarm.type)
    assert found is not None, alarm.text
    assert found.key == f"alarm.{rule}" + ("_track" if track is not None else "")
    assert found.args["name"] == name
    assert found.args.get("track") == track


@given(text=st.text(max_size=80), kind=st.sampled_from(["call", "intrusion", "door_held", ""]))
def test_any_text_is_a_form_or_passes_through(text: str, kind: str) -> None:
    found = alarmtexts.parse(text, kind)
    assert found is None or i18n.translate(found.key, "en") != found.key


def test_a_persons_words_stay_as_typed() -> None:
    assert alarmtexts.parse("crowd gathering", "call") is None  # a call-taker's note
    assert alarmtexts.parse("crowd gathering", "crowd") is not None  # the camera's
    assert alarmtexts.parse("有人翻墙", "intrusion") is None


def test_a_dispatch_frame_carries_the_key() -> None:
    dispatch = wire.Dispatch(incident="7", unit="U1", priority=2, type="intrusion", lon=114.05,
                             lat=22.54, ts=1.0, ack_by=31.0, text="zone gate track 9")  # fmt: skip
    frame = json.loads(frames.encode_inbox("1-0", wire.entry(dispatch)))
    assert frame["message"]["text_key"] == "alarm.zone_track"
    assert frame["message"]["text_args"] == {"name": "gate", "track": 9}


async def camera_incident(redis: aioredis.Redis) -> None:
    """Incident I7 as a camera raised it (its text the agent's)."""
    await write_incident(redis, "A1", "escalated")
    await redis.hset(keys.incident("I7"), mapping={"type": "intrusion", "text": "zone gate"})
    await redis.zadd(keys.INCIDENTS_OPEN, {"I7": time.time()})  # on the console's queue


async def test_the_incident_detail_carries_the_key(
    client: TestClient[Any, Any],  # noqa: F811
    aredis: aioredis.Redis,
) -> None:
    await camera_incident(aredis)
    resp = await client.get("/api/incidents/I7", headers=bearer(operator_token("ada")))
    incident = (await resp.json())["incident"]
    assert (incident["text"], incident["text_key"]) == ("zone gate", "alarm.zone")


@needs_chromium
async def test_the_console_and_the_phone_read_it_in_their_language(
    client: TestClient[Any, Any],  # noqa: F811
    browser: Browser,  # noqa: F811
    aredis: aioredis.Redis,
) -> None:
    from playwright.async_api import expect

    await camera_incident(aredis)
    dispatch = wire.Dispatch(incident="I7", unit="U1", priority=2, type="intrusion",
                             lon=POLE.lon, lat=POLE.lat, ts=time.time(),
                             ack_by=time.time() + 30, text="zone gate")  # fmt: skip
    await aredis.xadd(keys.DEFAULT.unit_inbox("U1"), wire.entry(dispatch))  # type: ignore[arg-type]
    gateway = str(client.make_url("/")).rstrip("/")
    for locale, read in (("zh-CN", "禁入区域“gate”"), ("en-US", "zone “gate”")):
        page = await (await browser.new_context(locale=locale)).new_page()
        await signed_in(page, gateway)
        await page.click("#queue li.q[data-id='I7']")
        await expect(page.locator("#detail dd.user-text")).to_have_text(read)
        if SHOTS:
            await page.locator("#detail").screenshot(
                path=f"{SHOTS}/console-camera-text-{locale[:2]}.png"
            )
        await page.goto(f"{gateway}/patrol/?token={unit_token('U1')}")
        await expect(page.locator("#job-text")).to_have_text(read)
        await page.context.close()
