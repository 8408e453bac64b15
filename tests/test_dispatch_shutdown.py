"""SIGTERM stops a dispatcher replica within its grace period, even while Redis is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from polewatch import keys
from polewatch.embedded import EmbeddedRedis


def test_sigterm_with_redis_gone_stops_within_the_grace_period(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    env = {**os.environ, "REDIS_URL": server.url, "POLEWATCH_SHUTDOWN_GRACE_S": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", "dispatcher", "--consumer", "doomed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 30
        while not client.exists(keys.HEARTBEATS):  # the replica is up and consuming
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "dispatcher never sent a heartbeat"
            time.sleep(0.05)
        client.close()
        server.kill()
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = proc.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    assert proc.returncode == 0, err
    assert took < 2 + 5, f"took {took:.1f} s to stop"
