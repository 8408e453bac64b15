"""Door controllers of the demo city, posting events to the real door agent's webhook.

:func:`write_doors` writes ``run_dir/doors.toml`` (doors on real poles, two per controller) for
``polewatch edge door``; :class:`DoorControllers` then plays each door's day, deterministic
under the seed: mostly ``card_granted`` -> ``door_opened`` -> ``door_closed`` cycles (and exit
button presses), sometimes a ``card_denied``, rarely a burst of them, a forced or held door, a
tamper switch or a controller's passback refusal, plus a heartbeat from every controller.
With the demo's rate (a visit per door every ~5 s) four doors raise a few alarms a minute.
The event format is the one of docs/door-events.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from polewatch.camera_schema import toml_table
from polewatch.poles.model import Pole
from simulators.edge import spread

log = logging.getLogger(__name__)

DOORS_PER_CONTROLLER = 2
HEARTBEAT_S = 15.0
HELD_OPEN_S = 20.0

SCENARIOS: tuple[tuple[str, float], ...] = (
    ("pass", 0.70),
    ("exit_button", 0.08),
    ("denied", 0.07),
    ("denied_burst", 0.04),
    ("forced", 0.045),
    ("held", 0.03),
    ("tamper", 0.015),
    ("passback", 0.02),
)
"""What happens when someone comes to a door, with its probability."""


@dataclass(frozen=True)
class DemoDoor:
    id: str
    controller: str
    pole: Pole


def plan_doors(poles: Sequence[Pole], count: int, seed: int) -> list[DemoDoor]:
    """``count`` doors on poles of different districts, two per controller."""
    return [
        DemoDoor(f"D-{n + 1:02d}", f"ctl-{n // DOORS_PER_CONTROLLER + 1}", pole)
        for n, pole in enumerate(spread(poles, count, seed + 1))
    ]


def write_doors(run_dir: Path, doors: Sequence[DemoDoor], http_port: int) -> Path:
    """The door agent's config: webhook on ``http_port`` (no TCP intake), spool in the run
    folder; Redis and city come from the demo's environment."""
    text = "# written by polewatch demo\n\n" + toml_table(
        "[door_agent]",
        {
            "name": "demo-doors", "http_host": "127.0.0.1", "http_port": http_port,
            "tcp_port": -1, "spool_dir": str(run_dir / "door-spool"),
        },
    )  # fmt: skip
    for door in doors:
        text += "\n" + toml_table(
            "[[doors]]",
            {
                "id": door.id, "controller": door.controller, "pole": door.pole.code,
                "held_open_s": HELD_OPEN_S,
            },
        )  # fmt: skip
    path = run_dir / "doors.toml"
    path.write_text(text)
    return path


@dataclass
class DoorStats:
    posted: int = 0
    failed: int = 0
    alarms: int = 0
    scenarios: dict[str, int] = field(default_factory=dict)


class DoorControllers:
    """Play every door's comings and goings against the agent at ``url`` (``POST /events``).

    ``rate`` is visits per door per second; each door has its own random stream derived from
    ``seed``, so a run's sequence of scenarios does not depend on timing.
    """

    def __init__(
        self, url: str, doors: Sequence[DemoDoor], seed: int, rate: float = 0.2, cards: int = 40
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.url = url.rstrip("/") + "/events"
        self.doors = list(doors)
        self.seed = seed
        self.rate = rate
        self.cards = [f"{10_000_000 + 7919 * n:010d}" for n in range(cards)]
        self.inside: dict[str, set[str]] = {d.id: set() for d in self.doors}
        """Cards whose holders went in through each door (anti-passback is per door)."""
        self.stats = DoorStats()
        self._seq = 0
        self._progress = asyncio.Condition()
        """Notified after each event is posted or fails (:meth:`until`)."""
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every door's visits and every controller's heartbeats."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            self._session = session
            controllers = sorted({d.controller for d in self.doors})
            tasks = [asyncio.create_task(self._door(d, n, stop)) for n, d in enumerate(self.doors)]
            tasks += [asyncio.create_task(self._heartbeats(c, stop)) for c in controllers]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._session = None

    async def _door(self, door: DemoDoor, n: int, stop: asyncio.Event) -> None:
        rng = random.Random(self.seed * 1000 + n)
        names = [s for s, _ in SCENARIOS]
        weights = [w for _, w in SCENARIOS]
        while not stop.is_set():
            if await _wait(stop, rng.expovariate(self.rate)):
                return
            scenario = rng.choices(names, weights)[0]
            self.stats.scenarios[scenario] = self.stats.scenarios.get(scenario, 0) + 1
            await getattr(self, f"_{scenario}")(door, rng, stop)

    async def _heartbeats(self, controller: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._post({"controller": controller, "event": "heartbeat"})
            if await _wait(stop, HEARTBEAT_S):
                return

    # --- scenarios (each a short sequence of controller events) -----------------------------
    async def _pass(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        await self._grant(door, rng)
        await self._open_close(door, rng, stop)

    async def _exit_button(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        await self._event(door, "exit_request", direction="out")
        await self._open_close(door, rng, stop)

    async def _denied(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        await self._event(door, "card_denied", reader="R1", card=_stranger(rng))

    async def _denied_burst(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        card = _stranger(rng)
        for _ in range(rng.randint(3, 5)):  # someone trying a found card again and again
            await self._event(door, "card_denied", reader="R1", card=card)
            if await _wait(stop, rng.uniform(1.0, 4.0)):
                return

    async def _forced(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        if rng.random() < 0.5:
            await self._event(door, "forced_open")  # the controller says so itself
        await self._event(door, "door_opened")  # no grant before it: the agent infers forced
        if not await _wait(stop, rng.uniform(3.0, 8.0)):
            await self._event(door, "door_closed")

    async def _held(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        await self._grant(door, rng)  # a delivery propping the door open
        await self._event(door, "door_opened")
        if rng.random() < 0.5:  # the controller raises its own open-too-long alarm
            if await _wait(stop, HELD_OPEN_S * 0.75):
                return
            await self._event(door, "held_open")
            if await _wait(stop, HELD_OPEN_S * 0.5):
                return
        elif await _wait(stop, HELD_OPEN_S * 1.25):  # the agent notices on its own
            return
        await self._event(door, "door_closed")

    async def _tamper(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        await self._event(door, "tamper", reader=rng.choice(["R1", "R2"]))

    async def _passback(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        card = rng.choice(self.cards)
        direction = "out" if card in self.inside[door.id] else "in"
        # a card handed back through the fence: the controller refuses the second entry
        await self._event(door, "anti_passback", reader=_reader(direction), card=card,
                          direction=direction)  # fmt: skip

    async def _grant(self, door: DemoDoor, rng: random.Random) -> None:
        """A known card in the direction its holder can go (in when out, out when in)."""
        card = rng.choice(self.cards)
        inside = self.inside[door.id]
        direction = "out" if card in inside else "in"
        inside.symmetric_difference_update({card})
        await self._event(door, "card_granted", reader=_reader(direction), card=card,
                          direction=direction)  # fmt: skip

    async def _open_close(self, door: DemoDoor, rng: random.Random, stop: asyncio.Event) -> None:
        if await _wait(stop, rng.uniform(0.5, 2.0)):
            return
        await self._event(door, "door_opened")
        if not await _wait(stop, rng.uniform(2.0, 6.0)):
            await self._event(door, "door_closed")

    # --- transport ----------------------------------------------------------------------
    async def _event(self, door: DemoDoor, event: str, **fields: str) -> None:
        self._seq += 1
        body = {"controller": door.controller, "door": door.id, "event": event,
                "ts": round(time.time(), 3), "seq": self._seq, **fields}  # fmt: skip
        await self._post(body)

    async def _post(self, body: dict[str, Any]) -> None:
        assert self._session is not None
        try:
            async with self._session.post(self.url, data=json.dumps(body)) as resp:
                answer = await resp.json(content_type=None)
                if resp.status != 200:
                    self.stats.failed += 1
                    log.warning("door agent refused %s: %s", body, answer)
                    return
                self.stats.posted += 1
                self.stats.alarms += len(answer.get("alarms", []))
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            self.stats.failed += 1
            log.debug("door event not delivered: %r", exc)
        finally:
            async with self._progress:
                self._progress.notify_all()

    async def until(self, done: Callable[[DoorStats], bool]) -> None:
        """Return once ``done(stats)`` holds, looked at again after each event sent."""
        async with self._progress:
            await self._progress.wait_for(lambda: done(self.stats))


def _reader(direction: str) -> str:
    return "R1" if direction == "in" else "R2"


def _stranger(rng: random.Random) -> str:
    """A card the site does not know."""
    return f"{rng.randrange(90_000_000, 99_999_999):010d}"


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when it was."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
