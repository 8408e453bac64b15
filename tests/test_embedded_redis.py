"""The private redis-server the demo and tests start: a real server, on loopback, cleaned up."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from polewatch.embedded import EmbeddedRedis


def test_starts_on_a_free_loopback_port_with_aof_and_stops_cleanly(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "run") as server:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 7
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.set("k", "v")
        proc = server.process
        assert proc is not None
        client.close()
    assert proc.poll() is not None  # no process left behind
    assert (tmp_path / "run").is_dir()


def test_data_survives_a_restart_through_the_aof(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "run", appendfsync="always")
    with server:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"m": b"1"})
        client.close()
    with EmbeddedRedis(tmp_path / "run", port=server.port) as again:
        client = redis.Redis.from_url(again.url)
        assert client.xlen("s") == 1
        client.close()


def test_a_killed_server_is_gone(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "run").start()
    proc = server.process
    server.kill()
    assert proc is not None and proc.poll() is not None
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_connect_timeout=0.2).ping()
