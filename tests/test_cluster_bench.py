"""``polewatch bench cluster --quick`` runs its three set-ups to the end and they agree."""

from __future__ import annotations

import argparse

from dispatcher import cluster_bench


def test_the_quick_cluster_bench_agrees_across_set_ups() -> None:
    out = cluster_bench.run(argparse.Namespace(quick=True, redis_url=None))
    single, one, three = out["single"], out["cluster_1"], out["cluster_3"]
    for r in (single, one, three):
        assert r["alarms"] == 4000 and r["alarms_per_s"] > 0
    # The same alarms give the same incidents whether zoned or not (merges at a border may
    # land on either side, hence a small tolerance).
    assert abs(one["incidents"] - single["incidents"]) <= 40
    assert abs(three["incidents"] - single["incidents"]) <= 40
    assert single["routed_across_a_border"] == 0 < three["routed_across_a_border"]
    shares = three["redis_cpu_share_per_shard"]
    assert len(shares) == 3 and all(s > 0.1 for s in shares)
