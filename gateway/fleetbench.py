"""``polewatch bench fleet``: how many patrol WebSockets one gateway process holds, and how
fast it pushes dispatches to them while they report positions.

N unit sockets are opened by separate client processes (:mod:`gateway.fleetclient`, a lean
asyncio protocol with no task per socket) on loopback; each sends a position every
``--period`` seconds. The bench writes dispatches into random units' inboxes at ``--rate`` per
second the way the dispatcher does (XADD to the inbox, PUBLISH the unit id), each carrying the
time it was written; the client takes the time the frame arrived. Reported: sockets held,
positions/s answered, push latency p50/p99 (dispatch written -> frame read on the socket),
the gateway process' CPU per socket-second and per message, Redis' CPU per message, and the
machine's load average (the figures move with other work on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Final

from gateway.benchrig import SECRET, bench_redis, cpu_s, serving
from gateway.benchrig import server as gateway_server
from gateway.processes import raise_fd_limit

SOCKETS_PER_CLIENT: Final = 2500
COMPACT: Final = (",", ":")
"""JSON as the gateway writes it (the client looks at a frame's first bytes)."""
DEFAULTS: Final = {"sockets": 10000, "period": 5.0, "rate": 100.0, "seconds": 20.0}
QUICK: Final = {"sockets": 200, "period": 1.0, "rate": 20.0, "seconds": 3.0}


def _option(args: argparse.Namespace, name: str) -> float:
    value = getattr(args, name, None)
    return float(value if value is not None else (QUICK if args.quick else DEFAULTS)[name])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark (``args.quick``: 200 sockets for 3 s, for smoke tests)."""
    sockets = int(_option(args, "sockets"))
    period, rate, seconds = (_option(args, n) for n in ("period", "rate", "seconds"))
    fd_limit = raise_fd_limit()
    if fd_limit < sockets + 256:
        raise SystemExit(f"polewatch bench fleet: {sockets} sockets need more than {fd_limit} fds")
    units = [f"FB{i:05d}" for i in range(sockets)]
    with contextlib.ExitStack() as stack:
        tmp, url, redis_pid, client = bench_redis(stack, args.redis_url, "pw-fleet-")
        load_before = os.getloadavg()
        # the same load on a bare aiohttp WebSocket server first: the floor the gateway adds to
        bare = _round(tmp, units, period, rate, seconds, None)
        gateway = _round(tmp, units, period, rate, seconds, (url, client, redis_pid))
        load_after = os.getloadavg()
    return {
        "what": "patrol WebSockets on one gateway process: positions in, dispatches pushed",
        "command": "polewatch bench fleet --json "
        f"--sockets {sockets} --period {period:g} --rate {rate:g} --seconds {seconds:g}",
        "client": f"{-(-sockets // SOCKETS_PER_CLIENT)} process(es) of gateway.fleetclient "
        "on loopback",
        "sockets": sockets,
        **gateway,
        "target_p99_ms": 50,
        "bare": bare,
        "bare_note": "a bare aiohttp WebSocket server under the same clients: hello, an ok "
        "frame per message, dispatch frames pushed from a timer (no tokens, no Redis)",
        "cpu_ratio_to_bare": round(
            gateway["gateway_cpu_share"] / max(1e-6, bare["gateway_cpu_share"]), 2
        ),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }


def _round(
    tmp: Path,
    units: list[str],
    period: float,
    rate: float,
    seconds: float,
    redis: tuple[str, Any, int | None] | None,
) -> dict[str, Any]:
    """One server under the fleet: the gateway on ``redis`` (url, client, pid), else bare."""
    from polewatch.embedded import free_port

    port = free_port()
    with contextlib.ExitStack() as stack:
        if redis is None:
            server_pid = stack.enter_context(_bare_server(port, rate))
        else:
            server_pid = stack.enter_context(gateway_server("gateway", port, redis[0], "fleet"))
        redis_pid = redis[2] if redis else None
        t0 = time.monotonic()
        clients = [
            stack.enter_context(_client(tmp, port, units[i : i + SOCKETS_PER_CLIENT], period))
            for i in range(0, len(units), SOCKETS_PER_CLIENT)
        ]
        opened = [_read(c.stdout) for c in clients]
        connect_s = time.monotonic() - t0
        cpu = cpu_s(server_pid), cpu_s(redis_pid)
        batches = _write_batches(port) if redis else (0.0, 0.0)
        for c in clients:
            assert c.stdin is not None
            c.stdin.write(f"go {seconds}\n".encode())
            c.stdin.flush()
        if redis is None:
            time.sleep(seconds)  # the bare server pushes by itself
            written = None
        else:
            written = _dispatch(redis[1], units, rate, seconds)
        results = [_read(c.stdout) for c in clients]
        server_cpu, redis_cpu = cpu_s(server_pid) - cpu[0], cpu_s(redis_pid) - cpu[1]
        after = _write_batches(port) if redis else (0.0, 0.0)
    entries, writes = after[0] - batches[0], after[1] - batches[1]
    held = sum(r["held"] for r in results)
    oks = sum(r["oks"] for r in results)
    pushed = sum(r["pushed"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    messages = oks + pushed
    return {
        "sockets_held": held,
        "connect_failed": sum(o["failed"] for o in opened),
        "connect_s": round(connect_s, 1),
        "seconds": seconds,
        "positions_sent_per_s": round(sum(r["sent"] for r in results) / seconds),
        "positions_per_s": round(oks / seconds),
        "errors": sum(r["errors"] for r in results),
        "dispatches_written": written,
        "dispatches_pushed": pushed,
        "push_latency_ms": {
            "p50": _quantile(latencies, 0.50),
            "p99": _quantile(latencies, 0.99),
            "max": round(latencies[-1], 2) if latencies else None,
        },
        "entries_per_write": round(entries / writes, 1) if writes else None,
        "gateway_cpu_share": round(server_cpu / seconds, 3),
        "gateway_cpu_us_per_socket_s": round(1e6 * server_cpu / max(1.0, held * seconds), 2),
        "gateway_cpu_us_per_message": round(1e6 * server_cpu / max(1, messages), 1),
        "redis_cpu_us_per_message": round(1e6 * redis_cpu / max(1, messages), 1)
        if redis_pid
        else None,
    }


def _write_batches(port: int) -> tuple[float, float]:
    """Stream entries written and round trips that wrote them, from the gateway's metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    found = dict.fromkeys(("_sum", "_count"), 0.0)
    for line in text.splitlines():
        for suffix in found:
            if line.startswith(f"polewatch_gateway_write_batch_size{suffix} "):
                found[suffix] = float(line.split()[1])
    return found["_sum"], found["_count"]


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


@contextlib.contextmanager
def _client(tmp: Path, port: int, units: list[str], period: float) -> Any:
    from gateway.auth import mint

    config = tmp / f"client-{port}-{units[0]}.json"
    tokens = [[u, mint(SECRET, "unit", u, 3600.0)] for u in units]
    config.write_text(
        json.dumps({"host": "127.0.0.1", "port": port, "period_s": period, "units": tokens})
    )
    cmd = [sys.executable, "-m", "gateway.fleetclient", str(config)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        try:
            yield proc
        finally:
            proc.kill()  # its sockets go with it; the gateway is stopped next


@contextlib.contextmanager
def _bare_server(port: int, rate: float) -> Iterator[int]:
    cmd = [sys.executable, "-m", "gateway.fleetbench", str(port), str(rate)]
    with serving(cmd, port, "the bare server") as pid:
        yield pid


def _serve_bare(port: int, rate: float) -> None:
    """The floor: a bare aiohttp WebSocket server speaking the same frames, no Redis."""
    import asyncio

    from aiohttp import web

    sockets: list[web.WebSocketResponse] = []

    async def patrol(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        await ws.send_str('{"type":"hello","unit":"","last":"0"}')
        sockets.append(ws)
        try:
            async for msg in ws:
                ref = json.loads(msg.data).get("ref")
                await ws.send_str(
                    json.dumps({"type": "ok", "ref": ref, "entry": "0-0"}, separators=COMPACT)
                )
        finally:
            sockets.remove(ws)
        return ws

    async def pushing(app: web.Application) -> AsyncIterator[None]:
        async def push() -> None:
            rng, n, loop = random.Random(15), 0, asyncio.get_running_loop()
            start = loop.time()
            while True:
                n += 1
                await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
                if sockets:
                    message = {"k": "dispatch", "incident": f"I{n}", "ts": time.time()}
                    frame = {"type": "inbox", "id": f"{n}-0", "message": message}
                    with contextlib.suppress(ConnectionError):  # a socket closing
                        await rng.choice(sockets).send_str(json.dumps(frame, separators=COMPACT))

        task = asyncio.ensure_future(push())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_get("/api/patrol/ws", patrol)
    app.cleanup_ctx.append(pushing)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _read(stream: IO[bytes] | None) -> dict[str, Any]:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("a fleet client exited early (see its stderr)")
    result: dict[str, Any] = json.loads(line)
    return result


def _dispatch(client: Any, units: list[str], rate: float, seconds: float) -> int:
    """Write dispatches to random units' inboxes at ``rate``/s for ``seconds``, as the
    dispatcher does: XADD to the inbox, then PUBLISH the unit id."""
    from polewatch import keys, wire

    rng = random.Random(15)
    start, n = time.monotonic(), 0
    end = start + seconds - 0.5  # the last pushes land before the clients stop counting
    while True:
        due = start + n / rate
        now = time.monotonic()
        if due > end:
            break
        if due > now:
            time.sleep(due - now)
        unit = rng.choice(units)
        ts = time.time()
        message = wire.Dispatch(
            incident=f"I{n}", unit=unit, priority=2, type="citizen_sos",
            lon=114.05, lat=22.54, ts=ts, ack_by=ts + 30,
        )  # fmt: skip
        with client.pipeline(transaction=False) as pipe:
            pipe.xadd(keys.unit_inbox(unit), wire.entry(message))
            pipe.publish(keys.UNIT_NOTIFY, unit)
            pipe.execute()
        n += 1
    return n


if __name__ == "__main__":
    raise_fd_limit()
    _serve_bare(int(sys.argv[1]), float(sys.argv[2]))
