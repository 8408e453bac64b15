"""Citizens pressing pole alarm buttons and scanning pole QR codes, at a realistic rate.

Alarms arrive as a Poisson process. A share of events are reported more than once (a second
passer-by at a pole a few tens of metres away, moments later), which is what the
dispatcher's incident merge is for. Requests go through the real gateway API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import aiohttp

from polewatch.poles.model import Pole

log = logging.getLogger(__name__)

ALARM_MIX: tuple[tuple[str, float], ...] = (
    ("citizen_sos", 0.7),
    ("call", 0.3),
)


@dataclass
class CitizenStats:
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    qr_pages: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class Citizens:
    """Raise alarms at random poles through ``gateway_url`` at ``rate`` per second."""

    def __init__(
        self,
        gateway_url: str,
        poles: list[Pole],
        rate: float,
        seed: int,
        repeat_probability: float = 0.25,
        qr_probability: float = 0.3,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.gateway_url = gateway_url.rstrip("/")
        self.poles = poles
        self.rate = rate
        self.rng = random.Random(seed)
        self.repeat_probability = repeat_probability
        self.qr_probability = qr_probability
        self.stats = CitizenStats()

    async def run(self, stop: asyncio.Event, limit: int | None = None) -> None:
        async with aiohttp.ClientSession() as session:
            pending: set[asyncio.Task[None]] = set()
            while not stop.is_set() and (limit is None or self.stats.sent < limit):
                pole = self.rng.choice(self.poles)
                kind = self._kind()
                via_qr = self.rng.random() < self.qr_probability
                pending.add(asyncio.create_task(self._report(session, pole, kind, via_qr)))
                if self.rng.random() < self.repeat_probability:
                    pending.add(asyncio.create_task(self._repeat(session, pole, kind, stop)))
                pending = {t for t in pending if not t.done()}
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rng.expovariate(self.rate))
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def _kind(self) -> str:
        x = self.rng.random()
        for kind, share in ALARM_MIX:
            if x < share:
                return kind
            x -= share
        return ALARM_MIX[-1][0]

    async def _repeat(
        self, session: aiohttp.ClientSession, pole: Pole, kind: str, stop: asyncio.Event
    ) -> None:
        """A second witness, at a nearby pole of the same road, a few seconds later."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), self.rng.uniform(2.0, 20.0))
        if not stop.is_set():
            await self._report(session, pole, kind, via_qr=False)

    async def _report(
        self, session: aiohttp.ClientSession, pole: Pole, kind: str, via_qr: bool
    ) -> None:
        self.stats.sent += 1
        try:
            if via_qr:
                async with session.get(f"{self.gateway_url}/p/{pole.code}") as page:
                    await page.read()
                    self.stats.qr_pages += 1
            body = {"pole": pole.code, "type": kind, "text": "simulated citizen report"}
            async with session.post(f"{self.gateway_url}/api/alarms", json=body) as resp:
                await resp.read()
                self.stats.statuses[resp.status] = self.stats.statuses.get(resp.status, 0) + 1
                if resp.status == 202:
                    self.stats.accepted += 1
                else:
                    self.stats.failed += 1
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.failed += 1
            log.debug("citizen report failed: %s", exc)
