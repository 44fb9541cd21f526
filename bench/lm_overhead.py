"""Overhead of lmpc's LM layer: µs per LMClient call with an instant transport, per call
that misses and stores into the SQLite cache, and per cache hit (in-memory layer, and a
plain SQLite query as another process would see it).

Run: python bench/lm_overhead.py [--n 20000]

With --dspy (needs dspy and the embedded model), DSPy 3.4.1's own LM-level cache hit
(``dspy.LM(...)`` served from its in-memory cache) is measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMRequest, LMResponse

PROMPT = "Review: a tender, funny film that never talks down to its audience.\nSentiment:"
SETTINGS = {"temperature": 0.0, "max_tokens": 8, "stop": ["\n"],
            "api_key": {"env": "OPENAI_API_KEY"}}


class InstantTransport:
    """Returns at once: what remains is the client's own cost."""

    def send(self, request: LMRequest) -> LMResponse:
        return LMResponse("positive", prompt_tokens=12, completion_tokens=1)


def per_call_us(fn: Callable[[int], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of the mean µs per call."""
    results = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        results.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(results)


def bench_lmpc(n: int) -> dict[str, float]:
    requests = [LMRequest("openai/gpt-4o-mini", "text", prompt=f"{PROMPT} {i}",
                          settings=SETTINGS) for i in range(n * 5)]
    no_cache = LMClient(InstantTransport())
    out = {"call, no cache": per_call_us(lambda i: no_cache.complete(requests[i]), n)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = SQLiteCache(Path(tmp) / "cache.sqlite")
        cached = LMClient(InstantTransport(), cache=cache)
        out["call + cache miss/store"] = per_call_us(lambda i: cached.complete(requests[i]), n)
        hit = requests[0]
        out["cache hit (in-memory layer)"] = per_call_us(lambda i: cached.complete(hit), n)
        assert cached.complete(hit).cached
        # as another process sees it: every hit is an SQLite query
        disk_only = LMClient(InstantTransport(),
                             cache=SQLiteCache(cache.path, memory_items=0))
        out["cache hit (SQLite query)"] = per_call_us(
            lambda i: disk_only.complete(requests[i % n]), n)
        assert disk_only.complete(hit).cached
        cache.close()
    return out


def bench_dspy_cache_hit(n: int) -> float:
    """DSPy's LM served from its in-memory cache (the model answers once)."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy
    import litellm

    from lmpc.runtime.local_model import load_local_model, register_local_provider

    load_local_model("local/gemma-3-270m")
    register_local_provider(litellm)
    lm = dspy.LM("local/gemma-3-270m", model_type="chat", temperature=0.0, max_tokens=8,
                 cache=True)
    lm(PROMPT)
    return per_call_us(lambda i: lm(PROMPT), max(100, n // 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dspy", action="store_true")
    args = parser.parse_args()
    results = bench_lmpc(args.n)
    if args.dspy:
        results["dspy 3.4.1 LM cache hit (memory)"] = bench_dspy_cache_hit(args.n)
    for name, us in results.items():
        print(f"{name:34s} {us:8.1f} µs/call")  # noqa: T201 - a benchmark script reports


if __name__ == "__main__":
    main()
