"""``polewatch bench gateway``: alarms per second one gateway process accepts (validated,
written to Redis, 202 answered), against a bare aiohttp handler that answers 202 to the same
requests, measured with the same load client in the same run.

The load client is ``wrk`` (C, one thread, Lua script for the POST bodies), so the client
costs little of the CPU the server is measured on; a Python client would need more CPU than
the gateway it drives. Each server runs in its own process, on a private redis-server unless
``--redis-url`` names one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gateway.benchrig import bench_redis, cpu_s, server

POLES = 2000
ROUNDS = 3
CONNECTIONS = 64
LUA = """
local codes = {%s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/alarms", nil, '{"pole":"' .. codes[(n %% #codes) + 1] .. '"}')
end
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark (``args.quick``: 3 s per server instead of 10)."""

    from polewatch import keys
    from polewatch.embedded import free_port

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("polewatch bench gateway needs wrk: sudo apt-get install wrk")
    duration = 3 if args.quick else 8
    codes = [
        f"3{road:03d}{pole:03d}" for road in range(1, 21) for pole in range(1, POLES // 20 + 1)
    ]
    with contextlib.ExitStack() as stack:
        tmp, url, redis_pid, client = bench_redis(stack, args.redis_url, "pw-bench-")
        existed = bool(client.exists(keys.ALARMS))
        if existed and client.xinfo_groups(keys.ALARMS):
            raise SystemExit(
                f"{url} has consumers on {keys.ALARMS} (a running dispatcher?): the bench would "
                "feed them tens of thousands of alarms; use a spare Redis or none"
            )
        city = f"bench-{os.getpid()}"
        _store_poles(url, city, codes)
        script = tmp / "alarms.lua"
        script.write_text(LUA % ", ".join(f'"{c}"' for c in codes))
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "gateway": []}
        # alternate the two servers so that load from other work on a shared machine falls
        # on both alike; the best round of each is its capacity
        for _ in range(1 if args.quick else ROUNDS):
            for name in ("bare", "gateway"):
                port = free_port()
                with server(name, port, url, city) as pid:
                    _warm_up(wrk, port, script)
                    before = client.xlen(keys.ALARMS)
                    cpu = cpu_s(pid), cpu_s(redis_pid)
                    result = _wrk(wrk, port, script, duration)
                    server_cpu = cpu_s(pid) - cpu[0]
                    result["stored_in_redis"] = client.xlen(keys.ALARMS) - before
                    result["server_cpu_us_per_request"] = round(
                        1e6 * server_cpu / result["requests"], 1
                    )
                    result["requests_per_cpu_s"] = round(result["requests"] / server_cpu)
                    if redis_pid and name == "gateway":
                        redis_cpu = cpu_s(redis_pid) - cpu[1]
                        result["redis_cpu_us_per_alarm"] = round(
                            1e6 * redis_cpu / result["requests"], 1
                        )
                runs[name].append(result)
        if not existed:
            client.delete(keys.ALARMS)
        _drop_poles(client, city)
    gateway = max(runs["gateway"], key=lambda r: r["requests_per_s"])
    bare = max(runs["bare"], key=lambda r: r["requests_per_s"])
    gateway_cpu = min(r["server_cpu_us_per_request"] for r in runs["gateway"])
    bare_cpu = min(r["server_cpu_us_per_request"] for r in runs["bare"])
    return {
        "what": "POST /api/alarms answered 202: gateway (validate, resolve pole, batched XADD) "
        "vs a bare aiohttp handler answering 202",
        "client": f"wrk 1 thread, {CONNECTIONS} connections, {duration} s per round, "
        "Lua POST bodies (2000 pole codes), best of the rounds",
        "gateway_alarms_per_s": gateway["requests_per_s"],
        "refused": sum(r["non_2xx"] for r in runs["gateway"]),
        "bare_requests_per_s": bare["requests_per_s"],
        "ratio_to_bare": round(gateway["requests_per_s"] / bare["requests_per_s"], 3),
        "target_alarms_per_s": 8000,
        "gateway_cpu_us_per_alarm": gateway_cpu,
        "bare_cpu_us_per_request": bare_cpu,
        "gateway_alarms_per_cpu_s": round(1e6 / gateway_cpu),
        "cpu_ratio_to_bare": round(bare_cpu / gateway_cpu, 3),
        "note": "throughput moves with other load on a shared machine; CPU time per request "
        "(the server process' own, from /proc) does much less: alarms per CPU-second is the "
        "rate one gateway process sustains with a core to itself",
        "round_ratios": [
            round(g["requests_per_s"] / b["requests_per_s"], 3)
            for g, b in zip(runs["gateway"], runs["bare"], strict=True)
        ],
        "gateway": runs["gateway"],
        "bare": runs["bare"],
        "cpus": os.cpu_count(),
    }


def _store_poles(url: str, city: str, codes: list[str]) -> None:
    import asyncio

    from polewatch.connection import connect
    from polewatch.poles.model import Pole
    from polewatch.poles.registry import PoleRegistry

    async def store() -> None:
        client = connect(url, name="bench-poles")
        poles = [
            Pole(
                code=c,
                lon=113.9 + i * 1e-4,
                lat=22.5 + (i % 50) * 1e-4,
                city=city,
                district="Nanshan",
                grid="NS-0001",
            )  # fmt: skip
            for i, c in enumerate(codes)
        ]
        await PoleRegistry(client, city).store(poles)
        await client.aclose()

    asyncio.run(store())


def _drop_poles(client: Any, city: str) -> None:
    from polewatch import keys

    client.delete(keys.poles(city), keys.poles_geo(city), keys.poles_version(city))
    client.srem(keys.CITIES, city)


def _warm_up(wrk: str, port: int, script: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    subprocess.run([wrk, "-t1", "-c8", "-d1s", "-s", str(script), base], capture_output=True)


def _wrk(wrk: str, port: int, script: Path, duration: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    out = subprocess.run(
        [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s", str(script), base],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    non_2xx = int(bad.group(1)) if bad else 0
    return {
        # Only answered-and-accepted requests count: a refusal is not throughput.
        "requests_per_s": round(rps * (total - non_2xx) / total) if total else 0,
        "requests": total,
        "non_2xx": non_2xx,
        "socket_errors": errors.group(1).strip() if errors else None,
        "latency": {f"p{k}": v for k, v in latency.items()},
    }
