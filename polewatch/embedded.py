"""A private redis-server on a free loopback port, for the demo, the tests and benchmarks.

The server's data lives under a run folder (AOF on, ``appendfsync everysec``), it is bound to
127.0.0.1 only, and it is shut down with the context that started it. :class:`EmbeddedServer`
is the shape every private server shares (:mod:`polewatch.embedded_pg` is the other).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import redis

MIN_VERSION = (7, 0)


def parent_death_signal(sig: int) -> Callable[[], None] | None:
    """``preexec_fn`` that has the kernel send ``sig`` to the child when its parent dies;
    ``None`` where that is not available (not Linux: the owner's cleanup alone). Everything is
    loaded here, in the parent: a child running as another user may not read this Python's
    modules (root's pyenv is 0700)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def tie() -> None:
        prctl(1, sig)  # PR_SET_PDEATHSIG

    return tie


def die_with_parent() -> None:
    """``preexec_fn`` for child processes: on Linux, the child gets SIGTERM when its parent
    dies, so a crashed or killed demo leaves no process behind."""
    tie = parent_death_signal(signal.SIGTERM)
    if tie is not None:
        tie()


class RedisNotFound(RuntimeError):
    """No usable redis-server on this machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10,000) is free too; below 55,536 as Redis
    Cluster requires, and below the usual ephemeral range so clients do not take it."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 30_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RedisNotFound(
            "redis-server is not installed; install it with: sudo apt-get install redis-server"
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    version = next((w[2:] for w in out.split() if w.startswith("v=")), "0.0")
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < MIN_VERSION:
        raise RedisNotFound(f"redis-server {version} is too old; polewatch needs >= 7.0")
    return path


class Embedded:
    """Something its owner starts and stops: a context manager (``with`` starts it and stops
    it on the way out), or call :meth:`start` and :meth:`stop`."""

    def start(self, timeout: float = 10.0) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServer(Embedded):
    """A private server process on a free loopback port (``port`` picks one), in a session of
    its own; :meth:`stop` asks it to end with :attr:`stop_signal` and waits, and with
    ``tied_to_parent`` the kernel sends it that signal when the starting thread's process
    dies (the demo; Linux only; off by default: the kernel ties it to the *thread*)."""

    name: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 10.0
    probe_every_s: ClassVar[float] = 0.02

    def __init__(self, *, port: int | None, tied_to_parent: bool) -> None:
        self.port = port or free_port()
        self.tied_to_parent = tied_to_parent
        self.process: subprocess.Popen[bytes] | None = None

    def _launch(self, args: list[str], **popen: Any) -> None:
        tie = parent_death_signal(self.stop_signal) if self.tied_to_parent else None
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=tie, **popen
        )

    def _wait_ready(self, timeout: float, answers: Callable[[], bool], log: Path) -> None:
        """Return once ``answers()`` (one try) is true; a server that exits raises with its
        log's tail, one still silent after ``timeout`` is stopped and raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.name} exited at start:\n{tail}")
            if answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not answer on port {self.port}")
            time.sleep(self.probe_every_s)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the server to end (:attr:`stop_signal`) and wait for it; SIGKILL its process
        group when it takes longer than ``timeout``."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for fault tests)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class EmbeddedRedis(EmbeddedServer):
    """Start ``redis-server`` on a free port; use as a context manager or call start/stop."""

    name = "redis-server"

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: list[str] | None = None,
        tied_to_parent: bool = False,
    ) -> None:
        super().__init__(port=port, tied_to_parent=tied_to_parent)
        self.data_dir = Path(data_dir)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--logfile", "redis.log",
            "--maxclients", "10000",
            *self.extra_args,
        ]  # fmt: skip
        self._launch(args)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        try:
            self._wait_ready(timeout, answers, self.data_dir / "redis.log")
        finally:
            client.close()
        return self


class EmbeddedCluster(Embedded):
    """A Redis Cluster of ``masters`` redis-server processes on free loopback ports (no
    replicas), the 16,384 slots split evenly; ``url`` names the first node."""

    SLOTS = 16_384

    def __init__(
        self, data_dir: str | Path, *, masters: int = 3, appendonly: bool = False,
        tied_to_parent: bool = False,
    ) -> None:  # fmt: skip
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.data_dir = Path(data_dir)
        self.nodes = [
            EmbeddedRedis(
                self.data_dir / f"node{i}",
                port=free_cluster_port(),
                appendonly=appendonly,
                tied_to_parent=tied_to_parent,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            )  # fmt: skip
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = 20.0) -> Self:
        try:
            for node in self.nodes:
                # A fresh cluster every time: a node that finds an old config would refuse
                # the slot assignment below.
                (node.data_dir / "nodes.conf").unlink(missing_ok=True)
                node.start()
        except Exception:
            self.stop()
            raise
        clients: list[Any] = [redis.Redis(port=n.port) for n in self.nodes]
        try:
            per = self.SLOTS // len(self.nodes)
            for i, client in enumerate(clients):
                last = self.SLOTS - 1 if i == len(clients) - 1 else (i + 1) * per - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        finally:
            for client in clients:
                client.close()
        try:
            self.wait_ok(timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Wait until every node sees the whole cluster and every slot served."""
        clients: list[Any] = [redis.Redis(port=n.port) for n in self.nodes]
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if all(self._ready(c) for c in clients):
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass  # a node still starting
                if time.monotonic() > deadline:
                    raise TimeoutError("the Redis Cluster did not converge")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def restart(self, index: int, *, crash: bool = True) -> None:
        """Stop node ``index`` (SIGKILL with ``crash``, as a crash would) and start it again
        on its port, with its cluster config and AOF; returns once the cluster is whole."""
        node = self.nodes[index]
        if crash:
            node.kill()
        else:
            node.stop()
        node.start()
        self.wait_ok()

    def _ready(self, client: Any) -> bool:
        info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
            and fields.get("cluster_slots_assigned") == str(self.SLOTS)
        )

    def flush(self) -> None:
        """Empty every node (data, functions), as the single-server fixtures do."""
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            try:
                client.flushall()
                client.function_flush()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
