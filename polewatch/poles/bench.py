"""``polewatch bench lookup``: exact and fuzzy pole-code lookups over the 100k demo city."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from polewatch import keys
from polewatch.connection import connect
from polewatch.embedded import EmbeddedRedis
from polewatch.poles.city import generate_city
from polewatch.poles.index import PoleIndex
from polewatch.poles.model import Pole
from polewatch.poles.registry import PoleRegistry

BENCH_CITY = "bench-shenzhen"
_DIGITS = "0123456789"


def misread(code: str, rng: random.Random) -> str:
    """``code`` with one random mistake: wrong, missing, extra or swapped digit."""
    i = rng.randrange(len(code))
    kind = rng.choice("sdit")
    if kind == "s":
        return code[:i] + rng.choice(_DIGITS.replace(code[i], "")) + code[i + 1 :]
    if kind == "d":
        return code[:i] + code[i + 1 :]
    if kind == "i":
        return code[:i] + rng.choice(_DIGITS) + code[i:]
    j = min(i, len(code) - 2)
    return code[:j] + code[j + 1] + code[j] + code[j + 2 :]


def _timed(call: Callable[[str], object], queries: list[str]) -> dict[str, float]:
    samples = []
    clock = time.perf_counter_ns
    started = clock()
    for q in queries:
        t = clock()
        call(q)
        samples.append(clock() - t)
    total_s = (clock() - started) / 1e9
    samples.sort()
    return {
        "n": len(samples),
        "per_s": round(len(samples) / total_s),
        "p50_us": round(samples[len(samples) // 2] / 1000, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 2),
        "max_us": round(samples[-1] / 1000, 2),
        "mean_us": round(statistics.fmean(samples) / 1000, 2),
    }


async def _build(url: str, poles: list[Pole]) -> tuple[PoleIndex, float, float]:
    client = connect(url, name="polewatch-bench")
    try:
        registry = PoleRegistry(client, BENCH_CITY)
        started = time.perf_counter()
        await registry.store(poles, replace=True)
        stored = time.perf_counter()
        index = await registry.load_index()
        loaded = time.perf_counter()
        # Leave a shared Redis as it was.
        await registry.store([], replace=True)
        await client.delete(keys.poles_version(BENCH_CITY))
        await client.srem(keys.CITIES, BENCH_CITY)
        return index, stored - started, loaded - stored
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, store and index the city, then time exact and fuzzy lookups."""
    quick = bool(getattr(args, "quick", False))
    started = time.perf_counter()
    poles = generate_city(seed=7, count=100_000, city=BENCH_CITY)
    generate_s = time.perf_counter() - started
    if getattr(args, "redis_url", None):
        index, store_s, load_s = asyncio.run(_build(args.redis_url, poles))
    else:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, appendonly=False) as srv:
            index, store_s, load_s = asyncio.run(_build(srv.url, poles))
    rng = random.Random(42)
    codes = [p.code for p in poles]
    exact = [rng.choice(codes) for _ in range(20_000 if quick else 200_000)]
    fuzzy = [misread(rng.choice(codes), rng) for _ in range(500 if quick else 5_000)]
    near = (114.06, 22.55)
    return {
        "poles": len(index),
        "generate_s": round(generate_s, 3),
        "store_s": round(store_s, 3),
        "load_index_s": round(load_s, 3),
        "exact_get": _timed(index.get, exact),
        "exact_resolve": _timed(index.resolve, exact[: len(fuzzy) * 4]),
        "fuzzy_resolve": _timed(index.resolve, fuzzy),
        "fuzzy_resolve_near": _timed(lambda q: index.resolve(q, near=near), fuzzy),
        # a real code with the caller's position: every look-alike ranked by distance
        "exact_resolve_near": _timed(lambda q: index.resolve(q, near=near), exact[: len(fuzzy)]),
    }
