"""The Redis connection every service uses: it queues for a connection instead of failing,
and rides out a Redis restart."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from polewatch.connection import connect, wait_ready
from polewatch.embedded import EmbeddedRedis


async def test_a_burst_beyond_the_pool_waits_for_a_connection(redis_url: str) -> None:
    client = connect(redis_url, name="test-burst", max_connections=2)
    try:
        # Each BLPOP holds a connection for 50 ms; 20 of them share 2 connections.
        results = await asyncio.gather(
            *(client.blpop(["nothing-here"], timeout=0.05) for _ in range(20))
        )
        assert results == [None] * 20
        clients = await client.client_list()
        assert sum(1 for c in clients if c["name"] == "test-burst") <= 2
    finally:
        await client.aclose()


async def test_a_command_survives_a_redis_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", appendfsync="always").start()
    client = connect(server.url, name="test-restart", retries=12)
    try:
        await client.set("k", "before")
        server.stop()
        again = EmbeddedRedis(tmp_path / "r", port=server.port, appendfsync="always")
        restarted = threading.Event()

        def restart() -> None:
            again.start()
            restarted.set()

        # The restart happens while the command below is retrying with backoff.
        thread = threading.Thread(target=restart)
        thread.start()
        assert await client.get("k") == b"before"
        thread.join()
        assert restarted.is_set()
        await wait_ready(client, within_s=5)
    finally:
        await client.aclose()
        again.stop()
