"""Contracting the graph: chains of segments through plain bends become single search arcs.

Most vertices of a road file are bends (two segments, nothing else meets there). The search
only needs the *junctions*: nodes where other than exactly two segments meet, or where the
two differ in direction rules (a one-way meets a two-way, two one-ways both arrive or both
leave). A *chain* is the run of segments between two junctions; it is one-way (all of its
segments one-way, one after the other) or two-way. A closed ring of bends gets one of its
nodes as a junction. Positions inside a chain are kept per segment, so points still snap to
segments and routes still draw every vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chains:
    """The contraction of a segment graph (``u -> v`` per segment; one-way ones run so)."""

    junction_id: np.ndarray
    """Per node: its dense junction number, -1 for a bend."""
    junctions: int
    start: np.ndarray
    """Per chain: junction number where it starts (its direction for a one-way chain)."""
    end: np.ndarray
    oneway: np.ndarray
    seg_chain: np.ndarray
    """Per segment: its chain, its position in it, whether it runs the chain's way."""
    seg_index: np.ndarray
    seg_aligned: np.ndarray
    nodes: list[list[int]]
    """Per chain: its nodes in order, junction to junction."""
    segments: list[list[int]]
    """Per chain: its segments in order."""


def contract(u: np.ndarray, v: np.ndarray, oneway: np.ndarray, node_count: int) -> Chains:
    """The chains of the segment graph ``u[i] -> v[i]``."""
    ends = np.concatenate([u, v])
    degree = np.bincount(ends, minlength=node_count)
    incident: list[list[int]] = [[] for _ in range(node_count)]
    for s, (a, b) in enumerate(zip(u.tolist(), v.tolist(), strict=True)):
        incident[a].append(s)
        incident[b].append(s)
    junction = degree != 2
    for n in np.flatnonzero(degree == 2).tolist():
        s1, s2 = incident[n]
        mixed = oneway[s1] != oneway[s2]
        clash = oneway[s1] and (v[s1] == n) == (v[s2] == n)  # both arrive or both leave
        junction[n] = mixed or clash
    seg_chain = np.full(len(u), -1, dtype=np.int64)
    seg_index = np.zeros(len(u), dtype=np.int64)
    seg_aligned = np.ones(len(u), dtype=np.bool_)
    nodes: list[list[int]] = []
    segments: list[list[int]] = []

    def walk(first: int, s: int) -> None:
        chain = len(nodes)
        path, at = [first], first
        segs: list[int] = []
        while True:
            nxt = int(v[s]) if u[s] == at else int(u[s])
            seg_chain[s], seg_index[s], seg_aligned[s] = chain, len(segs), u[s] == at
            segs.append(s)
            path.append(nxt)
            at = nxt
            if junction[at]:
                break
            s = next(x for x in incident[at] if x != s)
        nodes.append(path)
        segments.append(segs)

    def walk_from(n: int) -> None:
        for s in incident[n]:
            if seg_chain[s] < 0 and not (oneway[s] and v[s] == n):
                walk(n, s)

    for n in np.flatnonzero(junction).tolist():
        walk_from(n)
    for s in np.flatnonzero(seg_chain < 0).tolist():  # rings of bends only
        if seg_chain[s] < 0:
            junction[u[s]] = True
            walk_from(int(u[s]))
    junction_id = np.full(node_count, -1, dtype=np.int64)
    junction_id[junction] = np.arange(int(junction.sum()))
    start = np.array([junction_id[p[0]] for p in nodes], dtype=np.int64)
    end = np.array([junction_id[p[-1]] for p in nodes], dtype=np.int64)
    chain_oneway = np.array([bool(oneway[s[0]]) for s in segments], dtype=np.bool_)
    return Chains(junction_id, int(junction.sum()), start, end, chain_oneway, seg_chain,
                  seg_index, seg_aligned, nodes, segments)  # fmt: skip
