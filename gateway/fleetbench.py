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
from pathlib import Path
from typing import IO, Any, Final

from gateway.bench import SECRET, _cpu_s, bench_redis
from gateway.bench import _server as gateway_server
from gateway.fleetclient import raise_fd_limit

SOCKETS_PER_CLIENT: Final = 2500
DEFAULTS: Final = {"sockets": 10000, "period": 5.0, "rate": 100.0, "seconds": 20.0}
QUICK: Final = {"sockets": 200, "period": 1.0, "rate": 20.0, "seconds": 3.0}


def _option(args: argparse.Namespace, name: str) -> float:
    value = getattr(args, name, None)
    return float(value if value is not None else (QUICK if args.quick else DEFAULTS)[name])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark (``args.quick``: 200 sockets for 3 s, for smoke tests)."""
    from polewatch.embedded import free_port

    sockets = int(_option(args, "sockets"))
    period, rate, seconds = (_option(args, n) for n in ("period", "rate", "seconds"))
    fd_limit = raise_fd_limit()
    if fd_limit < sockets + 256:
        raise SystemExit(f"polewatch bench fleet: {sockets} sockets need more than {fd_limit} fds")
    with contextlib.ExitStack() as stack:
        tmp, url, redis_pid, client = bench_redis(stack, args.redis_url, "pw-fleet-")
        port = free_port()
        gateway_pid = stack.enter_context(gateway_server("gateway", port, url, "fleet-bench"))
        units = [f"FB{i:05d}" for i in range(sockets)]
        t0 = time.monotonic()
        clients = [
            stack.enter_context(_client(tmp, n, port, units[i : i + SOCKETS_PER_CLIENT], period))
            for n, i in enumerate(range(0, sockets, SOCKETS_PER_CLIENT))
        ]
        opened = [_read(c.stdout) for c in clients]
        connect_s = time.monotonic() - t0
        load_before = os.getloadavg()
        cpu = _cpu_s(gateway_pid), _cpu_s(redis_pid)
        batches = _write_batches(port)
        for c in clients:
            assert c.stdin is not None
            c.stdin.write(f"go {seconds}\n".encode())
            c.stdin.flush()
        written = _dispatch(client, units, rate, seconds)
        results = [_read(c.stdout) for c in clients]
        gateway_cpu, redis_cpu = _cpu_s(gateway_pid) - cpu[0], _cpu_s(redis_pid) - cpu[1]
        entries, writes = (b - a for a, b in zip(batches, _write_batches(port), strict=True))
        load_after = os.getloadavg()
    held = sum(r["held"] for r in results)
    oks = sum(r["oks"] for r in results)
    pushed = sum(r["pushed"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    messages = oks + pushed
    return {
        "what": "patrol WebSockets on one gateway process: positions in, dispatches pushed",
        "command": "polewatch bench fleet --json "
        f"--sockets {sockets} --period {period:g} --rate {rate:g} --seconds {seconds:g}",
        "client": f"{len(clients)} process(es) of gateway.fleetclient on loopback",
        "sockets": sockets,
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
        "target_p99_ms": 50,
        "entries_per_write": round(entries / writes, 1) if writes else None,
        "gateway_cpu_share": round(gateway_cpu / seconds, 3),
        "gateway_cpu_us_per_socket_s": round(1e6 * gateway_cpu / max(1.0, held * seconds), 2),
        "gateway_cpu_us_per_message": round(1e6 * gateway_cpu / max(1, messages), 1),
        "redis_cpu_us_per_message": round(1e6 * redis_cpu / max(1, messages), 1)
        if redis_pid
        else None,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
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
def _client(tmp: Path, n: int, port: int, units: list[str], period: float) -> Any:
    from gateway.auth import mint

    config = tmp / f"client-{n}.json"
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
