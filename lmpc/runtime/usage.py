"""Usage accounting for LM calls: one record per call, totals, and totals by attribution.

A ``UsageLog`` belongs to one ``LMClient``; budget trackers and the build report read
``snapshot()`` and ``by(key)``. Every method is thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    """One ``LMClient.complete`` call: a new call, a cache hit, or a failure."""

    call_id: str
    model: str
    attribution: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    failed: bool = False
    attempts: int = 1
    rejected: int = 0  # replies refused on the way (outside their grammar, cut short)
    error: str = ""  # why a failed call failed (no secret: the transport masks them)


@dataclass
class _Totals:
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    seconds: float = 0.0
    retries: int = 0
    rejected: int = 0
    parse_retries: int = 0

    def add(self, record: CallRecord) -> None:
        if record.cached:
            self.cache_hits += 1
        elif record.failed:
            self.failures += 1
        else:
            self.calls += 1
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cost_usd += record.cost_usd
        self.seconds += record.latency_s
        self.retries += max(0, record.attempts - 1)
        self.rejected += record.rejected
        self.parse_retries += bool(record.attribution.get("parse_retry"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "failures": self.failures,
            "seconds": self.seconds,
            "retries": self.retries,
            "rejected": self.rejected,
            "parse_retries": self.parse_retries,
        }


class UsageLog:
    """Thread-safe log of LM calls.

    ``calls`` counts new (uncached, successful) calls, ``cache_hits`` hits and
    ``failures`` calls that raised ``LMError`` after their retries; ``retries`` counts the
    extra attempts, ``rejected`` the replies refused (outside their grammar, cut short)
    and ``parse_retries`` the calls made again because a reply did not parse.
    ``seconds`` is the summed wall time of the calls.

    >>> log = UsageLog()
    >>> log.record(CallRecord("a1", "m", {"pass": "p"}, prompt_tokens=3, completion_tokens=2))
    >>> log.record(CallRecord("a1", "m", {"pass": "p"}, cached=True))
    >>> log.snapshot()["calls"], log.snapshot()["cache_hits"], log.by("pass")["p"]["prompt_tokens"]
    (1, 1, 3)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._totals = _Totals()

    def record(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._totals.add(record)

    def snapshot(self) -> dict[str, Any]:
        """Totals so far: calls, cache_hits, prompt/completion tokens, cost_usd, failures."""
        with self._lock:
            return self._totals.as_dict()

    def by(self, key: str) -> dict[Any, dict[str, Any]]:
        """Totals grouped by one attribution key; calls without that key go under ``None``."""
        with self._lock:
            records = list(self._records)
        groups: dict[Any, _Totals] = {}
        for record in records:
            groups.setdefault(_hashable(record.attribution.get(key)), _Totals()).add(record)
        return {value: totals.as_dict() for value, totals in groups.items()}

    @property
    def records(self) -> list[CallRecord]:
        """A copy of every call record, in completion order."""
        with self._lock:
            return list(self._records)

    def last_error(self, since: int = 0) -> str:
        """The error of the last failed call among the records from ``since`` on."""
        with self._lock:
            failed = [r.error for r in self._records[since:] if r.failed and r.error]
        return failed[-1] if failed else ""

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def _hashable(value: Any) -> Any:
    """Attribution values are usually str/int; lists or dicts are grouped by their repr."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
