"""The in-process pole index: exact lookups in a dict, misread codes through a deletion index.

Built once from a city's poles (about a second for 100,000), then read without locks: every
table lives in one immutable :class:`_Tables` object that a reload replaces with a single
assignment, so a lookup running during a reload sees either the old registry or the new one.

Fuzzy resolution covers one mistake of each kind a call-taker meets, ranked by cost:

==============  ======================================================  ====
kind            the heard code ...                                       cost
==============  ======================================================  ====
normalized      differs only in case or spacing                          0.1
confusion       has look-alike characters (O/0, I/1/L, S/5, B/8, Z/2,    0.5
                G/6), any number of them (cost per character)
transposition   has two adjacent characters swapped                      0.8
substitution    has one wrong character                                  1.0
deletion        misses one character                                     1.0
insertion       has one extra character                                  1.0
==============  ======================================================  ====

Candidates come from a SymSpell-style index: every code's one-character deletions point back
to it, so the codes one edit away from a query are found with ``len(query) + 1`` dictionary
probes, and a confusion "skeleton" (each look-alike folded to one character) finds misread
look-alikes in one probe. With the caller's rough position the score grows by one edit per
:data:`NEAR_SCALE_M` of distance (at most :data:`NEAR_MAX_PENALTY`), so a near pole beats a far
one of the same or slightly lower edit cost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

from polewatch.geo import haversine_m
from polewatch.poles.codes import CONFUSABLE, normalize, skeleton
from polewatch.poles.model import Candidate, MistakeKind, Pole, Resolution

log = logging.getLogger(__name__)

COST: Final[dict[MistakeKind, float]] = {
    "exact": 0.0,
    "normalized": 0.1,
    "confusion": 0.5,
    "transposition": 0.8,
    "substitution": 1.0,
    "deletion": 1.0,
    "insertion": 1.0,
}
"""Edit cost of each kind of mistake (``confusion`` is per confused character)."""
NEAR_SCALE_M: Final = 5000.0
NEAR_MAX_PENALTY: Final = 2.0


class PoleSource(Protocol):
    """Where an index reloads from: a city's registry (:class:`~polewatch.poles.registry.
    PoleRegistry` is one; the index does not import it, the registry imports the index)."""

    @property
    def city(self) -> str: ...

    async def version(self) -> int: ...

    async def load(self) -> tuple[int, list[Pole]]: ...

    async def follow(
        self,
        on_change: Callable[[], Awaitable[object]],
        *,
        poll_s: float = ...,
        ready: asyncio.Event | None = ...,
    ) -> None: ...


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


class _Tables:
    """Every lookup table of one registry version (never mutated after construction)."""

    __slots__ = ("by_code", "by_key", "deletes", "skeletons")

    def __init__(self, poles: Iterable[Pole]) -> None:
        self.by_code: dict[str, Pole] = {}
        by_key: dict[str, list[Pole]] = {}
        for pole in poles:
            self.by_code[pole.code] = pole
            by_key.setdefault(normalize(pole.code), []).append(pole)
        self.by_key: dict[str, tuple[Pole, ...]] = {k: tuple(v) for k, v in by_key.items()}
        self.deletes: dict[str, list[str]] = {}
        self.skeletons: dict[str, list[str]] = {}
        for key in self.by_key:
            for deleted in _deletions(key):
                self.deletes.setdefault(deleted, []).append(key)
            self.skeletons.setdefault(skeleton(key), []).append(key)


class PoleIndex:
    """A city's poles in memory: :meth:`get` for exact codes, :meth:`resolve` for what a
    caller read out.

    Consistency with Redis (see :mod:`polewatch.poles.registry`): the index remembers the
    registry ``version`` it was built from. :meth:`refresh_if_changed` compares it with the
    counter in Redis and reloads when it moved; :meth:`follow` does that whenever the
    registry publishes a change on ``POLES_NOTIFY`` and, as a safety net for a missed message,
    every ``poll_s`` seconds.
    """

    def __init__(
        self,
        poles: Iterable[Pole],
        *,
        version: int = 0,
        source: PoleSource | None = None,
    ) -> None:
        self._tables = _Tables(poles)
        self.version = version
        """The registry version this index reflects."""
        self.source = source
        """Where :meth:`refresh_if_changed` reloads from (``None``: a fixed index)."""

    def __len__(self) -> int:
        return len(self._tables.by_code)

    def poles(self) -> list[Pole]:
        """Every pole, in registry order."""
        return list(self._tables.by_code.values())

    def sample(self, n: int, *, seed: int = 0) -> list[Pole]:
        """Up to ``n`` distinct poles drawn at random, the same for the same seed and
        registry (for simulators and load tests)."""
        poles = sorted(self._tables.by_code.values(), key=lambda p: p.code)
        return random.Random(seed).sample(poles, min(max(n, 0), len(poles)))

    def get(self, code: str) -> Pole | None:
        """The pole whose code is ``code`` exactly, else the only pole whose code differs
        from it in case or whitespace alone; ``None`` when there is none or it is ambiguous."""
        tables = self._tables
        pole = tables.by_code.get(code)
        if pole is not None:
            return pole
        try:
            hits = tables.by_key.get(normalize(code), ())
        except ValueError:
            return None
        return hits[0] if len(hits) == 1 else None

    def resolve(
        self,
        code: str,
        near: tuple[float, float] | None = None,
        limit: int = 10,
    ) -> Resolution:
        """Resolve what a caller read out.

        ``pole`` is set when ``code`` names one pole (exactly, or up to case/whitespace);
        otherwise ``candidates`` ranks up to ``limit`` poles one mistake away (see the module
        for the kinds and costs), nearest first among equals when ``near`` = (lon, lat) is
        given. Raises :class:`~polewatch.poles.codes.CodeError` for input that cannot be a
        code (empty, too long, control characters).
        """
        key = normalize(code)
        tables = self._tables
        exact = tables.by_code.get(code) or tables.by_code.get(code.strip())
        if exact is not None:
            return Resolution(
                query=code, pole=exact, candidates=[_candidate(exact, "exact", 0.0, near)]
            )
        hits = tables.by_key.get(key, ())
        if hits:
            ranked = _rank([(p, "normalized", COST["normalized"]) for p in hits], near, limit)
            return Resolution(
                query=code, pole=hits[0] if len(hits) == 1 else None, candidates=ranked
            )
        found = _neighbours(key, tables)
        scored = [(p, kind, cost) for k, (kind, cost) in found.items() for p in tables.by_key[k]]
        return Resolution(query=code, pole=None, candidates=_rank(scored, near, limit))

    async def refresh_if_changed(self) -> bool:
        """Reload from the registry if its version moved; ``True`` when it did."""
        if self.source is None:
            return False
        if await self.source.version() == self.version:
            return False
        version, poles = await self.source.load()
        # Building the tables takes about a second for 100k poles: off the event loop.
        self._tables = await asyncio.to_thread(_Tables, poles)
        self.version = version
        log.info(
            "pole index of %s reloaded: %d poles, version %d", self.source.city, len(poles), version
        )
        return True

    async def follow(self, *, poll_s: float = 30.0, ready: asyncio.Event | None = None) -> None:
        """Keep the index current until cancelled: subscribe to the registry's change
        channel and refresh on each change of this city (and every ``poll_s`` seconds).
        ``ready`` is set once subscribed."""
        if self.source is None:
            raise RuntimeError("a PoleIndex built without a registry cannot follow it")
        await self.source.follow(self.refresh_if_changed, poll_s=poll_s, ready=ready)


def _neighbours(key: str, tables: _Tables) -> dict[str, tuple[MistakeKind, float]]:
    """Codes (normalised keys) one mistake from ``key``, with the cheapest kind and cost."""
    best: dict[str, tuple[MistakeKind, float]] = {}

    def offer(other: str, kind: MistakeKind, cost: float) -> None:
        if other != key and (other not in best or cost < best[other][1]):
            best[other] = (kind, cost)

    for other in tables.skeletons.get(skeleton(key), ()):
        differing = sum(a != b for a, b in zip(key, other, strict=True))
        offer(other, "confusion", COST["confusion"] * differing)
    for other in tables.deletes.get(key, ()):
        offer(other, "deletion", COST["deletion"])
    for deleted in _deletions(key):
        if deleted in tables.by_key:
            offer(deleted, "insertion", COST["insertion"])
        for other in tables.deletes.get(deleted, ()):
            if len(other) == len(key) and other not in best:
                mistake = _same_length_mistake(key, other)
                if mistake is not None:
                    offer(other, *mistake)
    return best


def _same_length_mistake(heard: str, code: str) -> tuple[MistakeKind, float] | None:
    """One substitution/confusion or one adjacent transposition turning ``code`` into
    ``heard``, or ``None``."""
    diffs = [i for i, (a, b) in enumerate(zip(heard, code, strict=True)) if a != b]
    if len(diffs) == 1:
        i = diffs[0]
        if (heard[i], code[i]) in CONFUSABLE:
            return "confusion", COST["confusion"]
        return "substitution", COST["substitution"]
    if len(diffs) == 2:
        i, j = diffs
        if j == i + 1 and heard[i] == code[j] and heard[j] == code[i]:
            return "transposition", COST["transposition"]
    return None


def _candidate(
    pole: Pole, kind: MistakeKind, cost: float, near: tuple[float, float] | None
) -> Candidate:
    if near is None:
        return Candidate(pole=pole, mistake=kind, score=cost)
    distance = haversine_m(near[0], near[1], pole.lon, pole.lat)
    penalty = min(distance / NEAR_SCALE_M, NEAR_MAX_PENALTY)
    return Candidate(
        pole=pole, mistake=kind, score=round(cost + penalty, 6), distance_m=round(distance, 1)
    )


def _rank(
    scored: list[tuple[Pole, MistakeKind, float]],
    near: tuple[float, float] | None,
    limit: int,
) -> list[Candidate]:
    candidates = [_candidate(pole, kind, cost, near) for pole, kind, cost in scored]
    candidates.sort(key=lambda c: (c.score, c.pole.code))
    return candidates[: max(limit, 0)]
