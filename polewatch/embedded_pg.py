"""A private PostgreSQL cluster on a free loopback port, for the demo, the tests and benchmarks.

``initdb`` creates the cluster under a run folder (trust authentication, loopback TCP only, no
Unix socket), ``postgres`` serves it, and the context that started it stops it. PostgreSQL
refuses to run as root: when this process is root the cluster is owned by, and the server
runs as, the unprivileged ``postgres`` user (Debian's package creates it; ``nobody``
otherwise). Debian installs the server binaries off ``PATH`` (``/usr/lib/postgresql/N/bin``);
they are found there.
"""

from __future__ import annotations

import contextlib
import locale
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from polewatch.embedded import EmbeddedServer

USER = "polewatch"
"""The database superuser and database name of an embedded cluster."""


class PostgresNotFound(RuntimeError):
    """No usable PostgreSQL server binaries on this machine."""


def server_bin(name: str) -> str:
    """Path of a server binary (``initdb``, ``postgres``), newest installed version first."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresNotFound(
            f"{name} is not installed; install PostgreSQL with PostGIS: sudo apt-get install "
            "postgresql postgresql-15-postgis-3"
        )
    return str(versions[-1])


def _run_as() -> str | None:
    """The user the server must run as: ``None`` unless this process is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresNotFound("running as root and no 'postgres' or 'nobody' user to run as")


def _ctype() -> str:
    """LC_CTYPE of a new cluster: ``C.UTF-8`` where the C library has it, so that text search
    (pg_trgm) takes Chinese characters for letters, else ``C``. Sorting is byte order either
    way (LC_COLLATE C)."""
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
    except locale.Error:
        return "C"
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    return "C.UTF-8"


def _reachable(path: Path) -> bool:
    """``path`` and every folder above it can be entered by another user."""
    full = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (full, *full.parents))


class EmbeddedPostgres(EmbeddedServer):
    """Start a private PostgreSQL on a free port; a context manager, or call start/stop."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: sessions end, a checkpoint is written
    stop_timeout = 15.0
    probe_every_s = 0.05

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        tied_to_parent: bool = False,
        keep: bool = True,
    ) -> None:
        super().__init__(port=port, tied_to_parent=tied_to_parent)
        self.root = Path(data_dir)
        self.keep = keep
        """The cluster outlives :meth:`stop` (a later start on ``data_dir`` serves it again)
        until :meth:`remove`; ``False``: a throw-away cluster, deleted by :meth:`stop`."""
        self.user = _run_as()
        self._private: Path | None = None

    @property
    def url(self) -> str:
        """The ``DATABASE_URL`` of the cluster's database."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{USER}"

    @property
    def pgdata(self) -> Path:
        base = self._private if self._private is not None else self.root
        return base / "pgdata"

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None and not _reachable(self.root) and self._private is None:
            # The server's user cannot enter a root-only folder (pytest's tmp dirs are 0700):
            # the cluster lives in a folder of its own under the system's temporary dir, and
            # a link in the run folder lets a later start find it again.
            self._private = _private_folder(self.root / "pgdata")
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            shutil.chown(self.pgdata, self.user, self.user)
        done = subprocess.run(
            [server_bin("initdb"), "-D", str(self.pgdata), "-U", USER, "--auth=trust",
             "-E", "UTF8", "--locale=C", f"--lc-ctype={_ctype()}", "--no-sync"],
            capture_output=True, text=True, user=self.user, cwd="/",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stderr[-2000:]}")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# polewatch embedded\nlisten_addresses = '127.0.0.1'\n")
            # synchronous_commit stays on: a commit is the archive's confirmation that lets
            # Redis expire an incident, so it must survive a crash of the server.
            conf.write("unix_socket_directories = ''\n")
            conf.write("max_connections = 200\nshared_buffers = 128MB\n")
            conf.write("logging_collector = off\n")

    def start(self, timeout: float = 30.0) -> Self:
        import psycopg

        self._prepare()
        log = self.pgdata / "postgres.log"
        with log.open("ab") as out:
            self._launch(
                [server_bin("postgres"), "-D", str(self.pgdata), "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, user=self.user, cwd="/",
            )  # fmt: skip

        def answers() -> bool:
            try:
                psycopg.connect(self._admin_url, connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        self._wait_ready(timeout, answers, log)
        self._create_database()
        return self

    @property
    def _admin_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (USER,)).fetchone():
                return
            conn.execute(f'CREATE DATABASE "{USER}"')

    def stop(self, timeout: float | None = None) -> None:
        """Fast shutdown (SIGINT: sessions end, a checkpoint is written) and wait. A kept
        cluster stays for the next :meth:`start`; a throw-away one (``keep=False``) is
        deleted."""
        super().stop(timeout)
        if not self.keep:
            self._delete()

    def kill(self) -> None:
        """SIGKILL the server and its backends, as a crash would (for fault tests); a later
        :meth:`start` recovers from the write-ahead log on the same port."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            # Backends run in process groups of their own: kill them with the postmaster, so
            # none holds the shared memory a restarted server checks.
            children = _children(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
            for pid in (proc.pid, *children):
                _wait_group_gone(pid)

    def remove(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        self._delete()

    def _delete(self) -> None:
        link = self.root / "pgdata"
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if link.is_symlink():
            link.unlink()
        else:
            shutil.rmtree(link, ignore_errors=True)


def _private_folder(link: Path) -> Path:
    """The folder outside the run folder that holds the cluster ``link`` points to: the one
    made by an earlier start, or a new one (``link`` is then made to point to it)."""
    if link.is_symlink():
        target = link.readlink()
        if target.parent.is_dir():
            return target.parent
        link.unlink()  # its folder is gone (a cleaned temporary dir): start afresh
    elif link.exists():
        raise PostgresNotFound(
            f"{link} holds a cluster the server's user cannot reach: let every folder above it "
            "be entered (chmod o+x) or remove it"
        )
    private = Path(tempfile.mkdtemp(prefix="polewatch-pg-"))
    os.chmod(private, 0o755)
    link.symlink_to(private / "pgdata", target_is_directory=True)
    return private


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:  # not Linux
        return []
    return [int(p) for p in text.split()]


def _wait_group_gone(pgid: int, within_s: float = 10.0) -> None:
    """Wait until no process of the group ``pgid`` is left."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if _zombie(pgid):  # dead, waiting for a parent to reap it: holds nothing
            return
        time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
