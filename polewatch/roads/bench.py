"""``polewatch bench route``: one-to-many drive times on the Shenzhen graph.

An incident at a random node of the main network (its largest strongly connected part, where
units and alarms are placed), 50 candidate units at random such nodes within 6 km of it (a
GEO shortlist); timed side by side in one run:

* ``router``: :meth:`RoadNetwork.drive_times_to` (snapping included), and again with
  ``limit_s=900`` (``router_limit_900s``);
* ``heapq``: a plain-Python backward Dijkstra that stops once every candidate is settled
  (the alternative the router's design was measured against);
* ``reference``: scipy's Dijkstra over the whole forward graph from the 50 candidates
  (``indices``, no limit), float seconds: the exhaustive answer.

``router_cpu``: the router's CPU time per call (this thread's), which a busy shared machine
inflates less than wall times. ``max_diff_s`` is the largest difference between the router's
and the reference's times (packing rounds each arc to the millisecond). Also the graph's
build time and size.
"""

from __future__ import annotations

import argparse
import heapq
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from polewatch.roads.features import read_roads
from polewatch.roads.graph import build
from polewatch.roads.network import RoadNetwork
from polewatch.roads.profile import Profile

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "roads"
FILES = ("shenzhen_central_roads.geojson", "shenzhen_baoan_roads.geojson")
CANDIDATES = 50
RADIUS_M = 6000.0
LIMIT_S = 900.0
"""``router_limit_900s``: the same with ``limit_s`` (a dispatcher bounds its searches)."""


def shenzhen(data: Path = DATA) -> tuple[RoadNetwork, dict[str, Any]]:
    """The network of both Shenzhen files and how long it took to build."""
    started = time.perf_counter()
    report = read_roads([data / f for f in FILES])
    read = time.perf_counter()
    profile = Profile()
    arrays, stats = build(report.ways, profile)
    net = RoadNetwork(arrays, profile=profile, names=[w.name for w in report.ways],
                      highways=[w.highway for w in report.ways])  # fmt: skip
    done = time.perf_counter()
    return net, {"read_s": round(read - started, 3), "build_s": round(done - read, 3), **stats}


def forward_seconds(net: RoadNetwork) -> csr_matrix:
    """The forward graph with float seconds (an independent build, for references)."""
    a = net.arrays
    both = ~a["oneway"]
    tail = np.concatenate([a["u"], a["v"][both]])
    head = np.concatenate([a["v"], a["u"][both]])
    secs = a["length_m"] / a["speed_mps"]
    w = np.concatenate([secs, secs[both]])
    order = np.lexsort((w, head, tail))
    key = tail[order].astype(np.int64) * net.nodes + head[order]
    keep = order[np.concatenate([[True], key[1:] != key[:-1]])]
    return csr_matrix((w[keep], (tail[keep], head[keep])), shape=(net.nodes, net.nodes))


def _heapq_times(rev: list[list[tuple[int, float]]], target: int, wanted: set[int]
                 ) -> dict[int, float]:  # fmt: skip
    dist = {target: 0.0}
    heap = [(0.0, target)]
    done: dict[int, float] = {}
    left = set(wanted)
    while heap and left:
        d, n = heapq.heappop(heap)
        if n in done:
            continue
        done[n] = d
        left.discard(n)
        for m, w in rev[n]:
            nd = d + w
            if nd < dist.get(m, np.inf):
                dist[m] = nd
                heapq.heappush(heap, (nd, m))
    return done


def run(args: argparse.Namespace) -> dict[str, Any]:
    net, built = shenzhen()
    rounds = 20 if getattr(args, "quick", False) else 400
    rng = np.random.default_rng(7)
    fwd = forward_seconds(net)
    rev_csr = fwd.T.tocsr()
    rev = [
        list(zip(rev_csr.indices[rev_csr.indptr[i]:rev_csr.indptr[i + 1]].tolist(),
                 rev_csr.data[rev_csr.indptr[i]:rev_csr.indptr[i + 1]].tolist(), strict=True))
        for i in range(net.nodes)
    ]  # fmt: skip
    times: dict[str, list[float]] = {
        "router": [],
        "router_limit_900s": [],
        "heapq": [],
        "reference": [],
    }
    cpu: list[float] = []
    max_diff = 0.0
    reached = 0
    leave, enter = net._search.reach()
    main = np.zeros(net.nodes, dtype=np.bool_)
    main[net.u[leave & enter]] = main[net.v[leave & enter]] = True
    for _ in range(rounds):
        target = int(rng.choice(np.flatnonzero(main)))
        tlon, tlat = float(net.lon[target]), float(net.lat[target])
        near = np.flatnonzero(
            main & (np.hypot((net.lon - tlon) * 103_000, (net.lat - tlat) * 111_000) < RADIUS_M)
        )
        units = rng.choice(near, size=min(CANDIDATES, len(near)), replace=False)
        sources = [(float(net.lon[u]), float(net.lat[u])) for u in units]
        c0, t0 = time.thread_time(), time.perf_counter()
        legs = net.drive_times_to(tlon, tlat, sources)
        c1, t1 = time.thread_time(), time.perf_counter()
        cpu.append(c1 - c0)
        net.drive_times_to(tlon, tlat, sources, limit_s=LIMIT_S)
        t15 = time.perf_counter()
        _heapq_times(rev, target, {int(u) for u in units})
        t2 = time.perf_counter()
        ref = dijkstra(fwd, directed=True, indices=units)[:, target]
        t3 = time.perf_counter()
        times["router"].append(t1 - t0)
        times["router_limit_900s"].append(t15 - t1)
        times["heapq"].append(t2 - t15)
        times["reference"].append(t3 - t2)
        for leg, r in zip(legs, ref.tolist(), strict=True):
            if leg is not None and np.isfinite(r):
                reached += 1
                max_diff = max(max_diff, abs(leg.time_s - r))
            elif (leg is None) != (not np.isfinite(r)):
                max_diff = np.inf  # one answered where the other did not: a bug
    stats = {name: _percentiles(v) for name, v in times.items()}
    stats["router_cpu"] = _percentiles(cpu)
    return {
        "graph": {
            **built,
            "blob_bytes": len(net.to_bytes()),
            "fastest_kmh": round(net.fastest_mps * 3.6, 1),
        },  # fmt: skip
        "incidents": rounds,
        "candidates": CANDIDATES,
        "radius_m": RADIUS_M,
        "legs_reached": reached,
        "max_diff_s": round(max_diff, 4),
        **stats,
        "p99_ratio_reference_over_router": round(
            stats["reference"]["p99_ms"] / stats["router"]["p99_ms"], 2
        ),
        "p50_ratio_heapq_over_router": round(
            stats["heapq"]["p50_ms"] / stats["router"]["p50_ms"], 2
        ),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }
