"""What the gateway's benchmarks stand on (``polewatch bench gateway`` and ``bench fleet``): a
private redis-server, server processes started on a port and stopped after, and their CPU time.

``python -m gateway.benchrig KIND PORT REDIS_URL CITY`` serves one bench server: ``gateway``
(the real application) or ``bare`` (an aiohttp handler that answers 202 to every alarm).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SECRET = "bench-secret-0123456789abcdef"
"""Signs the tokens of the bench gateways (``polewatch bench fleet`` mints unit tokens)."""


def bench_redis(
    stack: contextlib.ExitStack, redis_url: str | None, prefix: str
) -> tuple[Path, str, int | None, Any]:
    """A temporary folder, the Redis to use (a private one unless ``redis_url``), the pid of
    the private one (for its CPU time) and a synchronous client, all closed by ``stack``."""
    import redis

    from polewatch.embedded import EmbeddedRedis

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    embedded = None
    if not redis_url:
        embedded = stack.enter_context(EmbeddedRedis(tmp / "redis", appendonly=False))
    url = redis_url or embedded.url  # type: ignore[union-attr]
    redis_pid = embedded.process.pid if embedded and embedded.process else None
    client = redis.Redis.from_url(url)
    stack.callback(client.close)
    return tmp, url, redis_pid, client


@contextlib.contextmanager
def serving(
    cmd: list[str], port: int, what: str, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Run ``cmd`` (a server on ``port``) for the block, once it accepts connections; its pid.
    Stopped with SIGTERM after the block (killed if it takes more than 15 s)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_listening(proc, port, what)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server(kind: str, port: int, url: str, city: str) -> contextlib.AbstractContextManager[int]:
    """A ``gateway`` or ``bare`` bench server (:func:`serve`) on ``port`` for a block; its pid."""
    # The citizen rate limits would (rightly) refuse one client's flood at 2,000 poles; the
    # bench measures the alarm path itself, so they are off (they cost one script call more).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POLEWATCH_RATELIMIT_ENABLED": "false"}
    cmd = [sys.executable, "-m", "gateway.benchrig", kind, str(port), url, city]
    return serving(cmd, port, f"the {kind} server", env)


def wait_listening(proc: subprocess.Popen[Any], port: int, what: str) -> None:
    """Return once ``port`` accepts connections; an error if ``proc`` exits first."""
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start")
        time.sleep(0.05)


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc); 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(kind: str, port: int, url: str, city: str) -> None:
    """Serve a bench server until stopped: ``bare`` answers 202 to every alarm, ``gateway`` is
    the real application."""
    from aiohttp import web

    if kind == "bare":

        async def accept(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"status": "received"}, status=202)

        app = web.Application()
        app.router.add_post("/api/alarms", accept)
    else:
        from gateway.app import create_app
        from gateway.settings import GatewaySettings

        app = create_app(GatewaySettings(redis_url=url, city=city, secret=SECRET))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
