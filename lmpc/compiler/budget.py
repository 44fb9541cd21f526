"""The hard budget of an ``optimize`` block: a cap on new LM calls and on dollars.

``BudgetTracker`` reads the LM client's usage log. Passes call ``ctx.budget.check()``
before an LM-heavy step; ``BudgetedClient`` also guards every single call, so a pass
that forgets to check still cannot pass the cap. Cache hits are free and always allowed.
Both raise ``BudgetExceeded``; the pipeline then stops and keeps the best program so far.

>>> from lmpc.ir import BudgetIR
>>> from lmpc.runtime.lm import LMClient, LMRequest
>>> from lmpc.runtime.scripted import ScriptedTransport
>>> client = LMClient(ScriptedTransport(default="ok"))
>>> tracker = BudgetTracker(BudgetIR(calls=1), client)
>>> guarded = BudgetedClient(client, tracker)
>>> guarded.complete(LMRequest("m", "text", prompt="a")).text
'ok'
>>> guarded.complete(LMRequest("m", "text", prompt="b"))
Traceback (most recent call last):
...
lmpc.compiler.passes.base.BudgetExceeded: budget of 1 LM calls reached (1 used)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from lmpc.compiler.passes.base import BudgetExceeded
from lmpc.ir import BudgetIR


class BudgetTracker:
    """Counts new LM calls and cost since it was created, against ``budget``'s caps."""

    def __init__(self, budget: BudgetIR, client: Any) -> None:
        self.budget = budget
        self._client = client
        self._start = client.usage.snapshot()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.exceeded: str | None = None  # the reason, once a cap was hit

    @property
    def limited(self) -> bool:
        return self.budget.calls is not None or self.budget.usd is not None

    def used(self) -> dict[str, float]:
        """New calls and dollars spent since the tracker started."""
        now = self._client.usage.snapshot()
        return {
            "calls": now["calls"] - self._start["calls"],
            "cost_usd": now["cost_usd"] - self._start["cost_usd"],
        }

    def check(self, calls: int = 1) -> None:
        """Raise ``BudgetExceeded`` if ``calls`` more new calls would pass a cap."""
        with self._lock:
            self._check_locked(calls)

    def _check_locked(self, calls: int) -> None:
        used = self.used()
        cap_calls, cap_usd = self.budget.calls, self.budget.usd
        if cap_calls is not None and used["calls"] + self._in_flight + calls > cap_calls:
            self._fail(f"budget of {cap_calls} LM calls reached ({int(used['calls'])} used)")
        if cap_usd is not None and used["cost_usd"] >= cap_usd:
            self._fail(f"budget of ${cap_usd:g} reached (${used['cost_usd']:.4f} spent)")

    def _fail(self, reason: str) -> None:
        self.exceeded = reason
        raise BudgetExceeded(reason)

    def reserve(self) -> None:
        """Claim one call (so parallel threads cannot all slip under the cap at once)."""
        with self._lock:
            self._check_locked(1)
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1


class BudgetedClient:
    """An LM client that asks the tracker before every uncached call; else delegates."""

    def __init__(self, client: Any, tracker: BudgetTracker) -> None:
        self._client = client
        self._tracker = tracker

    def complete(self, request: Any, attribution: Mapping[str, Any] | None = None) -> Any:
        if not self._tracker.limited or self._is_cached(request):
            return self._client.complete(request, attribution)
        self._tracker.reserve()
        try:
            return self._client.complete(request, attribution)
        finally:
            self._tracker.release()

    def _is_cached(self, request: Any) -> bool:
        from lmpc.runtime.cache import request_key

        cache = getattr(self._client, "cache", None)
        return cache is not None and cache.get(request_key(request)) is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class MeteredClient:
    """Counts the LM *work* of a stretch of a build, the same with a cold or warm cache.

    The usage log counts new calls (what this run paid); the artifact records work
    (requests and their tokens, cached or not) so a warm rebuild writes the same bytes.
    A cache hit's tokens come from the cache entry; its cost is recomputed from them.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.totals = {"lm_requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "cost_usd": 0.0, "failures": 0}

    def complete(self, request: Any, attribution: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._client.complete(request, attribution)
        except BudgetExceeded:
            raise
        except Exception:
            self._add(failures=1)
            raise
        prompt, completion, cost = _work_of(self._client, request, response)
        self._add(lm_requests=1, prompt_tokens=prompt, completion_tokens=completion,
                  cost_usd=cost)
        return response

    def _add(self, **amounts: float) -> None:
        with self._lock:
            for key, amount in amounts.items():
                self.totals[key] += amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.totals)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _work_of(client: Any, request: Any, response: Any) -> tuple[int, int, float]:
    if not getattr(response, "cached", False):
        return response.prompt_tokens, response.completion_tokens, response.cost_usd
    from lmpc.runtime.cache import request_key

    cache = getattr(client, "cache", None)
    hit = cache.get(request_key(request)) if cache is not None else None
    if hit is None:
        return 0, 0, 0.0
    return hit.prompt_tokens, hit.completion_tokens, _token_cost(request.model, hit)


def _token_cost(model: str, hit: Any) -> float:
    """Price of a cached reply's tokens, when litellm is loaded and knows the model."""
    import sys

    litellm = sys.modules.get("litellm")
    if litellm is None:
        return 0.0
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=hit.prompt_tokens, completion_tokens=hit.completion_tokens)
        return float(prompt_cost + completion_cost)
    except Exception:  # unknown model or price table: cost unknown, counted as zero
        return 0.0
