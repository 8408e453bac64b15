"""`polewatch demo`: the whole system comes alive, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from polewatch import keys


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def demo(run_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", "demo", "--run-dir", str(run_dir), "--port",
         "0", "--poles", "20000", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a demo still running (a test failed) and close its pipe, so a failure leaves no
    unclosed file to warn about in the next test."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def wait_for_line(proc: subprocess.Popen[str], needle: str, within_s: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed within {within_s} s:\n{''.join(lines)}")


@pytest.mark.timeout(240)  # its own deadlines: 120 s to start, 90 s to run out (a loaded machine)
def test_the_demo_dispatches_citizen_alarms_to_simulated_patrols(
    tmp_path: Path, redis_url: str
) -> None:
    proc = demo(
        tmp_path, "--duration", "20", "--units", "40", "--rate", "1", "--time-scale", "10",
        "--cameras", "0", "--doors", "0", env={"REDIS_URL": redis_url},
    )  # fmt: skip
    try:
        started = wait_for_line(proc, "polewatch demo is running", 120)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(keys.ALARMS) > 10
    events = [entry[1][b"m"] for entry in client.xrange(keys.AUDIT)]
    from polewatch import wire

    kinds = {wire.decode(e).event for e in events}
    assert {"new", "dispatched", "acknowledged", "on_scene"} <= kinds, kinds
    # the real roads were imported once as the city's graph, and poles stand along them
    assert int(client.get(keys.roads_version("shenzhen")) or 0) == 1
    assert "poles on real roads" in "".join(started)
    client.close()


@pytest.mark.timeout(240)  # its own deadlines: 120 s to start, 60 s to stop
def test_ctrl_c_stops_every_process_of_the_embedded_demo(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--units", "5", "--rate", "1")
    try:
        wait_for_line(proc, "polewatch demo is running", 120)
        pids = [int(line.split()[0]) for line in (tmp_path / "demo.pids").read_text().split("\n")
                if line]  # fmt: skip
        assert len(pids) >= 6  # redis-server, dispatchers, gateway, video and door agents
        assert all(alive(pid) for pid in pids)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    # The demo waits for every child and the Redis it started before it exits.
    assert not [pid for pid in pids if alive(pid)]
    assert (tmp_path / "redis" / "appendonlydir").is_dir()  # data lived under the run folder
