"""The load side of ``polewatch bench fleet``: many patrol WebSockets in one lean process.

Run by the bench as ``python -m gateway.fleetclient CONFIG.json`` (several processes side by
side). Each socket is a bare :class:`asyncio.Protocol` speaking just enough RFC 6455 (client
frames masked with a zero key, server frames never fragmented by aiohttp at these sizes), with
no task per socket: one ticker sends each socket's position once per period, so the client's
CPU per socket stays far below the gateway's it measures.

Protocol with the bench on stdin/stdout, one JSON line each way:
``{"connected": n, "failed": m}`` once every socket is open (or failed), then on ``go SECONDS``
the counters restart and, after that many seconds, ``{"held": ..., "latencies_ms": [...]}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from typing import Any, Final

from gateway.processes import raise_fd_limit

TICK_S: Final = 0.05
CONNECTING: Final = 200
"""Handshakes in flight at once."""
POSITION: Final = '{"type":"position","lon":%.5f,"lat":%.5f,"ref":%d}'
ACK: Final = '{"type":"ack","incident":"%s"}'


def frame(text: str, opcode: int = 0x1) -> bytes:
    """A masked client frame (zero mask key: the payload goes as it is)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Counters:
    """What one client process saw since the last ``go``."""

    def __init__(self) -> None:
        self.oks = 0
        self.errors = 0
        self.pushed = 0
        self.sent = 0
        self.latencies_ms: list[float] = []
        self.measuring = False


class Socket(asyncio.Protocol):
    """One unit's WebSocket."""

    def __init__(self, unit: str, request: bytes, counters: Counters) -> None:
        self.unit = unit
        self.request = request
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.open = False
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before hello"))

    def send(self, text: str) -> None:
        if self.open and self.transport is not None:
            self.transport.write(frame(text))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.ready.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            del buf[: end + 4]
        while len(buf) >= 2:
            opcode, size, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, start = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + size:
                return
            payload = bytes(buf[start : start + size])
            del buf[: start + size]
            if opcode == 0x1:
                self.text(payload)
            elif opcode == 0x9 and self.transport is not None:  # ping: answer with pong
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                self.open = False

    def text(self, payload: bytes) -> None:
        c = self.counters
        if payload.startswith(b'{"type":"ok","ref":null'):
            pass  # the answer to an ack
        elif payload.startswith(b'{"type":"ok"'):
            c.oks += 1
        elif payload.startswith(b'{"type":"inbox"'):
            now = time.time()
            message: Any = json.loads(payload)["message"]
            c.pushed += 1
            if c.measuring and "ts" in message:
                c.latencies_ms.append(1000.0 * (now - float(message["ts"])))
            if message.get("k") == "dispatch":
                self.send(ACK % message["incident"])
        elif payload.startswith(b'{"type":"hello"'):
            self.open = True
            if not self.ready.done():
                self.ready.set_result(None)
        elif payload.startswith(b'{"type":"error"'):
            c.errors += 1


async def _connect(host: str, port: int, unit: str, token: str, c: Counters) -> Socket:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/patrol/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_connection(lambda: Socket(unit, request, c), host, port)
    await asyncio.wait_for(sock.ready, 60)
    return sock


async def _ticker(sockets: list[Socket], period_s: float, c: Counters) -> None:
    """Each socket sends a position once per ``period_s``, spread evenly over the period."""
    slots = max(1, round(period_s / TICK_S))
    tick, start = 0, time.monotonic()
    while True:
        for i in range(tick % slots, len(sockets), slots):
            sock = sockets[i]
            if sock.open:
                sock.send(POSITION % (114.0 + (i % 997) * 1e-4, 22.5 + (i % 499) * 1e-4, tick))
                c.sent += 1
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))


async def main(config: dict[str, Any]) -> None:
    raise_fd_limit()
    host, port = config["host"], int(config["port"])
    c = Counters()
    gate = asyncio.Semaphore(CONNECTING)

    async def one(unit: str, token: str) -> Socket | None:
        async with gate:
            try:
                return await _connect(host, port, unit, token, c)
            except (OSError, TimeoutError) as exc:
                print(f"{unit}: {exc}", file=sys.stderr)
                return None

    opened = await asyncio.gather(*(one(u, t) for u, t in config["units"]))
    sockets = [s for s in opened if s is not None]
    _say({"connected": len(sockets), "failed": len(opened) - len(sockets)})
    ticker = asyncio.ensure_future(_ticker(sockets, float(config["period_s"]), c))
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = (await reader.readline()).decode().split()
    seconds = float(line[1]) if len(line) == 2 and line[0] == "go" else 0.0
    c.oks = c.errors = c.pushed = c.sent = 0
    c.measuring = True
    await asyncio.sleep(seconds)
    c.measuring = False
    ticker.cancel()
    _say({
        "held": sum(1 for s in sockets if s.open), "sent": c.sent, "oks": c.oks,
        "errors": c.errors, "pushed": c.pushed, "latencies_ms": c.latencies_ms,
    })  # fmt: skip


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
