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
    "exact",
    "normalized",
    "substitution",
    "deletion",
    "insertion",
    "transposition",
    "confusion",
    "doubled",
    "dropped_double",
]
"""How a heard code differs from a pole's (see :mod:`polewatch.poles.misread`)."""

Check = Literal["look_alikes", "nearer_candidate", "far_from_caller"]
"""Why a call-taker should confirm a resolved pole with the caller:

* ``look_alikes``: the code is real, yet other real codes are plausible misreadings of it
  (they are among the candidates);
* ``nearer_candidate``: given the caller's position, another candidate ranks above the pole the
  code names (a plausible misreading much nearer to the caller);
* ``far_from_caller``: the pole is farther from the caller's position than the index's
  ``far_m`` (the caller or the code is wrong)."""


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
    """Ranked best first; for a real code, the pole itself and its plausible look-alikes."""
    checks: list[Check] = []
    """What the call-taker must confirm before sending anyone (empty: nothing)."""
