"""The road shortlists of one round of places, packed for the Function when they are sent.

A replica ranks batch n+1 while the Function still runs batch n (:mod:`dispatcher.service`), so
the lists are made before batch n's claims are known. Batch n's reply names the units it took
off the free set, the ranker masks them in its copy (:meth:`FreeUnits.take`), and
:meth:`Shortlists.packed`, called when batch n+1 is sent, drops them from the lists made
before: a list that held every free unit up to its bound ``b`` still does once units that are
no longer free leave it. Only the lists that named such a unit are packed again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from dispatcher.freeunits import FreeUnits
from dispatcher.library import ALARM

RANK: bytes = b"r"
"""The code of a shortlist entry in ``pw_batch`` (it applies to the alarm after it)."""
_ENCODER = msgspec.msgpack.Encoder()


class Shortlists:
    """One packed list per place (in the order asked); the lists ranked by road keep their
    units (positions in ``free``) so that :meth:`packed` can drop those taken since."""

    def __init__(self, lists: list[bytes], free: FreeUnits | None = None, keep: int = 0) -> None:
        self._lists = lists
        self._free = free
        self._keep = keep
        self._ranked: list[tuple[int, np.ndarray, list[float], list[float], float]] = []
        """(place, units fastest first, drive s, road m, b) of each list ranked by road."""
        self._kept: list[np.ndarray] = []
        self._flat: np.ndarray | None = None
        self._starts: np.ndarray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._lists)

    def add(self, place: int, units: np.ndarray, t: list[float], d: list[float], b: float) -> None:
        """The list of ``place``: ``units`` (positions in the copy) fastest first, their drive
        times and road metres, and the bound up to which it holds every free unit."""
        assert self._free is not None
        self._ranked.append((place, units, t, d, b))
        self._kept.append(units[: self._keep or len(units)])
        self._flat = None
        self._lists[place] = self._pack(units, t, d, b)

    def set(self, place: int, packed: bytes) -> None:
        """The list of ``place``, already packed (one the graph could not rank)."""
        self._lists[place] = packed

    def packed(self) -> list[bytes]:
        """The lists as the Function reads them, without the units taken off the free set
        since they were ranked (masked in the copy: :meth:`FreeUnits.take`)."""
        if self._free is None or not self._ranked or not self._free.taken.any():
            return self._lists
        taken = self._free.taken
        if self._flat is None:  # every list's units as sent, end to end
            self._flat = np.concatenate(self._kept)
            self._starts = np.cumsum([0] + [len(k) for k in self._kept[:-1]])
        hit = np.logical_or.reduceat(taken[self._flat], self._starts)
        if not hit.any():
            return self._lists
        out = list(self._lists)
        for row in np.flatnonzero(hit).tolist():
            place, units, t, d, b = self._ranked[row]
            free = ~taken[units]
            left = np.flatnonzero(free).tolist()
            out[place] = self._pack(units[free], [t[i] for i in left], [d[i] for i in left], b)
        return out

    def _pack(self, units: np.ndarray, t: list[float], d: list[float], b: float) -> bytes:
        """A list as the Function reads it, its ``keep`` fastest units only (the Function
        rarely looks further; the rest would cost Redis time to unpack): then it holds every
        free unit only up to the last one kept."""
        assert self._free is not None
        n = len(units)
        if self._keep and n > self._keep:
            n = self._keep
            b = min(b, t[n - 1])
        body: dict[str, object] = {
            "u": [self._free.name(u) for u in units[:n].tolist()],
            "t": t[:n],
            "d": d[:n],
        }
        if math.isfinite(b):
            body["b"] = b
        return _ENCODER.encode(body)


class Ranked(NamedTuple):
    """``pw_batch`` triples and their alarms' shortlists, to be put together when sent."""

    args: list[bytes]
    lists: Shortlists | None
    """One list per alarm triple, in order (``None``: no lists, drive time is off)."""

    def arguments(self) -> list[bytes]:
        """The triples with each alarm's shortlist triple in front of it, as of now."""
        return interleave(self.args, None if self.lists is None else self.lists.packed())


def interleave(args: list[bytes], ranks: Sequence[bytes] | None) -> list[bytes]:
    """``pw_batch`` triples with each alarm's shortlist triple put in front of it; ``ranks``
    holds one list per alarm triple, in order (``None``: the triples as they are)."""
    if ranks is None:
        return args
    out: list[bytes] = []
    lists = iter(ranks)
    for i in range(0, len(args), 3):
        if args[i] == ALARM:
            out += (RANK, b"", next(lists))
        out += args[i : i + 3]
    return out
