"""The private PostgreSQL the demo and tests start: a real server that keeps its data between a
stop and a start, and a throw-away one that leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from polewatch.embedded_pg import EmbeddedPostgres, PostgresNotFound


def test_a_kept_cluster_serves_its_rows_again_after_stop_and_start(tmp_path: Path) -> None:
    # pytest's temporary folders are root-only: under root the cluster lives outside them.
    server = EmbeddedPostgres(tmp_path / "run").start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('row')")
        server.stop()
        assert server.process is None
        server.start()
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("row",)]
        # Another owner of the same run folder finds the same cluster.
        server.stop()
        with (
            EmbeddedPostgres(tmp_path / "run", port=server.port) as again,
            psycopg.connect(again.url) as conn,
        ):
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)
    finally:
        files = server.pgdata.resolve()
        server.remove()
    assert not files.exists()
    assert not (tmp_path / "run" / "pgdata").exists()


def test_a_throw_away_cluster_is_deleted_by_stop(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "run", keep=False) as server:
        files = server.pgdata.resolve()
        assert (files / "PG_VERSION").is_file()
    assert not files.exists()
    assert not (tmp_path / "run" / "pgdata").exists()


def test_a_cluster_the_server_cannot_reach_is_refused_by_name(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root's server runs as another user")
    (tmp_path / "run" / "pgdata").mkdir(parents=True)  # tmp_path is root-only (0700)
    with pytest.raises(PostgresNotFound, match="run/pgdata holds a cluster"):
        EmbeddedPostgres(tmp_path / "run").start()
