"""OSDP readers (libosdp, secure channel) through the door agent: card reads against the
reader's card list, the door contact, tamper, and the reader's presence as a heartbeat."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from edge.door import config as door_config
from edge.door.agent import DoorAgent
from edge.door.config import OsdpReader
from edge.testing import alarms, until

osdp = pytest.importorskip("osdp")
from edge.door.osdp import ReaderState, card_number, loopback  # noqa: E402

KEY = "000102030405060708090a0b0c0d0e0f"


@pytest.fixture
def reader_device():
    """A simulated OSDP reader (libosdp PeripheralDevice) on a loopback line."""
    panel_side, reader_side = loopback()
    info = osdp.PDInfo(101, reader_side, scbk=bytes.fromhex(KEY))
    caps = osdp.PDCapabilities(
        [(osdp.Capability.ContactStatusMonitoring, 1, 1), (osdp.Capability.CardDataFormat, 1, 1)]
    )
    device = osdp.PeripheralDevice(info, caps, log_level=osdp.LogLevel.Error)
    device.start()
    yield panel_side, device
    device.teardown()


def card_read(number: int) -> dict:
    return {"event": osdp.Event.CardRead, "reader_no": 0, "format": osdp.CardFormat.Wiegand,
            "direction": 0, "length": 26, "data": (number << 6).to_bytes(4, "big")}  # fmt: skip


def status(kind: int, report: bytes) -> dict:
    return {"event": osdp.Event.Status, "type": kind, "report": report}


async def test_osdp_reader_events_become_door_alarms(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path, reader_device
):
    panel_side, device = reader_device
    conf = door_config.DoorSettings(
        redis_url=redis_url, http_port=-1, tcp_port=-1,
        doors=[door_config.Door(id="D1", controller="bus-1", lon=114.0, lat=22.5)],
        osdp=[OsdpReader(door="D1", port="loop", address=101, scbk=KEY, cards=["1001"])],
    )  # fmt: skip
    async with DoorAgent(conf, background=False, osdp_channels={"loop": panel_side}) as agent:
        assert agent.osdp is not None
        await until(lambda: agent.osdp.heartbeats(0.0), within_s=20)  # secure channel up
        device.submit_event(card_read(1001))  # on the list: granted, so the opening is fine
        device.submit_event(status(osdp.StatusReportType.Input, b"\x01"))
        await until(lambda: agent.events >= 2)
        device.submit_event(status(osdp.StatusReportType.Input, b"\x00"))
        for _ in range(3):
            device.submit_event(card_read(4242))  # unknown card, three times
        device.submit_event(status(osdp.StatusReportType.Local, b"\x01\x00"))
        await until(lambda: agent.events >= 7, within_s=20)
        await agent.publisher.drained(5)
    types = [a.type for a in alarms(sync_redis)]
    assert types == ["invalid_card_burst", "door_tamper"]


def test_translation_without_a_line():
    state = ReaderState(OsdpReader(door="D1", port="p", address=1, cards=["5"]), "C1")
    granted = state.translate(card_read(5), 1.0)
    assert [(e.event, e.card, e.door) for e in granted] == [("card_granted", "5", "D1")]
    assert (
        state.translate(status(osdp.StatusReportType.Input, b"\x01"), 2.0)[0].event == "door_opened"
    )
    assert state.translate(status(osdp.StatusReportType.Input, b"\x01"), 3.0) == []  # no change
    assert (
        state.translate(status(osdp.StatusReportType.Local, b"\x01\x00"), 4.0)[0].event == "tamper"
    )
    assert state.translate(status(osdp.StatusReportType.Local, b"\x01\x00"), 5.0) == []
    assert state.translate({"event": osdp.Event.KeyPress}, 6.0) == []
    assert card_number(b"\x00\x00\x10\x00", 26) == str(0x1000 >> 6)
