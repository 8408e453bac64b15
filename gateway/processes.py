"""Several gateway processes on one port: ``polewatch gateway --processes N``.

Each child serves the same address with ``SO_REUSEPORT`` (aiohttp's ``reuse_port``), so the
kernel spreads new connections over them; every child has its own sockets, pub/sub listener
and inbox reader, and shares nothing else with the others (the state is in Redis). This
process only supervises: SIGTERM or SIGINT is passed on to every child (each drains as one
gateway does); when one child ends, the others are stopped too, so whatever runs the gateway
(the demo, compose's restart policy, systemd) sees it end and restarts the whole group.

The children share one more thing: a folder of metric files (prometheus_client's multiprocess
mode, ``PROMETHEUS_MULTIPROC_DIR``), so the process that takes a scrape answers with the
figures of all of them (:mod:`gateway.metrics`); it is made at start and removed at the end.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from types import FrameType

from polewatch.embedded import die_with_parent


def raise_fd_limit() -> int:
    """Open files allowed to this process, raised to the hard limit first (each socket is a
    descriptor: a gateway holding 10,000 units needs more than the usual 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def supervise(argv: list[str], processes: int, grace_s: float) -> int:
    """Run ``polewatch ARGV`` ``processes`` times until one ends or a signal comes; the exit
    status is 0 after a signal, else the first child's."""
    metrics = tempfile.mkdtemp(prefix="polewatch-gateway-metrics-")
    try:
        return _supervise(argv, processes, grace_s, {**os.environ, METRICS_DIR: metrics})
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: where a process of a group writes its metrics."""


def _supervise(argv: list[str], processes: int, grace_s: float, env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "polewatch.cli", *argv]
    children = [
        subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent) for _ in range(processes)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    first = _first_to_end(children)
    stop(signal.SIGTERM, None)
    for child in children:
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if stopping and first in (0, -signal.SIGTERM) else (first or 1)


def _first_to_end(children: list[subprocess.Popen[bytes]]) -> int:
    pids = {child.pid: child for child in children}
    while True:
        pid, status = os.wait()  # retried after a signal handler runs (PEP 475)
        if pid in pids:
            pids[pid].returncode = os.waitstatus_to_exitcode(status)
            return pids[pid].returncode
