"""How people misread and mishear painted pole codes, and how plausible each mistake is.

A call-taker hears a code that a caller read from a worn, dirty or badly lit plate, often in a
hurry and over a poor line. The mistakes that really happen, cheapest (most plausible) first:

================  =====================================================================  =====
kind              the heard code ...                                                      cost
================  =====================================================================  =====
normalized        differs only in case, spacing or width                                  0.1
confusion         has look-alike characters: a letter for a digit (O/0, I/1, L/1, S/5,    0.4
                  B/8, Z/2, G/6; any number of them) or one digit for another that looks  -0.8
                  or sounds alike (1/7, 6/9, 0/8, 3/8, 5/6, 6/8, 5/9), see :data:`PAIRS`
doubled           has one digit said twice (``60113158`` for ``6013158``)                 0.6
dropped_double    misses one of two equal neighbours (``601158`` for ``6011158``)         0.6
transposition     has two adjacent characters swapped                                     0.7
substitution      has one wrong character                                                 1.0
deletion          misses one character                                                    1.0
insertion         has one extra character                                                 1.0
================  =====================================================================  =====

Costs add up to a candidate's score (lower is more plausible); :mod:`polewatch.poles.index`
adds the distance from the caller's position when one is known.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final

from polewatch.poles.codes import CONFUSABLE
from polewatch.poles.model import MistakeKind

COST: Final[dict[MistakeKind, float]] = {
    "exact": 0.0,
    "normalized": 0.1,
    "confusion": 0.4,
    "doubled": 0.6,
    "dropped_double": 0.6,
    "transposition": 0.7,
    "substitution": 1.0,
    "deletion": 1.0,
    "insertion": 1.0,
}
"""Cost of each kind of mistake (``confusion``: a letter/digit look-alike, per character)."""

PAIRS: Final[dict[frozenset[str], float]] = {
    frozenset("17"): 0.5,  # a serif 1 reads as 7; yī and qī sound alike on a bad line
    frozenset("69"): 0.55,  # read upside down or from a rotated plate
    frozenset("08"): 0.6,  # a worn or dirty 8 closes into a 0 and back
    frozenset("38"): 0.6,
    frozenset("56"): 0.6,
    frozenset("68"): 0.7,  # a 6 with its top smudged
    frozenset("59"): 0.8,  # "five" and "nine" over a radio
}
"""Digit pairs that people confuse, with the cost of one such confusion."""
LOOKALIKES: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    char: tuple(sorted(
        {(b, COST["confusion"]) for a, b in CONFUSABLE if a == char}
        | {(other, cost) for pair, cost in PAIRS.items() if char in pair
           for other in pair - {char}}
    ))
    for char in {c for pair in CONFUSABLE for c in pair} | {c for pair in PAIRS for c in pair}
}  # fmt: skip
"""Each character a confusion can stand for, with the cost: what a plausible misreading of a
code may have been, generated instead of searched."""
PLAUSIBLE: Final = 0.8
"""Neighbours of a real code at most this costly are offered beside it even when the caller's
position is unknown (a cheaper mistake than an arbitrary wrong digit)."""


def plausible_variants(key: str) -> dict[str, tuple[MistakeKind, float]]:
    """Every code one plausible mistake (cost at most :data:`PLAUSIBLE`) from ``key``: one
    confused character, two neighbours swapped, a doubled or an undoubled digit; with the
    kind and cost of the mistake, cheapest kept."""
    found: dict[str, tuple[MistakeKind, float]] = {}

    def offer(code: str, kind: MistakeKind, cost: float) -> None:
        if code != key and (code not in found or cost < found[code][1]):
            found[code] = (kind, cost)

    for i, char in enumerate(key):
        head, tail = key[:i], key[i + 1 :]
        for other, cost in LOOKALIKES.get(char, ()):
            offer(head + other + tail, "confusion", cost)
        if tail and tail[0] != char:
            offer(head + tail[0] + char + tail[1:], "transposition", COST["transposition"])
        if tail and tail[0] == char:
            offer(head + tail, "doubled", COST["doubled"])  # heard twice, painted once
        offer(head + char + char + tail, "dropped_double", COST["dropped_double"])
    return found


def one_edit_variants(
    key: str, alphabet: str, among: Container[str]
) -> dict[str, tuple[MistakeKind, float]]:
    """Every code ``among`` the known ones, over ``alphabet``, one mistake from ``key`` (one
    wrong, missing or extra character, or two neighbours swapped), with the kind and cost,
    cheapest kept: the search of an index done by generation, for small alphabets (Shenzhen's
    ten digits)."""
    found = {k: v for k, v in plausible_variants(key).items() if k in among}

    def offer(code: str, kind: MistakeKind, cost: float) -> None:
        if code != key and (code not in found or cost < found[code][1]):
            found[code] = (kind, cost)

    for i in range(len(key) + 1):
        head, char, tail, rest = key[:i], key[i : i + 1], key[i + 1 :], key[i:]
        for other in alphabet:
            if (longer := head + other + rest) in among:
                offer(longer, *dropped(key, longer))
            if char and other != char and (changed := head + other + tail) in among:
                offer(changed, *substitution(char, other))
        if char and (shorter := head + tail) in among:
            offer(shorter, *added(key, shorter))
    return found


def substitution(heard: str, code: str) -> tuple[MistakeKind, float]:
    """The kind and cost of hearing character ``heard`` where ``code`` is painted."""
    if (heard, code) in CONFUSABLE:
        return "confusion", COST["confusion"]
    pair = PAIRS.get(frozenset((heard, code)))
    if pair is not None:
        return "confusion", pair
    return "substitution", COST["substitution"]


def same_length(
    heard: str, code: str, span: tuple[int, int] | None = None
) -> tuple[MistakeKind, float] | None:
    """One substitution (or confusion) or one adjacent transposition turning ``code`` into
    ``heard`` (both normalised, of equal length), or ``None`` when it takes more. ``span``
    (first, last) bounds where they may differ, when the caller knows it."""
    first, last = span or (0, len(heard) - 1)
    diffs = [i for i in range(first, last + 1) if heard[i] != code[i]]
    if len(diffs) == 1:
        i = diffs[0]
        return substitution(heard[i], code[i])
    if len(diffs) == 2:
        i, j = diffs
        if j == i + 1 and heard[i] == code[j] and heard[j] == code[i]:
            return "transposition", COST["transposition"]
    return None


def one_more(longer: str, shorter: str) -> bool:
    """Whether the character ``longer`` has beyond ``shorter`` (one deletion apart) repeats a
    neighbour: a doubled digit rather than an arbitrary extra one."""
    pairs = enumerate(zip(longer, shorter, strict=False))  # longer has one more: by design
    i = next((k for k, (a, b) in pairs if a != b), len(shorter))
    char = longer[i]
    return (i > 0 and longer[i - 1] == char) or (i + 1 < len(longer) and longer[i + 1] == char)


def dropped(heard: str, code: str) -> tuple[MistakeKind, float]:
    """The kind and cost of ``heard`` missing one character of ``code``."""
    kind: MistakeKind = "dropped_double" if one_more(code, heard) else "deletion"
    return kind, COST[kind]


def added(heard: str, code: str) -> tuple[MistakeKind, float]:
    """The kind and cost of ``heard`` having one character more than ``code``."""
    kind: MistakeKind = "doubled" if one_more(heard, code) else "insertion"
    return kind, COST[kind]
