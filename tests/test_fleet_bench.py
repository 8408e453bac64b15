"""``polewatch bench fleet`` at a small size: every socket is held, every position answered,
every dispatch written is pushed to its unit, and the figures a reader needs are there, with
the same load on a bare aiohttp WebSocket server beside them."""

from __future__ import annotations

import argparse

from gateway import fleetbench


def test_the_fleet_bench_holds_its_sockets_and_pushes_every_dispatch() -> None:
    args = argparse.Namespace(
        quick=True, redis_url=None, sockets=40, period=0.5, rate=40.0, seconds=2.0
    )
    result = fleetbench.run(args)
    assert result["sockets_held"] == 40 and result["connect_failed"] == 0
    assert result["errors"] == 0
    assert result["dispatches_written"] > 40
    assert result["dispatches_pushed"] == result["dispatches_written"]
    assert result["positions_per_s"] > 0.5 * result["positions_sent_per_s"] > 0
    assert result["push_latency_ms"]["p50"] is not None
    assert result["gateway_cpu_us_per_message"] > 0
    assert "--sockets 40 --period 0.5 --rate 40" in result["command"]
    bare = result["bare"]  # the same load on a bare aiohttp server, side by side
    assert bare["sockets_held"] == 40 and bare["dispatches_pushed"] > 0
    assert result["cpu_ratio_to_bare"] > 0
