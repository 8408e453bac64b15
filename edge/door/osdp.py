"""OSDP intake: the agent as the control panel of OSDP readers (through libosdp, optional).

OSDP readers are peripherals: they report card reads, their tamper switch and their inputs
(the door contact), and the *panel* decides whether a card opens the door. So this bridge is a
small panel: a card in the reader's ``cards`` list is ``card_granted``, any other card is
``card_denied``; the door contact input (``contact_input``) gives ``door_opened`` /
``door_closed``; the local status report's tamper byte gives ``tamper``; while the reader is
online (secure channel up) it stands for a ``heartbeat`` of the door's controller, so a dead
RS-485 line raises ``controller_offline``. Everything then goes through the same rules as the
webhook and TCP events.

Configuration (in the door agent's TOML)::

    [[osdp]]
    door = "D-0042"
    port = "/dev/ttyUSB0"      # RS-485 adapter; readers sharing a port share one panel
    address = 101
    baud = 9600
    scbk = "000102030405060708090a0b0c0d0e0f"   # secure channel base key (hex), or none
    cards = ["1234567", "7654321"]

libosdp runs its own polling thread; its callbacks hand events to the event loop with
``call_soon_threadsafe``. Install with ``pip install 'polewatch[osdp]'``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import termios
import time
from collections.abc import Callable, Sequence
from typing import Any

from edge.door.config import OsdpReader
from edge.door.events import DoorEvent, EventName

log = logging.getLogger(__name__)

BAUDS = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400,
         57600: termios.B57600, 115200: termios.B115200}  # fmt: skip


class OsdpUnavailable(RuntimeError):
    """OSDP readers are configured but libosdp is not installed."""


def card_number(data: bytes, length: int | None) -> str:
    """A card's number from a raw read: the bits as an unsigned integer, in decimal."""
    bits = int.from_bytes(data, "big")
    if length and length < len(data) * 8:
        bits >>= len(data) * 8 - length
    return str(bits)


class ReaderState:
    """Turns one reader's libosdp events into door events (pure: testable without a line)."""

    def __init__(self, reader: OsdpReader, controller: str) -> None:
        self.reader = reader
        self.controller = controller
        self.contact: bool | None = None
        self.tamper = False

    def translate(self, event: dict[str, Any], ts: float) -> list[DoorEvent]:
        kind = event.get("event")
        if kind == _osdp().Event.CardRead:
            card = card_number(bytes(event.get("data", b"")), event.get("length"))
            name: EventName = "card_granted" if card in self.reader.cards else "card_denied"
            return [self._event(name, ts, card=card, reader=f"osdp-{self.reader.address}")]
        if kind != _osdp().Event.Status:
            return []
        report = bytes(event.get("report", b""))
        if event.get("type") == _osdp().StatusReportType.Local and report:
            tamper, was = bool(report[0]), self.tamper
            self.tamper = tamper
            return [self._event("tamper", ts)] if tamper and not was else []
        number = self.reader.contact_input
        if event.get("type") == _osdp().StatusReportType.Input and number is not None:
            if number >= len(report):
                return []
            contact, was_open = bool(report[number]), self.contact
            self.contact = contact
            if contact == was_open:
                return []
            return [self._event("door_opened" if contact else "door_closed", ts)]
        return []

    def _event(self, name: EventName, ts: float, **kw: Any) -> DoorEvent:
        return DoorEvent(controller=self.controller, door=self.reader.door, event=name, ts=ts, **kw)


class SerialChannel:
    """A raw tty (the RS-485 adapter) as a libosdp channel; non-blocking reads."""

    def __init__(self, path: str, baud: int) -> None:
        if baud not in BAUDS:
            raise ValueError(f"baud {baud} is not one of {sorted(BAUDS)}")
        self.id = 0
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        attrs = termios.tcgetattr(self.fd)
        attrs[0] = attrs[1] = attrs[3] = 0  # raw: no input/output/local processing
        attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
        attrs[4] = attrs[5] = BAUDS[baud]
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except BlockingIOError:
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except BlockingIOError:
            return 0

    def flush(self) -> None:
        termios.tcdrain(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class OsdpBus:
    """The control panels of every configured reader; started and stopped with the agent.

    ``deliver`` receives door events on the event loop. ``channels`` maps a port to a
    libosdp channel object (tests pass loopback channels; by default a :class:`SerialChannel`
    is opened per port).
    """

    def __init__(
        self,
        readers: Sequence[OsdpReader],
        controllers: dict[str, str],
        deliver: Callable[[list[DoorEvent]], None],
        *,
        channels: dict[str, Any] | None = None,
    ) -> None:
        osdp = _osdp()
        self._deliver = deliver
        self._states = {(r.port, r.address): ReaderState(r, controllers[r.door]) for r in readers}
        self._own: list[SerialChannel] = []
        channels = dict(channels or {})
        self.panels: list[tuple[Any, list[OsdpReader]]] = []
        by_port: dict[str, list[OsdpReader]] = {}
        for reader in readers:
            by_port.setdefault(reader.port, []).append(reader)
        for port, group in by_port.items():
            if port not in channels:
                channel = SerialChannel(port, group[0].baud)
                self._own.append(channel)
                channels[port] = _adapt(channel)
            infos = [
                osdp.PDInfo(
                    r.address, channels[port], scbk=bytes.fromhex(r.scbk) if r.scbk else None
                )
                for r in group
            ]
            panel = osdp.ControlPanel(
                infos, log_level=osdp.LogLevel.Error, event_handler=self._handler(port, group)
            )
            self.panels.append((panel, group))
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for panel, _ in self.panels:
            panel.start()

    def stop(self) -> None:
        for panel, _ in self.panels:
            panel.teardown()
        for channel in self._own:
            channel.close()

    def heartbeats(self, ts: float) -> list[DoorEvent]:
        """A heartbeat for the controller of each reader that is online now."""
        out = []
        for panel, group in self.panels:
            for reader in group:
                if panel.is_online(reader.address):
                    state = self._states[(reader.port, reader.address)]
                    out.append(DoorEvent(controller=state.controller, event="heartbeat", ts=ts))
        return out

    def _handler(self, port: str, group: list[OsdpReader]) -> Callable[[int, dict[str, Any]], int]:
        def handle(pd: int, event: dict[str, Any]) -> int:
            # libosdp's thread: translate here, deliver on the loop
            state = self._states[(port, group[pd].address)]
            try:
                events = state.translate(event, time.time())
            except Exception:
                log.exception("osdp: cannot translate %r", event)
                return 0
            if events and self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, events)
            return 0

        return handle


def _osdp() -> Any:
    try:
        import osdp
    except ImportError:
        raise OsdpUnavailable(
            "OSDP readers are configured but libosdp is not installed: "
            "pip install 'polewatch[osdp]'"
        ) from None
    return osdp


def _adapt(channel: SerialChannel) -> Any:
    """Wrap a channel in libosdp's Channel base class (it checks the type)."""
    base = _osdp().Channel

    class Adapted(base):  # type: ignore[misc, valid-type]
        def read(self, max_bytes: int) -> bytes:
            return channel.read(max_bytes)

        def write(self, buf: bytes) -> int:
            return channel.write(buf)

        def flush(self) -> None:
            channel.flush()

    return Adapted()


def loopback() -> tuple[Any, Any]:
    """Two connected in-memory channels (panel side, reader side), for simulators and tests
    that run a libosdp ``PeripheralDevice`` in process."""
    import queue

    base = _osdp().Channel

    class Pipe(base):  # type: ignore[misc, valid-type]
        def __init__(self, rx: queue.SimpleQueue[int], tx: queue.SimpleQueue[int]) -> None:
            super().__init__()
            self.rx, self.tx = rx, tx

        def read(self, max_bytes: int) -> bytes:
            out = bytearray()
            while len(out) < max_bytes:
                try:
                    out.append(self.rx.get_nowait())
                except queue.Empty:
                    break
            return bytes(out)

        def write(self, buf: bytes) -> int:
            for byte in buf:
                self.tx.put(byte)
            return len(buf)

        def flush(self) -> None:
            pass

    a: queue.SimpleQueue[int] = queue.SimpleQueue()
    b: queue.SimpleQueue[int] = queue.SimpleQueue()
    return Pipe(a, b), Pipe(b, a)
