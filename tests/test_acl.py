"""Agents as their own Redis users: an edge agent can append alarms and nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError

from edge.door.events import DoorEvent
from edge.publisher import AlarmPublisher
from edge.testing import alarm, alarm_ids, heartbeat
from polewatch import acl, keys
from polewatch.cli import main
from polewatch.embedded import EmbeddedRedis
from polewatch.poles.model import Pole


@pytest.fixture
def admin(make_redis: type[EmbeddedRedis], tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """A private server (users must not leak into the shared one) and its admin client."""
    server = make_redis(tmp_path / "redis", appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    yield server.url, client
    client.close()


def as_user(url: str, admin: redis.Redis, role: str) -> tuple[str, redis.Redis]:
    acl.apply(admin, f"{role}-1", role, "s3cret-" + role)
    user_url = acl.user_url(url, f"{role}-1", "s3cret-" + role)
    return user_url, redis.Redis.from_url(user_url)


async def test_edge_user_publishes_alarms_snapshots_heartbeats_and_frames(admin):
    url, root = admin
    edge_url, edge = as_user(url, root, "edge")
    edge.close()
    async with AlarmPublisher(edge_url, name="edge-agent") as pub:
        assert await pub.publish(alarm(1), snapshot=b"jpeg") == "sent"
        assert await pub.heartbeat(heartbeat(1)) == "sent"
        assert await pub.frame("cam-1", b"frame")
    assert alarm_ids(root) == ["t-1"]
    assert root.get(keys.snapshot("t-1")) == b"jpeg"
    assert root.xlen(keys.HEARTBEATS) == 1 and root.get(keys.camera_frame("cam-1")) == b"frame"


def test_edge_user_cannot_read_or_write_anything_else(admin):
    url, root = admin
    root.hset(keys.incident("I1"), mapping={"id": "I1", "state": "new"})
    root.xadd(keys.ALARMS, {"m": b"x"})
    _, edge = as_user(url, root, "edge")
    try:
        forbidden = [
            lambda: edge.hgetall(keys.incident("I1")),
            lambda: edge.hgetall(keys.poles("shenzhen")),  # one pole at a time (HGET) only
            lambda: edge.hget(keys.incident("I1"), "state"),
            lambda: edge.xrange(keys.ALARMS),
            lambda: edge.xread({keys.ALARMS: "0"}),
            lambda: edge.xlen(keys.ALARMS),
            lambda: edge.xadd(keys.unit_inbox("u1"), {"m": b"x"}),
            lambda: edge.xadd(keys.COMMANDS, {"m": b"x"}),
            lambda: edge.set(keys.ALARMS, b"wiped"),  # SET may not touch the streams
            lambda: edge.get(keys.snapshot("t-1")),  # write-only even on its own keys
            lambda: edge.keys("*"),
            lambda: edge.flushall(),
            lambda: edge.fcall("anything", 0),
        ]
        for command in forbidden:
            with pytest.raises(NoPermissionError):
                command()
    finally:
        edge.close()
    assert root.type(keys.ALARMS) == b"stream" and root.xlen(keys.ALARMS) == 1


async def test_edge_user_places_its_door_by_pole(admin):
    from edge.door import config as door_config
    from edge.door.agent import DoorAgent

    url, root = admin
    pole = Pole(code="4401234", lon=114.06, lat=22.55, city="shenzhen", grid="G1")
    root.hset(keys.poles("shenzhen"), "4401234", msgspec.msgpack.encode(pole))
    edge_url, edge = as_user(url, root, "edge")
    edge.close()
    conf = door_config.DoorSettings(
        redis_url=edge_url, http_port=-1, tcp_port=-1,
        doors=[door_config.Door(id="D1", controller="C1", pole="4401234")],
    )  # fmt: skip
    async with DoorAgent(conf, background=False) as agent:
        (alarm,) = await agent.accept([DoorEvent(controller="C1", door="D1", event="tamper", ts=5)])
        await agent.publisher.drained(5)
    assert (alarm.lon, alarm.lat, alarm.grid) == (114.06, 22.55, "G1")
    assert alarm_ids(root) == [alarm.id]


def test_button_user_reads_only_its_feedback(admin):
    url, root = admin
    root.set(keys.alarm("a1"), "I1")
    root.hset(keys.incident("I1"), mapping={"state": "dispatched", "units": "u1"})
    _, button = as_user(url, root, "button")
    try:
        assert button.get(keys.alarm("a1")) == b"I1"
        assert button.hmget(keys.incident("I1"), ["state", "units"]) == [b"dispatched", b"u1"]
        with pytest.raises(NoPermissionError):
            button.hgetall(keys.unit("u1"))
        with pytest.raises(NoPermissionError):
            button.xadd(keys.unit_inbox("u1"), {"m": b"x"})
        with pytest.raises(NoPermissionError):
            button.hset(keys.incident("I1"), "state", "closed")
    finally:
        button.close()


def test_bad_specs_and_roles():
    with pytest.raises(acl.AclError, match="unknown role"):
        acl.rules("root")
    with pytest.raises(acl.AclError, match="USER=ROLE"):
        acl.parse_user("edge-1")
    user, role, password = acl.parse_user("cam-7=edge")
    assert (user, role) == ("cam-7", "edge") and len(password) >= 24
    assert acl.user_url("redis://127.0.0.1:6390/0", "a b", "p@ss") == (
        "redis://a%20b:p%40ss@127.0.0.1:6390/0"
    )


def test_cli_apply_prints_working_urls(admin, capsys):
    url, root = admin
    assert main(["acl", "apply", "--redis-url", url, "door-1=edge", "gw=gateway:pw"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(u, r) for u, r, _ in lines] == [("door-1", "edge"), ("gw", "gateway")]
    door = redis.Redis.from_url(lines[0][2])
    try:
        assert door.ping()
        door.xadd(keys.ALARMS, {"m": b"x"})
        with pytest.raises(ResponseError):
            door.xrange(keys.ALARMS)
    finally:
        door.close()
    assert main(["acl", "print", "--role", "edge"]) == 0
    assert "+xadd" in capsys.readouterr().out


async def test_button_agent_works_as_its_own_user(admin):
    from edge.button import ButtonAgent, ButtonSettings
    from edge.testing import until

    url, root = admin
    pole = Pole(code="4401234", lon=114.06, lat=22.55, city="shenzhen", district="Futian")
    root.hset(keys.poles("shenzhen"), "4401234", msgspec.msgpack.encode(pole))
    button_url, button = as_user(url, root, "button")
    button.close()
    conf = ButtonSettings(redis_url=button_url, pole="4401234", poll_s=0.2)
    async with ButtonAgent(conf) as agent:
        fb = await agent.press()
        assert fb.stage == "sent" and alarm_ids(root) == [fb.alarm]
        # what the dispatcher writes (polewatch/records.py), then its notification
        assert fb.alarm is not None
        root.set(keys.alarm(fb.alarm), "I-77")
        root.hset(keys.incident("I-77"), mapping={
            "id": "I-77", "state": "dispatched", "priority": 1, "type": "citizen_sos",
            "group": "citizen", "lon": 114.06, "lat": 22.55, "created": 1.0, "units": "u9",
        })  # fmt: skip
        root.publish(keys.INCIDENT_NOTIFY, "I-77")
        await until(lambda: agent.feedback.stage == "dispatched")
        assert agent.feedback.units == ["u9"] and agent.feedback.incident == "I-77"


async def test_gateway_user_appends_through_its_script_and_reads_state(admin):
    from gateway.writer import APPEND

    url, root = admin
    root.hset(keys.incident("I1"), mapping={"id": "I1", "state": "new"})
    _, gateway = as_user(url, root, "gateway")
    try:
        sha = gateway.script_load(APPEND)
        gateway.evalsha(sha, 1, keys.PATROL_EVENTS, b"payload")
        assert root.xlen(keys.PATROL_EVENTS) == 1
        assert gateway.hgetall(keys.incident("I1"))[b"state"] == b"new"
        with pytest.raises(NoPermissionError):
            gateway.hset(keys.incident("I1"), "state", "closed")
        with pytest.raises(NoPermissionError):
            gateway.xadd(keys.unit_inbox("u1"), {"m": b"x"})
        with pytest.raises(ResponseError):  # the script may not write elsewhere either
            gateway.evalsha(sha, 1, keys.unit_inbox("u1"), b"payload")
    finally:
        gateway.close()


async def test_dispatcher_user_runs_the_real_dispatcher(admin):
    from dispatcher import scenario as sc

    url, root = admin
    dispatcher_url, dispatcher = as_user(url, root, "dispatcher")
    dispatcher.close()
    sc.write(root, [sc.on_duty("u1", 114.05, 22.54), sc.alarm(114.05, 22.54, id="a-1")])
    await sc.drain(dispatcher_url)
    assert root.get(keys.alarm("a-1")) is not None
    assert root.xlen(keys.unit_inbox("u1")) == 1
