"""The pole registry's records: a pole as painted and placed, and a code-resolution answer."""

from __future__ import annotations

from typing import Literal

import msgspec


class Pole(msgspec.Struct, frozen=True, kw_only=True):
    """One streetlight pole, identified by the code painted on it (exactly as printed)."""

    code: str
    lon: float
    lat: float
    city: str
    road: str | None = None
    district: str | None = None
    grid: str | None = None
    side: Literal["odd", "even"] | None = None
    source: str | None = None
    """Where the demo city put it: ``"osm"`` along a real (OpenStreetMap) road, named after
    it; ``"generated"`` on a generated road; ``None`` for an imported inventory."""
    attrs: dict[str, str] = {}


MistakeKind = Literal[
    "exact", "normalized", "substitution", "deletion", "insertion", "transposition", "confusion"
]


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A pole the caller may have meant, with how the heard code differs from it."""

    pole: Pole
    mistake: MistakeKind
    score: float
    """Lower is better: edit cost, then distance from the caller's rough position if given."""
    distance_m: float | None = None


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to 'where is pole CODE?': the pole, or ranked candidates."""

    query: str
    pole: Pole | None
    candidates: list[Candidate] = []
