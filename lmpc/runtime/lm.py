"""The LM layer: a ``Transport`` sends one request; ``LMClient`` adds the cache, retries,
a per-model concurrency limit and usage accounting.

``LitellmTransport`` reaches any model litellm can (hosted APIs, Ollama, vLLM, a llama.cpp
server) and the embedded ``local/...`` model. Importing litellm takes seconds, so it is
imported only when the first request to a hosted model is sent: never for the embedded
models (called directly), for cache hits, or for a command that calls no LM.

>>> from lmpc.runtime.scripted import ScriptedTransport
>>> transport = ScriptedTransport(replies=[TransientLMError("timeout"), "Paris"])
>>> client = LMClient(transport, sleep=lambda s: None)
>>> client.complete(LMRequest("m", "text", prompt="Capital of France:")).text
'Paris'
>>> client.usage.snapshot()["calls"], client.usage.snapshot()["retries"]
(1, 1)
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, Protocol

from lmpc.credentials import is_secret_ref, literal_secrets, mask
from lmpc.runtime.cache import (
    EXCLUDED_SETTINGS,
    Cache,
    CachedReply,
    LeasingCache,
    request_key,
)
from lmpc.runtime.limits import LIMIT_SETTINGS, Limits, ModelLimiter, endpoint_of, estimate_tokens
from lmpc.runtime.lm_types import (
    ContextWindowError,
    LMError,
    LMRequest,
    LMResponse,
    RateLimited,
    TransientLMError,
)
from lmpc.runtime.trust import Trust, TrustError
from lmpc.runtime.usage import CallRecord, UsageLog

__all__ = [
    "ContextWindowError",
    "LMClient",
    "LMError",
    "LMUnavailable",
    "RateLimited",
    "RejectedReply",
    "LMRequest",
    "LMResponse",
    "LitellmTransport",
    "Transport",
    "TransientLMError",
]

log = logging.getLogger("lmpc")

GIVE_UP_AFTER = 25  # failed calls in a row to one model before later ones fail at once
RETRY_AFTER_MAX_S = 120.0  # a server's Retry-After is honoured up to this
# The embedded models run one call at a time, whatever the threads (see limits.py).
EMBEDDED_LIMITS = Limits(max_concurrency=1)


class Transport(Protocol):
    """Sends one request. Raises ``TransientLMError`` for timeouts, rate limits, 5xx and
    connection errors, ``LMError`` for permanent failures."""

    def send(self, request: LMRequest) -> LMResponse: ...


# ---------------------------------------------------------------------------- the client


class LMClient:
    """Cache, retries with backoff, per-model concurrency limit, usage accounting.

    ``max_retries`` extra attempts (or the request's ``num_retries`` setting, an LM's
    own) follow a ``TransientLMError``, sleeping
    ``min(backoff_max, backoff_base * 2**attempt)`` scaled by a jitter in [0.5, 1], or
    a server's longer ``Retry-After`` (up to ``RETRY_AFTER_MAX_S``). ``sleep`` is
    injectable for tests.

    Limits (``lmpc.runtime.limits``): a request's ``max_concurrency``, ``rpm`` and
    ``tpm`` settings (an LM's own) bound the calls to its model and endpoint, shared by
    every thread of this client; a 429 (``RateLimited``) pauses them all for its
    backoff. ``concurrency`` maps a model to a cap of in-flight calls (an int caps every
    model, as ``default_concurrency`` does); with neither, a hosted model gets as many
    calls in flight as there are threads calling. The embedded ``local/...`` models run
    one at a time.

    A reply that breaks the grammar its request carried (``settings["grammar"]``), or
    that was cut short, is rejected like a transient error: retried, never cached
    (``RejectedReply``). After ``give_up_after`` calls to one model in a row have failed
    for good with no success between, later calls to it fail at once (``LMUnavailable``)
    instead of each waiting out its retries: a build against a dead endpoint ends in
    seconds, not hours, and says why.

    With a ``LeasingCache`` a request missing from the cache is claimed before it is
    sent: a second client (another process, another thread) asking for it meanwhile
    waits for the first one's reply (at most ``lease_ttl_s``) instead of paying again.
    """

    def __init__(
        self,
        transport: Transport,
        cache: Cache | None = None,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        concurrency: Mapping[str, int] | int | None = None,
        default_concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter_seed: int | None = None,
        give_up_after: int | None = GIVE_UP_AFTER,
        lease_ttl_s: float = 300.0,
        limit_window_s: float | None = None,
    ) -> None:
        if isinstance(concurrency, int):
            default_concurrency, concurrency = concurrency, None
        if (default_concurrency is not None and default_concurrency < 1) or any(
                v < 1 for v in (concurrency or {}).values()):
            raise ValueError("concurrency limits must be at least 1")
        self.transport = transport
        self.cache = cache
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.usage = UsageLog()
        self._limits = dict(concurrency or {})
        self._default_limit = default_concurrency
        self._limiters: dict[tuple[str, str], ModelLimiter] = {}
        self._limiters_lock = threading.Lock()
        self._window_s = limit_window_s  # None: a minute (tests shorten it)
        self._sleep = sleep
        self._rng = random.Random(jitter_seed)  # jitter only; never affects results
        self._outage = Outage(give_up_after)
        self.lease_ttl_s = lease_ttl_s  # how long a claimed request is worth waiting for
        self.lease_wait_s = lease_ttl_s

    def complete(self, request: LMRequest, attribution: Mapping[str, Any] | None = None
                 ) -> LMResponse:
        """One LM call: from the cache if there, else sent with retries, then cached.

        Raises ``LMError`` when the request is malformed or fails for good.
        """
        _validate(request)
        key = request_key(request)
        call_id = key[:16]  # deterministic: same request + rollout, same id
        attribution = dict(attribution or {})
        start = time.perf_counter()
        hit = self.cache.get(key) if self.cache is not None else None
        lease = None
        if hit is None:
            hit, lease = self._wait_or_claim(key)
        if hit is not None:
            return self._hit(hit, request.model, call_id, attribution, start)
        try:
            return self._pay(request, key, call_id, attribution, start)
        finally:
            if lease is not None:
                self.cache.release(key, lease)  # type: ignore[union-attr]

    def _pay(self, request: LMRequest, key: str, call_id: str, attribution: dict[str, Any],
             start: float) -> LMResponse:
        """Send a request the cache does not have, record it, cache the reply."""
        try:
            self._outage.check(request.model)
            sent, attempts, rejected = self._send_with_retries(request, call_id)
        except LMError as exc:
            self._outage.failed(request.model, exc)
            self.usage.record(CallRecord(call_id, request.model, attribution,
                                         latency_s=time.perf_counter() - start, failed=True,
                                         attempts=getattr(exc, "attempts", 1),
                                         rejected=getattr(exc, "rejected", 0),
                                         error=str(exc)[:500]))
            raise
        self._outage.succeeded(request.model)
        # a copy: a transport may hand out the same response object twice
        response = replace(sent, latency_s=time.perf_counter() - start, call_id=call_id,
                           cached=False)
        self.usage.record(CallRecord(
            call_id, request.model, attribution, response.prompt_tokens,
            response.completion_tokens, response.cost_usd, response.latency_s, attempts=attempts,
            rejected=rejected,
        ))
        if self.cache is not None:
            self.cache.put(key, request.model, response)
        return response

    def _wait_or_claim(self, key: str) -> tuple[CachedReply | None, str | None]:
        """(the reply another caller paid for, None), or (None, our lease's owner token).

        While another process or thread holds the lease of ``key``, poll the cache for
        its reply; take the lease over when it is released without one or its holder
        died; after ``lease_wait_s`` pay without waiting any longer (None, None).
        """
        cache = self.cache
        if not isinstance(cache, LeasingCache):
            return None, None
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.lease_wait_s
        delay = 0.01
        while True:
            if cache.claim(key, owner, self.lease_ttl_s):
                hit = cache.get(key)  # finished between our miss and our claim?
                if hit is None:
                    return None, owner
                cache.release(key, owner)
                return hit, None
            hit = cache.get(key)
            if hit is not None:
                return hit, None
            if time.monotonic() > deadline:
                log.info("LM cache lease of %s still held after %.0fs; sending anyway",
                         key[:16], self.lease_wait_s)
                return None, None
            time.sleep(delay)  # real time: the injectable sleep is for backoff only
            delay = min(delay * 1.5, 0.25)

    def _hit(self, hit: CachedReply, model: str, call_id: str, attribution: dict[str, Any],
             start: float) -> LMResponse:
        """A cache hit: counted as a hit, with zero new tokens and cost."""
        latency = time.perf_counter() - start
        self.usage.record(CallRecord(call_id, model, attribution, latency_s=latency,
                                     cached=True))
        return LMResponse(text=hit.text, latency_s=latency, cached=True, call_id=call_id,
                          finish_reason=hit.finish_reason)

    def limit(self, model: str) -> int | None:
        """The cap this client puts on calls to ``model`` in flight (None: none, beyond
        the callers' threads and the LM's own ``max_concurrency``)."""
        if model.startswith("local/"):
            return 1
        return self._limits.get(model, self._default_limit)

    def peak_in_flight(self) -> dict[str, int]:
        """The most calls in flight at once, per model, since this client was made."""
        with self._limiters_lock:
            limiters = list(self._limiters.items())
        peaks: dict[str, int] = {}
        for (model, _), limiter in limiters:
            peaks[model] = max(peaks.get(model, 0), limiter.peak)
        return peaks

    def _limiter(self, request: LMRequest) -> ModelLimiter:
        """The limiter of the request's model and endpoint, tightened by its settings."""
        limits = Limits.of(request.model, request.settings).tighter(
            Limits(max_concurrency=self.limit(request.model)))
        key = endpoint_of(request)
        limiter = self._limiters.get(key)
        if limiter is None:
            with self._limiters_lock:
                limiter = self._limiters.get(key)
                if limiter is None:
                    window = {} if self._window_s is None else {"window_s": self._window_s}
                    limiter = self._limiters[key] = ModelLimiter(limits, **window)
                    return limiter
        if limiter.limits.tighter(limits) != limiter.limits:
            limiter.tighten(limits)  # two LMs of one model: the stricter limits hold
        return limiter

    def _send_with_retries(self, request: LMRequest, call_id: str
                           ) -> tuple[LMResponse, int, int]:
        """(response, attempts, replies rejected on the way)."""
        limiter = self._limiter(request)
        estimate = estimate_tokens(request)
        max_retries = self._max_retries(request)
        rejected = 0
        waited_until = 0.0  # the end of a pause this call already sat out
        for attempt in range(max_retries + 1):
            try:
                slot = limiter.acquire(estimate, waited_until)  # held only while sending
                used = None
                try:
                    response = self.transport.send(request)
                    used = response.prompt_tokens + response.completion_tokens
                finally:
                    limiter.release(slot, used)
                check_reply(request, response)
                return response, attempt + 1, rejected
            except TransientLMError as exc:
                rejected += isinstance(exc, RejectedReply)
                if attempt == max_retries:
                    error = _give_up(request, call_id, attempt + 1, exc)
                    error.rejected = rejected  # type: ignore[attr-defined]
                    raise error from exc
                delay = self._backoff(attempt, exc)
                if isinstance(exc, RateLimited):
                    waited_until = limiter.pause(delay)  # every thread waits, not only this one
                log.info("LM call %s to %s failed (%s); retry %d/%d in %.2fs", call_id,
                         request.model, exc, attempt + 1, max_retries, delay)
                self._sleep(delay)
            except LMError as exc:
                exc.attempts = attempt + 1  # type: ignore[attr-defined]
                raise
            except Exception as exc:  # a transport bug must still fail only this example
                error = LMError(f"LM call to {request.model} failed: "
                                f"{type(exc).__name__}: {exc}")
                error.attempts = attempt + 1  # type: ignore[attr-defined]
                raise error from exc
        raise AssertionError("unreachable")

    def _max_retries(self, request: LMRequest) -> int:
        """An LM's own ``num_retries`` setting, else the client's."""
        value = request.settings.get("num_retries")
        if value is None:
            return self.max_retries
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LMError(f"num_retries of {request.model} must be a whole number >= 0, "
                          f"not {value!r}")
        return value

    def _backoff(self, attempt: int, exc: TransientLMError) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        delay *= 0.5 + 0.5 * self._rng.random()
        retry_after = getattr(exc, "retry_after", None)  # a server's Retry-After, if known
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = min(float(retry_after), RETRY_AFTER_MAX_S)
        return delay


class RejectedReply(TransientLMError):
    """A reply outside the grammar its request was sent with, or cut short."""


class LMUnavailable(LMError):
    """Not sent: the last calls to this model all failed (see ``LMClient``)."""


class Outage:
    """Consecutive failures per model; past a limit, calls fail at once."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._failures: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def check(self, model: str) -> None:
        if self.limit is None:
            return
        with self._lock:
            count, last = self._failures.get(model, (0, ""))
        if count >= self.limit:
            raise LMUnavailable(f"not sent: the last {count} calls to {model} failed "
                                f"(last error: {last})")

    def failed(self, model: str, exc: LMError) -> None:
        if isinstance(exc, LMUnavailable):
            return
        with self._lock:
            count, _ = self._failures.get(model, (0, ""))
            self._failures[model] = (count + 1, str(exc))

    def succeeded(self, model: str) -> None:
        with self._lock:
            self._failures.pop(model, None)


def check_reply(request: LMRequest, response: LMResponse) -> None:
    """``RejectedReply`` unless the reply keeps to the grammar the request was sent with.

    A reply cut off by ``max_tokens`` (``finish_reason == "length"``) may stop inside the
    grammar; any other reply must be complete. The embedded models apply the grammar in
    this process while sampling, so only replies that crossed a network are checked.
    """
    grammar = request.settings.get("grammar")
    if not isinstance(grammar, str) or not grammar or request.model.startswith("local/"):
        return
    from lmpc.runtime.gbnf import GrammarSyntaxError
    from lmpc.runtime.gbnf import check_reply as verdict_of

    try:
        verdict = verdict_of(grammar, response.text)
    except GrammarSyntaxError:
        return  # not a grammar lmpc can read: the server's own check is all there is
    if verdict == "complete" or (verdict == "prefix" and response.finish_reason == "length"):
        return
    what = "was cut short" if verdict == "prefix" else "breaks the grammar it was sent with"
    raise RejectedReply(f"{request.model}: the reply {what}: {response.text[:80]!r}")


def _give_up(request: LMRequest, call_id: str, attempts: int, exc: Exception) -> LMError:
    error = LMError(f"LM call {call_id} to {request.model} failed after {attempts} attempts: "
                    f"{exc}")
    error.attempts = attempts  # type: ignore[attr-defined]
    return error


def _validate(request: LMRequest) -> None:
    if not request.model:
        raise LMError("LM request has no model")
    if request.mode == "chat":
        if not request.messages:
            raise LMError(f"chat request to {request.model} has no messages")
    elif request.mode == "text":
        if request.prompt is None:
            raise LMError(f"text request to {request.model} has no prompt")
    else:
        raise LMError(f"LM request mode must be 'chat' or 'text', not {request.mode!r}")


# ------------------------------------------------------------------------- litellm


_LITELLM_LOCK = threading.Lock()
# Settings lmpc reads itself; never passed to litellm (LMClient does the retrying).
_OWN_SETTINGS = frozenset({"fallbacks", "model_type", "num_retries", *LIMIT_SETTINGS})


# Set before litellm is first imported. Without the first, its import fetches the model
# price table from GitHub and, offline, retries it for seconds; the second keeps every
# other download litellm starts on its own (tokenizers, provider header tables) off too.
# A user's own value of either wins.
LITELLM_OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


def _import_litellm() -> Any:
    """Import litellm once, offline (no fetch of its price table or anything else)."""
    with _LITELLM_LOCK:
        for name, value in LITELLM_OFFLINE_ENV.items():
            os.environ.setdefault(name, value)
        import litellm

        litellm.suppress_debug_info = True
        return litellm


def preload_litellm() -> None:
    """Import litellm now, in the background, for a process whose first LM call would
    otherwise wait seconds for the import (a build worker's first trial)."""
    threading.Thread(target=_import_litellm, daemon=True, name="lmpc-preload").start()


class LitellmTransport:
    """Sends requests through litellm: chat to ``completion``, text to ``text_completion``.

    ``{"env": NAME}`` settings are read from ``environ`` (default ``os.environ``) at call
    time; their values never reach a log, an error or the cache. ``settings["fallbacks"]``
    lists models tried in order when the primary fails: a model string (inheriting the
    sampling settings but not keys or endpoints) or ``{"model": ..., **settings}``.
    Models named ``local/...`` are the embedded models of ``lmpc.runtime.local_model``,
    called in this process without litellm. With a ``trust``, every target is checked
    first (``Trust.guard_request``): an ``env.NAME`` secret goes only to a default or
    allowed endpoint.
    """

    def __init__(self, environ: Mapping[str, str] | None = None,
                 trust: Trust | None = None) -> None:
        self._environ = environ
        self._trust = trust
        # models litellm found no price for: from their second call on they are given a
        # price of 0 (what lmpc counts for them anyway), which spares litellm searching
        # its whole price table again after every reply (~0.5 ms of CPU a call)
        self._unpriced: set[tuple[str, Any, Any]] = set()

    def send(self, request: LMRequest) -> LMResponse:
        settings = dict(request.settings)
        fallbacks = settings.pop("fallbacks", None) or []
        targets = [(request.model, settings)]
        targets += [_fallback_target(f, settings) for f in fallbacks]
        errors: list[LMError] = []
        for model, target_settings in targets:
            try:
                return self._send_one(request, model, target_settings)
            except LMError as exc:
                if len(targets) > 1:
                    log.warning("LM %s failed (%s)", model, exc)
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        summary = "; ".join(str(e) for e in errors)
        if any(isinstance(e, TransientLMError) for e in errors):
            raise TransientLMError(f"every model failed: {summary}")
        raise LMError(f"every model failed: {summary}")

    def _send_one(self, request: LMRequest, model: str, settings: dict[str, Any]) -> LMResponse:
        if self._trust is not None:
            try:
                settings = self._trust.guard_request(model, settings)
            except TrustError as exc:
                raise LMError(str(exc)) from None
        secrets = literal_secrets(settings)  # masked in errors like the env ones
        kwargs = self._kwargs(request, model, settings, secrets)  # fails fast, before import
        if model.startswith("local/"):
            return _send_local(request, model, kwargs)
        litellm = _import_litellm()
        pricing = (model, kwargs.get("custom_llm_provider"), kwargs.get("base_model"))
        if pricing in self._unpriced:
            kwargs = {**ZERO_PRICE, **kwargs}
        try:
            with _unlogged(litellm):
                raw = _call(litellm, request.mode, model, request, kwargs)
        except Exception as exc:
            raise _map_error(litellm, model, exc, secrets) from None
        if _priced_by_litellm(raw) is None:
            self._unpriced.add(pricing)
        return _to_response(litellm, model, raw, request.mode)

    def _kwargs(self, request: LMRequest, model: str, settings: Mapping[str, Any],
                secrets: list[str]) -> dict[str, Any]:
        environ = os.environ if self._environ is None else self._environ
        kwargs = {k: _resolve(k, v, environ, secrets) for k, v in settings.items()
                  if k not in _OWN_SETTINGS}
        if "seed" in kwargs and request.rollout:
            kwargs["seed"] = int(kwargs["seed"]) + request.rollout  # resamples must differ
        if model.startswith("local/"):
            kwargs.setdefault("seed", request.rollout)
        else:
            for name in ("lora_path", "lora_sha256"):  # the embedded models' adapter only
                kwargs.pop(name, None)
            kwargs.setdefault("max_retries", 0)  # no hidden SDK retries under ours
            if "grammar" in kwargs:  # a llama.cpp server reads it from the request body
                extra = dict(kwargs.get("extra_body") or {})
                kwargs["extra_body"] = {**extra, "grammar": kwargs.pop("grammar")}
        return kwargs


def _send_local(request: LMRequest, model: str, kwargs: dict[str, Any]) -> LMResponse:
    """An embedded-model call, in this process.

    It goes straight to the model: importing litellm alone takes seconds, and its
    per-call handling cost 2-4 ms of CPU. Only when litellm is already imported and
    someone listens to its callbacks (a user's tracing) does the call go through litellm's
    custom-provider hook, so their traces still see it.
    """
    from lmpc.runtime.local_model import adapter_of, load_local_model, render_messages, sampling

    # load (or fail clearly, e.g. a LoRA adapter whose hash differs) before any timeout
    local = load_local_model(model, *adapter_of(kwargs))
    litellm = sys.modules.get("litellm")
    if litellm is not None and _listening(litellm):
        from lmpc.runtime.local_model import register_local_provider

        register_local_provider(litellm)
        try:  # as a chat call: text_completion would wrap a second logging layer around it
            raw = _call(litellm, "chat", model, request, kwargs)
        except Exception as exc:
            raise _map_error(litellm, model, exc, []) from None
        return _to_response(litellm, model, raw, "chat")
    try:
        generation = local.generate(render_messages(_messages(request)), **sampling(kwargs))
    except LMError as exc:
        raise type(exc)(f"{model}: {exc}") from None
    return LMResponse(text=generation.text, prompt_tokens=generation.prompt_tokens,
                      completion_tokens=generation.completion_tokens, cost_usd=0.0,
                      finish_reason=generation.finish_reason or "stop")


def _listening(litellm: Any) -> bool:
    """Whether a callback is registered with litellm (someone traces its calls)."""
    names = ("callbacks", "success_callback", "_async_success_callback", "input_callback",
             "failure_callback")
    return any(getattr(litellm, name, None) for name in names)


def _unlogged(litellm: Any) -> AbstractContextManager[Any]:
    """Skip litellm's success logging of one call when nobody listens to it.

    After every call litellm builds a standard logging payload and runs its callbacks on
    a background thread: with no callback registered that is CPU spent for nothing, and
    with many calls in flight it is what bounds them (one GIL). Its internal-sub-call
    flag skips it for the calls made inside this context only (a context variable, no
    global state); the reply's cost is still computed. A registered callback keeps
    logging on, so a user's tracing sees every call.
    """
    if _listening(litellm):
        return nullcontext()
    try:
        from litellm._internal_context import internal_sub_call
    except ImportError:  # another litellm version: log as usual
        return nullcontext()
    return internal_sub_call()


def _call(litellm: Any, shape: str, model: str, request: LMRequest,
          kwargs: dict[str, Any]) -> Any:
    if shape == "text":
        return litellm.text_completion(model=model, prompt=request.prompt, **kwargs)
    return litellm.completion(model=model, messages=_messages(request), **kwargs)


def _messages(request: LMRequest) -> list[dict[str, Any]]:
    if request.mode == "text":
        return [{"role": "user", "content": request.prompt or ""}]
    return [dict(m) for m in request.messages or ()]


def _fallback_target(fallback: Any, primary: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    inherited = {k: v for k, v in primary.items() if k not in EXCLUDED_SETTINGS}
    name = fallback if isinstance(fallback, str) else (
        fallback.get("model") if isinstance(fallback, Mapping) else None)
    if not (isinstance(name, str) and name.startswith("local/")):
        inherited.pop("grammar", None)  # only llama.cpp takes one; a hosted API rejects it
    if isinstance(fallback, str):
        return fallback, inherited
    if isinstance(fallback, Mapping) and isinstance(fallback.get("model"), str):
        own = {k: v for k, v in fallback.items() if k != "model"}
        return fallback["model"], {**inherited, **own}
    raise LMError(f"a fallback must be a model string or {{'model': ...}}, not {fallback!r}")


def resolve_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    """``settings`` with every ``{"env": NAME}`` replaced by its value, and the secret
    values (to mask in errors); for callers of litellm other than completion calls."""
    secrets: list[str] = []
    env = os.environ if environ is None else environ
    resolved = {k: _resolve(k, v, env, secrets) for k, v in settings.items()}
    return resolved, secrets + literal_secrets(settings)


def map_litellm_error(model: str, exc: Exception, secrets: list[str]) -> LMError:
    """A litellm exception as lmpc's (transient, rate-limited or not), secrets masked."""
    return _map_error(_import_litellm(), model, exc, secrets)


def import_litellm() -> Any:
    """litellm, imported once and offline-friendly."""
    return _import_litellm()


def _resolve(name: str, value: Any, environ: Mapping[str, str], secrets: list[str]) -> Any:
    """Replace ``{"env": NAME}`` by the variable's value (remembered, to scrub errors)."""
    if is_secret_ref(value):
        var = value["env"]
        secret = environ.get(var)
        if not secret:
            raise LMError(f"setting {name!r} needs the environment variable {var}, "
                          "which is not set")
        secrets.append(secret)
        return secret
    if isinstance(value, Mapping):
        return {k: _resolve(f"{name}.{k}", v, environ, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(name, v, environ, secrets) for v in value]
    return value


_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


def _map_error(litellm: Any, model: str, exc: Exception, secrets: list[str]) -> LMError:
    """litellm's exception classes → ours; the message is scrubbed of secret values."""
    message = mask(f"{model}: {type(exc).__name__}: {exc}", secrets)
    if len(message) > 1000:
        message = message[:1000] + "..."
    transient_types = (
        litellm.Timeout, litellm.RateLimitError, litellm.APIConnectionError,
        litellm.ServiceUnavailableError, litellm.InternalServerError, litellm.BadGatewayError,
        TimeoutError, ConnectionError,
    )
    status = getattr(exc, "status_code", None)
    transient = isinstance(exc, transient_types) or (
        isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500))
    if isinstance(exc, litellm.APIError) and status == 200:
        transient = True  # a success status with a body that is not whole: cut in transit
    if isinstance(exc, litellm.BadRequestError | litellm.AuthenticationError |
                  litellm.NotFoundError | litellm.PermissionDeniedError):
        transient = False
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ContextWindowError(message)
    retry_after = _retry_after(exc)
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return RateLimited(message, retry_after)
    error = TransientLMError(message) if transient else LMError(message)
    if retry_after is not None:
        error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


def _retry_after(exc: Exception) -> float | None:
    """A reply's ``Retry-After`` in seconds: a number, or an HTTP date."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers",
                                                             None)
    value = headers.get("retry-after") if headers is not None else None
    return retry_after_seconds(value) if value is not None else None


def retry_after_seconds(value: Any, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (None when it is neither form).

    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0)
    20.0
    """
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _to_response(litellm: Any, model: str, raw: Any, mode: str) -> LMResponse:
    try:
        choice = raw.choices[0]
        text = choice.text if mode == "text" else choice.message.content
    except (AttributeError, IndexError, TypeError) as exc:
        raise LMError(f"{model}: unexpected response shape ({exc})") from None
    usage = getattr(raw, "usage", None)
    return LMResponse(
        text=text or "",
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=_cost(litellm, model, raw),
        finish_reason=getattr(choice, "finish_reason", None),
    )


# litellm's own custom-price parameters: read by litellm, never sent to the model
ZERO_PRICE = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}


def _priced_by_litellm(raw: Any) -> float | bool | None:
    """The price litellm put on a reply; None when it knows no price for the model,
    False when it did not try (another litellm version, a reply of another shape)."""
    hidden = getattr(raw, "_hidden_params", None) or {}
    if "response_cost" not in hidden:
        return False
    known = hidden["response_cost"]
    return float(known) if isinstance(known, int | float) and known is not True else None


def _cost(litellm: Any, model: str, raw: Any) -> float:
    if model.startswith("local/"):
        return 0.0
    known = _priced_by_litellm(raw)
    if known is not False:  # litellm priced this reply already: again would cost ~1 ms
        return known or 0.0  # None: litellm knows no price for it (count 0)
    try:
        return float(litellm.completion_cost(completion_response=raw) or 0.0)
    except Exception:  # unknown price (e.g. a local server): cost is unknown, count 0
        return 0.0
