"""Drive times for many places at once, from a junction-to-junction table.

A dispatcher ranks hundreds of places per batch, each against a dozen units. One Dijkstra per
place costs about half a millisecond, and snapping each place with its units costs as much
again, however few the points. Instead, a table holds the packed cost (``ms * SHIFT + dm``,
as in :mod:`polewatch.roads.search`) from every junction to every junction of the contracted
graph: all-pairs Dijkstra, about 0.4 s and 39 MB for Shenzhen's 2,214 junctions. A unit's
drive to a place is then the best of its chain's exit ends and the place's chain's entry ends
(partial + table + partial, one-way rules and the same-chain drive as in the search), a few
numpy fancy-index operations for every (place, unit) pair of a batch, after one vectorised
snap of all their points.

The sums are the same integers the per-place search adds (exact in float64), so the table
gives the same times and lengths as :meth:`RoadNetwork.drive_times_to` (the oracle tests
compare them). The table is built only below :data:`MAX_JUNCTIONS` (memory grows with the
square): a full-city OpenStreetMap graph keeps the per-place search, or needs hub labels or
contraction hierarchies later (docs/roads.md).
"""

from __future__ import annotations

import threading

import numpy as np
from scipy.sparse.csgraph import dijkstra

from polewatch.roads.search import AT_NODE_M, ChainSearch, Positions, leave

MAX_JUNCTIONS = 3000
"""Above this many junctions no table is built (3,000: 72 MB of float64)."""
_ROWS = 64
"""Rows per Dijkstra call while building: the GIL is free between calls for other threads."""


class JunctionTable:
    """Packed cost between every two junctions of a :class:`ChainSearch`."""

    def __init__(self, search: ChainSearch) -> None:
        graph = search.junction_graph
        n = graph.shape[0]
        # rows: the reversed graph's sources, i.e. destinations: cost[x, j] is from j to x
        self.cost = np.empty((n, n), dtype=np.float64)
        for first in range(0, n, _ROWS):
            rows = np.arange(first, min(first + _ROWS, n))
            self.cost[rows] = dijkstra(graph, directed=True, indices=rows)
        self.chains = search.chains
        self._search = search

    def to_places(self, targets: Positions, sources: Positions, of: np.ndarray) -> np.ndarray:
        """Packed cost from each source to its target ``targets[of[i]]``."""
        c, d = self.chains, self.cost
        tc = targets.chain
        enter_start = c.start[tc][of]
        enter_end = c.end[tc][of]
        head = np.maximum(targets.head, 1.0)[of]
        by_end = ~c.oneway[tc] | (targets.tail_m <= AT_NODE_M)
        tail = np.where(by_end, np.maximum(targets.tail, 1.0), np.inf)[of]

        def to_target(junction: np.ndarray) -> np.ndarray:
            return np.asarray(np.minimum(d[enter_start, junction] + head,
                                         d[enter_end, junction] + tail))  # fmt: skip

        ch = sources.chain
        each = Positions(*(a[of] for a in targets))
        cost = leave(self._search, to_target(c.end[ch]), to_target(c.start[ch]), each, sources)
        return np.asarray(cost[0])


class TableSlot:
    """A network's table, built once on demand (:meth:`build`), safe from any thread."""

    def __init__(self, search: ChainSearch) -> None:
        self._search = search
        self._lock = threading.Lock()
        self.table: JunctionTable | None = None
        """``None`` until built (or forever, above :data:`MAX_JUNCTIONS`)."""

    @property
    def fits(self) -> bool:
        """Whether the graph is small enough for a table."""
        return 0 < self._search.chains.junctions <= MAX_JUNCTIONS

    def build(self) -> JunctionTable | None:
        """Build the table if it fits and is not built yet (blocking: call it from a thread
        when the event loop must not wait); returns it."""
        if self.table is None and self.fits:
            with self._lock:
                if self.table is None:
                    self.table = JunctionTable(self._search)
        return self.table
