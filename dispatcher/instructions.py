"""``polewatch bench instructions``: what redis-server executes per alarm, counted by callgrind.

Redis CPU seconds per alarm (``polewatch bench dispatch``) move by several microseconds between
identical runs on a shared machine; the instructions a redis-server executes for the same work
move by well under 1%. This runs redis-server under ``valgrind --tool=callgrind`` and a
dispatcher (``dispatcher.service.Dispatcher``, straight-line search, as ``bench dispatch``'s
``throughput``) on the bench's city, and counts only while that dispatcher drains its alarms
(the counters are zeroed once the alarms are in the stream and the dispatcher is ready, and
dumped when it is done). Two states, each on a fresh server:

* ``cold``: the alarms on an empty Redis, as ``bench dispatch`` runs them (its sorted sets
  still small, stored as listpacks);
* ``warm``: the same number of alarms after ``warm`` others were dispatched.

Instructions are not time: a cache miss costs more than an add. Use it to compare two versions
of the library or of the dispatcher side by side, not as a rate.

``--profiles DIR`` keeps the two profiles (``DIR/cold.callgrind``, ``DIR/warm.callgrind``) for
``callgrind_annotate``. Debian's redis-server is stripped, so only its exported functions have
names there; a redis-server built from the same source with symbols, first on ``PATH``, names
them all (docs/scaling.md, "fifth round").
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from dispatcher import workload
from dispatcher.priorities import PriorityTable
from dispatcher.rediscost import Snapshot
from dispatcher.service import Dispatcher
from polewatch import keys
from polewatch.embedded import EmbeddedRedis

TOOLS = ("valgrind", "callgrind_control")


class CountedRedis(EmbeddedRedis):
    """A private redis-server (no persistence) run under callgrind, its profile in ``out``
    (``out.1`` after the first :meth:`dump`)."""

    def __init__(self, data_dir: Path, out: Path) -> None:
        super().__init__(data_dir, appendonly=False)
        self.out = out

    def _launch(self, args: list[str], **popen: Any) -> None:
        counted = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}",
                   f"--log-file={self.out.with_suffix('.log')}"]  # fmt: skip
        super()._launch([*counted, *args], **popen)

    def _control(self, flag: str) -> None:
        assert self.process is not None
        subprocess.run(["callgrind_control", flag, str(self.process.pid)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def zero(self) -> None:
        """Start counting from here."""
        self._control("-z")

    def dump(self) -> int:
        """The instructions executed since :meth:`zero`."""
        self._control("-d")
        return totals(self.out.with_name(self.out.name + ".1").read_text())


def totals(profile: str) -> int:
    """The ``totals:`` line of a callgrind profile (instructions, the only event counted)."""
    found = re.search(r"^totals:\s+(\d+)", profile, re.MULTILINE)
    if found is None:
        raise ValueError("no totals line in the callgrind profile")
    return int(found.group(1))


async def _alarms(client: aioredis.Redis, plan: list[dict[str, Any]], first: int, n: int) -> None:
    now = time.time()
    async with client.pipeline(transaction=False) as pipe:
        for k in range(first, first + n):
            pipe.xadd(keys.ALARMS, workload.fields(workload.make_alarm(plan[k], k, now)))
        await pipe.execute()


async def _drain(url: str) -> dict[str, int]:
    dispatcher = Dispatcher(workload.settings(url), burst=True)
    await dispatcher.prepare()
    await dispatcher.run()
    return dict(dispatcher.totals)


async def count(url: str, server: CountedRedis, alarms: int, warm: int) -> dict[str, Any]:
    """Instructions and commands per alarm for ``alarms`` alarms after ``warm`` others."""
    places, _ = workload.city(100_000, seed=1)
    plan = workload.alarm_plan(places, warm + alarms, seed=2)
    units = workload.unit_events(
        places, int((warm + alarms) * (1 - workload.REPEAT_SHARE)) + 2_000, 3
    )
    client = aioredis.Redis.from_url(url)
    await workload.reset(client, PriorityTable(), units)
    if warm:
        await _alarms(client, plan, 0, warm)
        await _drain(url)
    await _alarms(client, plan, warm, alarms)
    dispatcher = Dispatcher(workload.settings(url), burst=True)
    await dispatcher.prepare()
    before = await Snapshot.take(client)
    server.zero()
    await dispatcher.run()
    executed = server.dump()
    cost = await before.since(client, alarms)
    await client.aclose()
    assert dispatcher.totals["alarms"] == alarms, dispatcher.totals
    return {
        "alarms": alarms, "after": warm,
        "instructions_per_alarm": round(executed / alarms),
        "redis_commands_per_alarm": cost["redis_commands_per_alarm"],
        "incidents": dispatcher.totals["incidents"], "dispatched": dispatcher.totals["dispatched"],
    }  # fmt: skip


def measure(alarms: int, warm: int, profiles: Path | None = None) -> dict[str, Any]:
    """Both states, each on a fresh redis-server under callgrind; each state's profile copied
    to ``profiles/<state>.callgrind`` when ``profiles`` is given."""
    out: dict[str, Any] = {}
    for state, after in (("cold", 0), ("warm", warm)):
        with tempfile.TemporaryDirectory() as tmp:
            server = CountedRedis(Path(tmp), Path(tmp) / "callgrind.out").start(timeout=120)
            try:
                out[state] = asyncio.run(count(server.url, server, alarms, after))
            finally:
                server.stop()
            if profiles is not None:
                profiles.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / "callgrind.out.1", profiles / f"{state}.callgrind")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point of ``polewatch bench instructions``."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return {"skipped": f"{', '.join(missing)} not installed (apt-get install valgrind)"}
    alarms, warm = (500, 500) if args.quick else (1_500, 3_000)
    return {
        "command": "polewatch bench instructions --json" + (" --quick" if args.quick else ""),
        **measure(alarms, warm, args.profiles),
    }
