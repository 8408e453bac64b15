"""What Redis spends on a piece of work: CPU seconds and commands, as deltas of ``INFO``.

Redis CPU per alarm is the figure that decides how many shards a city needs
(docs/scaling.md), and CPU seconds do not depend on how busy a shared machine is, so the
benchmarks report it. Commands called inside the Redis functions count in ``INFO
commandstats`` like any others, so the delta says which commands each alarm costs.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis


class Snapshot:
    """Redis' CPU seconds, command counts and append-only file size at one moment
    (:meth:`take`)."""

    def __init__(self, cpu_s: float, calls: dict[str, int], aof_bytes: int | None) -> None:
        self.cpu_s = cpu_s
        self.calls = calls
        self.aof_bytes = aof_bytes
        """``aof_current_size``; ``None`` without AOF."""

    @classmethod
    async def take(cls, client: aioredis.Redis) -> Snapshot:
        cpu, stats = await client.info("cpu"), await client.info("commandstats")
        persistence = await client.info("persistence")
        calls = {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in stats.items()
            if isinstance(value, dict)
        }
        aof = int(persistence["aof_current_size"]) if persistence.get("aof_enabled") else None
        return cls(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls, aof)

    async def since(self, client: aioredis.Redis, per: int, top: int = 12) -> dict[str, Any]:
        """Redis CPU (µs), commands and (with AOF) bytes appended to the append-only file per
        unit of work (``per`` of them) since this snapshot; the ``top`` commands by count, per
        unit of work. The AOF bytes decide the AOF figure: every write a function makes is
        appended as the command it amounts to."""
        now = await Snapshot.take(client)
        calls = {
            name: n - self.calls.get(name, 0)
            for name, n in now.calls.items()
            if n > self.calls.get(name, 0) and name not in _OBSERVER
        }
        ranked = sorted(calls.items(), key=lambda kv: -kv[1])[:top]
        aof: dict[str, Any] = {}
        if now.aof_bytes is not None and self.aof_bytes is not None:
            aof["aof_bytes_per_alarm"] = round((now.aof_bytes - self.aof_bytes) / per)
        return {
            "redis_cpu_us_per_alarm": round((now.cpu_s - self.cpu_s) / per * 1e6, 1),
            "redis_commands_per_alarm": round(sum(calls.values()) / per, 2),
            **aof,
            "redis_commands": {name: round(n / per, 3) for name, n in ranked},
        }


_OBSERVER = {"info"}
"""The measurement's own commands."""
