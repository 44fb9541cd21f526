"""Per-model limits, shared by every thread of one ``LMClient``: calls in flight, requests
and tokens per minute, and a pause after a rate-limit reply that every caller honours.

An ``lm`` declaration may set ``max_concurrency``, ``rpm`` and ``tpm``; otherwise a
hosted model gets as many calls in flight as the caller has threads. The embedded models
run one call at a time whatever the threads (a llama.cpp context is not thread-safe, and
its two threads already use both cores).

``rpm`` and ``tpm`` bound what starts in any window of ``window_s`` (60) seconds. A
request's tokens are not known before it is answered, so it reserves an estimate (a
token per 4 prompt characters plus its ``max_tokens``, which is how hosted APIs count
it too) that the reply's real usage replaces.

>>> limiter = ModelLimiter(Limits(rpm=2))
>>> [limiter.acquire(10) for _ in range(2)] and limiter.started_in_window()
2
>>> limiter.wait_s(10) > 0   # a third request must wait for the window to move on
True
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from lmpc.runtime.lm_types import LMError, LMRequest

WINDOW_S = 60.0
# Settings that say how fast lmpc may call a model: read by LMClient, never sent, not
# part of the cache key (they never change an answer).
LIMIT_SETTINGS = frozenset({"max_concurrency", "rpm", "tpm"})


@dataclass(frozen=True)
class Limits:
    """What one model endpoint allows; None is no limit."""

    max_concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None

    @classmethod
    def of(cls, model: str, settings: Mapping[str, Any]) -> Limits:
        """The limits a request's settings declare (``LMError`` if one is not a count)."""
        values = {}
        for name in LIMIT_SETTINGS:
            value = settings.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LMError(f"{name} of {model} must be a whole number >= 1, not {value!r}")
            values[name] = value
        return cls(**values)

    def tighter(self, other: Limits) -> Limits:
        """The smaller of each limit the two set."""
        return replace(self, **{
            f.name: min(v for v in (getattr(self, f.name), getattr(other, f.name))
                        if v is not None)
            for f in fields(self)
            if getattr(self, f.name) is not None or getattr(other, f.name) is not None})


def endpoint_of(request: LMRequest) -> tuple[str, str]:
    """What one limiter governs: the model at its endpoint (another base URL is another
    server with limits of its own)."""
    base = request.settings.get("api_base") or request.settings.get("base_url") or ""
    return request.model, base if isinstance(base, str) else repr(base)


def estimate_tokens(request: LMRequest) -> int:
    """The tokens a request is counted for before its reply says how many it used."""
    if request.mode == "text":
        chars = len(request.prompt or "")
    else:
        chars = sum(len(str(m.get("content") or "")) for m in request.messages or ())
    max_tokens = request.settings.get("max_tokens")
    completion = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
    return math.ceil(chars / 4) + completion


class Slot:
    """One admitted call: release it with the tokens it really used."""

    __slots__ = ("entry",)

    def __init__(self, entry: list[float] | None) -> None:
        self.entry = entry  # [start time, tokens counted] in the tokens window


class ModelLimiter:
    """The limits of one model endpoint, shared by the threads calling it.

    ``acquire`` blocks until a call may start (fewer than ``max_concurrency`` in flight,
    the window has room for one more request and its tokens, no rate-limit pause); each
    ``acquire`` is paired with a ``release``. ``pause(s)`` holds every caller back for
    ``s`` seconds: a 429 seen by one thread stops them all from hammering the endpoint.
    ``peak`` is the most calls ever in flight at once.
    """

    def __init__(self, limits: Limits, *, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.window_s = window_s
        self._clock = clock
        self._cond = threading.Condition()
        self._starts: deque[float] = deque()
        self._tokens: deque[list[float]] = deque()
        self._paused_until = 0.0
        self.in_flight = 0
        self.peak = 0

    def tighten(self, limits: Limits) -> None:
        with self._cond:
            self.limits = self.limits.tighter(limits)

    def acquire(self, tokens: int, waited_until: float = 0.0) -> Slot:
        """Block until a call of ``tokens`` may start. ``waited_until`` is the end of a
        pause the caller already sat out itself (its own backoff after the 429)."""
        with self._cond:
            while True:
                wait = self._wait_locked(tokens, waited_until)
                if wait == 0.0:
                    return self._admit_locked(tokens)
                self._cond.wait(None if wait == math.inf else wait)

    def release(self, slot: Slot, tokens_used: int | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            if slot.entry is not None and tokens_used:
                slot.entry[1] = tokens_used
            self._cond.notify_all()

    def pause(self, seconds: float) -> float:
        """Hold every caller back for ``seconds``; returns the pause's end."""
        with self._cond:
            until = self._clock() + seconds
            self._paused_until = max(self._paused_until, until)
            self._cond.notify_all()
            return until

    def wait_s(self, tokens: int) -> float:
        """How long a call of ``tokens`` would wait now (inf: until a call ends)."""
        with self._cond:
            return self._wait_locked(tokens)

    def started_in_window(self) -> int:
        with self._cond:
            self._forget_locked(self._clock())
            return len(self._starts)

    def _wait_locked(self, tokens: int, waited_until: float = 0.0) -> float:
        now = self._clock()
        self._forget_locked(now)
        limits = self.limits
        waits = [0.0 if self._paused_until <= waited_until else self._paused_until - now]
        if limits.rpm is not None and len(self._starts) >= limits.rpm:
            waits.append(self._starts[0] + self.window_s - now)
        if limits.tpm is not None and self._tokens:
            # tokens to free before this one fits; a request larger than the whole
            # budget goes alone, once the window is empty
            excess = sum(e[1] for e in self._tokens) + min(tokens, limits.tpm) - limits.tpm
            for start, counted in self._tokens:
                if excess <= 0:
                    break
                excess -= counted
                waits.append(start + self.window_s - now)
        wait = max(waits)
        if limits.max_concurrency is not None and self.in_flight >= limits.max_concurrency:
            return math.inf if wait <= 0 else wait
        return max(0.0, wait)

    def _admit_locked(self, tokens: int) -> Slot:
        now = self._clock()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.limits.rpm is not None:
            self._starts.append(now)
        entry = None
        if self.limits.tpm is not None:
            entry = [now, float(tokens)]
            self._tokens.append(entry)
        return Slot(entry)

    def _forget_locked(self, now: float) -> None:
        horizon = now - self.window_s
        while self._starts and self._starts[0] <= horizon:
            self._starts.popleft()
        while self._tokens and self._tokens[0][0] <= horizon:
            self._tokens.popleft()
