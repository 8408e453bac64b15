"""The one-to-many search over the contracted graph (see :mod:`polewatch.roads.chains`).

Costs are packed as ``ms * SHIFT + dm`` (see :mod:`polewatch.roads.network`). A point on the
roads is a *position*: its chain, the segment's place in the chain, and the packed costs from
the chain's start to it and from it to the chain's end (sums of the segments' own rounded
costs, so a position's costs agree with any path through the same segments).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, dijkstra

from polewatch.roads.chains import Chains, contract

SHIFT = float(2**24)
"""Weight = milliseconds * SHIFT + decimetres."""
AT_NODE_M = 1.0
"""A point this close to a node is at the node: it may leave (or reach) it by any of the
node's edges, even against the one-way edge it snapped to."""
END, START, DIRECT, VIA_BEFORE, VIA_AFTER = 0, 1, 2, 3, 4
"""How a source's drive leaves its own chain: by its end, by its start, straight along the
chain to a target on the same chain, or (a one-way chain, the target just behind the source)
through a node within :data:`AT_NODE_M` of both: the node before the source's point or the
one after the target's (on a one-way chain a point that close to a bend is at the bend, as
at a junction)."""


class Positions(NamedTuple):
    """Points on the roads (arrays, one entry per point)."""

    chain: np.ndarray
    place: np.ndarray
    """The segment's place in its chain."""
    along: np.ndarray
    """Fraction along the segment, in the chain's direction."""
    head: np.ndarray
    """Packed cost from the chain's start to the point."""
    tail: np.ndarray
    """Packed cost from the point to the chain's end."""
    head_m: np.ndarray
    tail_m: np.ndarray
    seg: np.ndarray
    """The segment."""


def _pack(ms: np.ndarray, dm: np.ndarray) -> np.ndarray:
    return np.asarray(ms * SHIFT + dm, dtype=np.float64)


class ChainSearch:
    """Backward Dijkstra over the chains of a segment graph."""

    def __init__(self, u: np.ndarray, v: np.ndarray, oneway: np.ndarray, ms: np.ndarray,
                 dm: np.ndarray, length: np.ndarray, node_count: int) -> None:  # fmt: skip
        self.chains: Chains = contract(u, v, oneway, node_count)
        c = self.chains
        self._ms, self._dm, self._length = ms.astype(np.int64), dm.astype(np.int64), length
        # prefix sums of each chain's segments, in chain order
        order = np.lexsort((c.seg_index, c.seg_chain))
        self._pre_ms = np.zeros(len(u), dtype=np.int64)
        self._pre_dm = np.zeros(len(u), dtype=np.int64)
        self._pre_m = np.zeros(len(u), dtype=np.float64)
        count = len(c.nodes)
        self._tot_ms = np.zeros(count, dtype=np.int64)
        self._tot_dm = np.zeros(count, dtype=np.int64)
        self._tot_m = np.zeros(count, dtype=np.float64)
        for pre, tot, per in ((self._pre_ms, self._tot_ms, self._ms),
                              (self._pre_dm, self._tot_dm, self._dm),
                              (self._pre_m, self._tot_m, length)):  # fmt: skip
            np.add.at(tot, c.seg_chain, per)
            csum = np.cumsum(per[order]) - per[order]
            first = np.concatenate([[0], np.flatnonzero(np.diff(c.seg_chain[order])) + 1])
            base = np.repeat(csum[first], np.diff(np.concatenate([first, [len(order)]])))
            pre[order] = csum - base
        self._graph, self._arc_chain = self._reversed()
        self._lock = threading.Lock()

    def _reversed(self) -> tuple[csr_matrix, np.ndarray]:
        c, n = self.chains, self.chains.junctions
        both = ~c.oneway
        chain = np.concatenate([np.arange(len(c.start)), np.flatnonzero(both)])
        tail = np.concatenate([c.start, c.end[both]])  # forward: tail -> head
        head = np.concatenate([c.end, c.start[both]])
        weight = _pack(self._tot_ms[chain], self._tot_dm[chain])
        order = np.lexsort((weight, tail, head))  # reversed rows; cheapest parallel arc first
        key = head[order] * (n + 1) + tail[order]
        keep = order[np.concatenate([[True], key[1:] != key[:-1]])] if len(order) else order
        keep = keep[tail[keep] != head[keep]]  # a loop never shortens a path
        counts = np.bincount(head[keep], minlength=n + 1)
        counts[n] = 2  # the virtual target's two arcs, rewritten per search
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        indices = np.concatenate([tail[keep], [n, n]]).astype(np.int32)
        data = np.concatenate([np.maximum(weight[keep], 1.0), [1.0, 1.0]])
        return csr_matrix((data, indices, indptr), shape=(n + 1, n + 1)), chain[keep]

    def reach(self) -> tuple[np.ndarray, np.ndarray]:
        """Per segment: whether a point on it can drive into the city's main network (its
        largest strongly connected part), and whether it can be driven to from there."""
        c, n = self.chains, self.chains.junctions
        if n == 0:
            empty = np.zeros(len(c.seg_chain), dtype=np.bool_)
            return empty, empty
        _, label = connected_components(self._graph, directed=True, connection="strong")
        root = int(np.flatnonzero(label[:n] == np.bincount(label[:n]).argmax())[0])
        to_main = np.zeros(n + 1, dtype=np.bool_)  # the reversed graph: who reaches the root
        to_main[breadth_first_order(self._graph, root, return_predecessors=False)] = True
        from_main = np.zeros(n + 1, dtype=np.bool_)
        forward = self._graph.T.tocsr()
        from_main[breadth_first_order(forward, root, return_predecessors=False)] = True
        two_way = ~c.oneway
        leaves = to_main[c.end] | (two_way & to_main[c.start])
        reached = from_main[c.start] | (two_way & from_main[c.end])
        return np.asarray(leaves[c.seg_chain]), np.asarray(reached[c.seg_chain])

    def positions(self, seg: np.ndarray, t: np.ndarray) -> Positions:
        """The positions of points at fraction ``t`` of segments ``seg`` (``u`` to ``v``)."""
        c = self.chains
        along = np.where(c.seg_aligned[seg], t, 1.0 - t)
        ms = self._pre_ms[seg] + np.rint(self._ms[seg] * along)
        dm = self._pre_dm[seg] + np.rint(self._dm[seg] * along)
        chain = c.seg_chain[seg]
        head_m = self._pre_m[seg] + self._length[seg] * along
        return Positions(
            chain, c.seg_index[seg], along, _pack(ms, dm),
            _pack(self._tot_ms[chain] - ms, self._tot_dm[chain] - dm),
            head_m, self._tot_m[chain] - head_m, seg,
        )  # fmt: skip

    def nodes_around(self, pos: Positions) -> tuple[np.ndarray, ...]:
        """Packed cost from the chain's start to the nodes before and after each point (its
        segment's ends, in the chain's direction), and the metres from the point to each."""
        seg = pos.seg
        pre_ms, pre_dm = self._pre_ms[seg], self._pre_dm[seg]
        before_m = self._length[seg] * pos.along
        return (_pack(pre_ms, pre_dm), _pack(pre_ms + self._ms[seg], pre_dm + self._dm[seg]),
                before_m, self._length[seg] - before_m)  # fmt: skip

    def search(self, target: Positions, limit: float, predecessors: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """Packed cost from every junction to the target (index 0 of ``target``)."""
        c, n = self.chains, self.chains.junctions
        chain = int(target.chain[0])
        entries = [(int(c.start[chain]), max(float(target.head[0]), 1.0))]
        if not c.oneway[chain] or target.tail_m[0] <= AT_NODE_M:
            entries.append((int(c.end[chain]), max(float(target.tail[0]), 1.0)))
        if len(entries) == 2 and entries[0][0] == entries[1][0]:  # a loop: the cheaper end
            entries = [min(entries, key=lambda e: e[1])]
        entries.sort()
        entries += [(n, 1.0)] * (2 - len(entries))  # an unused slot loops on the target
        with self._lock:
            self._graph.indices[-2:] = [j for j, _ in entries]
            self._graph.data[-2:] = [w for _, w in entries]
            result = dijkstra(self._graph, directed=True, indices=n, limit=limit,
                              return_predecessors=predecessors)  # fmt: skip
        if predecessors:
            return result[0], result[1]
        return result, None

    def best(self, dist: np.ndarray, target: Positions, sources: Positions
             ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Each source's best packed cost to the target and how it leaves its chain."""
        c, ch = self.chains, sources.chain
        each = Positions(*(np.broadcast_to(a[:1], ch.shape) for a in target))
        return leave(self, dist[c.end[ch]], dist[c.start[ch]], each, sources)

    @property
    def junction_graph(self) -> csr_matrix:
        """The reversed graph of junctions (row ``j`` holds the arcs arriving at ``j``)."""
        n = self.chains.junctions
        return self._graph[:n, :n].tocsr()

    def path(self, target: Positions, source: Positions, how: int, pred: np.ndarray
             ) -> tuple[list[int], list[int]]:  # fmt: skip
        """The segments of a source's drive (index 0 of both) in order, and the nodes it
        passes between its first and last point."""
        c = self.chains
        cs, i = int(source.chain[0]), int(source.place[0])
        ct, k = int(target.chain[0]), int(target.place[0])
        segs, nodes = c.segments[cs], c.nodes[cs]
        if how in (VIA_BEFORE, VIA_AFTER):  # back to a node and on (or back) to the target
            node = nodes[i] if how == VIA_BEFORE else nodes[k + 1]
            return [segs[i], segs[k]], [node]
        if how == DIRECT:
            if i <= k:
                return segs[i : k + 1], nodes[i + 1 : k + 1]
            return segs[k : i + 1][::-1], nodes[k + 1 : i + 1][::-1]
        if how == END:
            out, passed = segs[i:], nodes[i + 1 :]
        else:
            out, passed = segs[i::-1], nodes[i::-1]
        j = passed[-1]
        while True:
            nxt = int(pred[c.junction_id[j]])
            if nxt == c.junctions or nxt < 0:
                break
            chain = self._arc(int(c.junction_id[j]), nxt)
            forward = int(c.start[chain]) == c.junction_id[j] and int(c.end[chain]) == nxt
            out += c.segments[chain] if forward else c.segments[chain][::-1]
            passed += (c.nodes[chain] if forward else c.nodes[chain][::-1])[1:]
            j = passed[-1]
        last = c.nodes[ct]
        # enter the target's chain as the search did (see search(): the end only when allowed,
        # and of a loop's two ends the cheaper)
        by_end = not c.oneway[ct] or target.tail_m[0] <= AT_NODE_M
        at = c.junction_id[j]
        if at == c.start[ct] and (
            at != c.end[ct] or not by_end or target.head[0] <= target.tail[0]
        ):
            return out + c.segments[ct][: k + 1], passed + last[1 : k + 1]
        return out + c.segments[ct][k:][::-1], passed + last[k + 1 : -1][::-1]

    def _arc(self, tail: int, head: int) -> int:
        """The chain of the search arc ``tail -> head`` (forward)."""
        g = self._graph
        row = slice(g.indptr[head], g.indptr[head + 1])  # the reversed graph: row = head
        return int(self._arc_chain[g.indptr[head] + int(np.flatnonzero(g.indices[row] == tail)[0])])


def leave(search: ChainSearch, at_end: np.ndarray, at_start: np.ndarray, target: Positions,
          sources: Positions) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each source's best packed cost to its target (``target`` holds one per source) and how
    it leaves its chain, given the packed cost from its chain's end and start junctions to that
    target (``at_end``, ``at_start``)."""
    c, ch = search.chains, sources.chain
    by_end = sources.tail + at_end
    backward = ~c.oneway[ch] | (sources.head_m <= AT_NODE_M)
    by_start = np.where(backward, sources.head + at_start, np.inf)
    how = np.where(by_end <= by_start, END, START)
    cost = np.minimum(by_end, by_start)
    same = ch == target.chain
    where_s = sources.place + sources.along
    where_t = target.place + target.along
    ahead = same & (where_s <= where_t)
    behind = same & (where_s >= where_t) & ~c.oneway[ch]
    direct = np.full(len(ch), np.inf)
    direct[ahead] = target.head[ahead] - sources.head[ahead]
    direct[behind] = sources.head[behind] - target.head[behind]
    how = np.where(direct <= cost, DIRECT, how)
    cost = np.minimum(cost, direct)
    stuck = np.flatnonzero(same & ~ahead & ~behind) if same.any() else None
    if stuck is not None and len(stuck):  # one-way, the target behind the source
        via, via_how = _via_node(search, Positions(*(a[stuck] for a in target)),
                                 Positions(*(a[stuck] for a in sources)))  # fmt: skip
        better = via < cost[stuck]
        cost[stuck[better]], how[stuck[better]] = via[better], via_how[better]
    return cost, how


def _via_node(search: ChainSearch, target: Positions, sources: Positions
              ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Sources just past their target on a one-way chain: the drive through a node within
    :data:`AT_NODE_M` of the source behind it (it may leave the node by the chain) or of the
    target ahead of it (it may be reached from the node), as the plain graph has it when
    that node is a junction; ``inf`` where there is none."""
    s_before, _, s_before_m, _ = search.nodes_around(sources)
    _, t_after, _, t_after_m = search.nodes_around(target)
    s_at = s_before_m <= AT_NODE_M  # the source may back up to the node before it
    t_at = t_after_m <= AT_NODE_M  # the target may be reached from the node after it
    same_seg = sources.place == target.place
    cost = np.full(len(same_seg), np.inf)
    how = np.full(len(same_seg), VIA_BEFORE)
    # one segment apart: both within a metre of the node between them
    between = (sources.place == target.place + 1) & s_at & t_at
    cost[between] = sources.head[between] - target.head[between]
    # on one segment: back to its first node, or on to its last node and back
    before = same_seg & s_at
    cost[before] = (sources.head + target.head - 2 * s_before)[before]
    after = same_seg & t_at
    by_after = np.where(after, 2 * t_after - sources.head - target.head, np.inf)
    how[by_after < cost] = VIA_AFTER
    return np.minimum(cost, by_after), how
