"""The in-process pole index: exact lookups in a dict, misread codes through a deletion index.

Built once from a city's poles (about a second for 100,000), then read without locks: every
table lives in one immutable :class:`_Tables` object that a reload replaces with a single
assignment, so a lookup running during a reload sees either the old registry or the new one.

Resolution ranks what a caller may have meant by how plausible the misreading is (the kinds
and their costs are in :mod:`polewatch.poles.misread`): one mistake of each kind, or any number
of letter/digit look-alikes. A code that is itself real is not taken on trust: its plausible
look-alikes that are real codes too come back beside it, and with the caller's position a
much nearer one ranks above it (see :class:`~polewatch.poles.model.Check`).

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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Final, Protocol

from polewatch.geo import haversine_m
from polewatch.poles import misread
from polewatch.poles.codes import normalize, skeleton
from polewatch.poles.misread import COST
from polewatch.poles.model import Candidate, Check, MistakeKind, Pole, Resolution

log = logging.getLogger(__name__)

NEAR_SCALE_M: Final = 5000.0
NEAR_MAX_PENALTY: Final = 2.0
FAR_M: Final = 2000.0
"""A resolved pole farther than this from the caller's position is flagged ``far_from_caller``."""
CHEAPEST: Final = min(COST["confusion"], *misread.PAIRS.values(), COST["transposition"])
"""The cheapest one mistake that keeps the length."""
GENERATE_MAX: Final = 12
"""Largest alphabet of codes whose one-mistake neighbours are generated rather than searched."""
SAME_PLACE_M: Final = 300.0
"""A real code's look-alikes closer than this to it send a unit to the same place: not shown."""


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


def _deletions(key: str) -> dict[str, int]:
    """Each one-character deletion of ``key`` and the (last) position it removed."""
    return {key[:i] + key[i + 1 :]: i for i in range(len(key))}


class _Tables:
    """Every lookup table of one registry version (never mutated after construction)."""

    __slots__ = ("alphabet", "by_code", "by_key", "deletes", "skeletons")

    def __init__(self, poles: Iterable[Pole]) -> None:
        self.by_code: dict[str, Pole] = {}
        by_key: dict[str, list[Pole]] = {}
        for pole in poles:
            self.by_code[pole.code] = pole
            by_key.setdefault(normalize(pole.code), []).append(pole)
        self.by_key: dict[str, tuple[Pole, ...]] = {k: tuple(v) for k, v in by_key.items()}
        self.deletes: dict[str, list[tuple[str, int]]] = {}
        self.skeletons: dict[str, list[str]] = {}
        self.alphabet = "".join(sorted({char for key in self.by_key for char in key}))
        """Every character of the codes: small (digits) lets neighbours be generated."""
        for key in self.by_key:
            for deleted, at in _deletions(key).items():
                self.deletes.setdefault(deleted, []).append((key, at))
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
        *,
        far_m: float = FAR_M,
    ) -> Resolution:
        """Resolve what a caller read out.

        ``pole`` is set when ``code`` names one pole (exactly, or up to case/whitespace);
        ``candidates`` then holds it and its real look-alikes (plausible ones only, or every
        one-mistake neighbour when ``near`` is given), and ``checks`` says what to confirm.
        Otherwise ``candidates`` ranks up to ``limit`` poles one mistake away (see the module
        for the kinds and costs). With ``near`` = (lon, lat) scores grow with the distance from
        it, so a near pole beats a far one of a similar cost, and a pole farther than ``far_m``
        from it is flagged (a rough fix, e.g. a cell's, deserves a larger ``far_m``). Raises
        :class:`~polewatch.poles.codes.CodeError` for input that cannot be a
        code (empty, too long, control characters).
        """
        key = normalize(code)
        tables = self._tables
        exact = tables.by_code.get(code) or tables.by_code.get(code.strip())
        if exact is not None:
            return _checked(code, exact, "exact", key, tables, near, limit, far_m)
        hits = tables.by_key.get(key, ())
        if len(hits) == 1:
            return _checked(code, hits[0], "normalized", key, tables, near, limit, far_m)
        if hits:
            ranked = _rank([(p, "normalized", COST["normalized"]) for p in hits], near, limit)
            return Resolution(query=code, pole=None, candidates=ranked)
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


def _neighbours(
    key: str, tables: _Tables, *, generate: bool = False
) -> dict[str, tuple[MistakeKind, float]]:
    """Codes (normalised keys) one mistake from ``key``, with the cheapest kind and cost:
    searched in the deletion index, or with ``generate`` and a small alphabet, generated (every
    variant a dictionary probe: faster for a real code, whose deletion buckets are full)."""
    if not generate or len(tables.alphabet) > GENERATE_MAX:
        return _searched(key, tables)
    found = misread.one_edit_variants(key, tables.alphabet, tables.by_key)
    return _with_look_alikes(key, tables, found)


def _searched(key: str, tables: _Tables) -> dict[str, tuple[MistakeKind, float]]:
    """:func:`_neighbours` by the deletion index (any alphabet)."""
    best: dict[str, tuple[MistakeKind, float]] = {}

    def offer(other: str, kind: MistakeKind, cost: float) -> None:
        if other != key and (other not in best or cost < best[other][1]):
            best[other] = (kind, cost)

    for other, cost in _look_alikes(key, tables):
        offer(other, "confusion", cost)
    for other, _ in tables.deletes.get(key, ()):
        offer(other, *misread.dropped(key, other))
    for deleted, at in _deletions(key).items():
        if deleted in tables.by_key:
            offer(deleted, *misread.added(key, deleted))
        for other, other_at in tables.deletes.get(deleted, ()):
            if len(other) != len(key) or other in best and best[other][1] <= CHEAPEST:
                continue  # nothing of the same length can beat what it has
            if other_at == at:  # the one place they differ: the common case, no scan
                offer(other, *misread.substitution(key[at], other[at]))
                continue
            # equal after deleting ``at`` and ``other_at``: they agree outside that span
            span = (at, other_at) if at < other_at else (other_at, at)
            mistake = misread.same_length(key, other, span)
            if mistake is not None:
                offer(other, *mistake)
    return best


def _look_alikes(key: str, tables: _Tables) -> Iterator[tuple[str, float]]:
    """Codes that differ from ``key`` only in letter/digit look-alikes, and the cost."""
    for other in tables.skeletons.get(skeleton(key), ()):
        if other != key:
            yield other, COST["confusion"] * sum(a != b for a, b in zip(key, other, strict=True))


def _plausible(key: str, tables: _Tables) -> dict[str, tuple[MistakeKind, float]]:
    """What :func:`_neighbours` finds at most :data:`~polewatch.poles.misread.PLAUSIBLE`
    away, by generating the few plausible misreadings instead of searching every edit (an
    exact code's check then costs microseconds)."""
    found = {k: v for k, v in misread.plausible_variants(key).items() if k in tables.by_key}
    return _with_look_alikes(key, tables, found, misread.PLAUSIBLE)


def _with_look_alikes(
    key: str,
    tables: _Tables,
    found: dict[str, tuple[MistakeKind, float]],
    limit: float = float("inf"),
) -> dict[str, tuple[MistakeKind, float]]:
    """``found`` with the codes that differ from ``key`` in any number of look-alikes
    (costing at most ``limit``), the cheaper mistake kept."""
    for other, cost in _look_alikes(key, tables):
        if cost <= limit and (other not in found or cost < found[other][1]):
            found[other] = ("confusion", cost)
    return found


def _checked(
    query: str,
    pole: Pole,
    kind: MistakeKind,
    key: str,
    tables: _Tables,
    near: tuple[float, float] | None,
    limit: int,
    far_m: float,
) -> Resolution:
    """The answer for a code that names ``pole``: the pole, its real look-alikes elsewhere
    ranked beside it, and the checks they call for."""
    own = normalize(pole.code)
    scored: list[tuple[Pole, MistakeKind, float]] = [(pole, kind, COST[kind])]
    # without the caller's position only plausible misreadings are worth a call-taker's time
    found = _neighbours(key, tables, generate=True) if near else _plausible(key, tables)
    for other, (mistake, cost) in found.items():
        if other != own:
            scored += [
                (p, mistake, cost)
                for p in tables.by_key[other]
                if haversine_m(p.lon, p.lat, pole.lon, pole.lat) > SAME_PLACE_M
            ]
    ranked = _rank(scored, near, len(scored))
    checks: list[Check] = []
    if len(ranked) > 1:
        checks.append("look_alikes")
    if ranked[0].pole is not pole:
        checks.append("nearer_candidate")
    mine = next(c for c in ranked if c.pole is pole)
    if mine.distance_m is not None and mine.distance_m > far_m:
        checks.append("far_from_caller")
    shown = ranked[: max(limit, 1)]
    if mine not in shown:
        shown[-1] = mine
    return Resolution(query=query, pole=pole, candidates=shown, checks=checks)


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
