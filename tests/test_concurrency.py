"""Requests in flight follow what the user asked for: ``threads`` (CLI and optimize block)
reaches the LM layer as concurrent calls, bounded by an LM's ``max_concurrency``, its
``rpm``/``tpm`` and a 429's ``Retry-After``; the embedded model runs one call at a time.

A scripted transport that sleeps per call records how many calls it had in hand at
once (``peak_in_flight``) and when each arrived."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.cli import main
from lmpc.runtime.limits import Limits, ModelLimiter, estimate_tokens
from lmpc.runtime.lm import LitellmTransport, LMClient, RateLimited
from lmpc.runtime.lm_types import LMError, LMRequest
from lmpc.runtime.scripted import ScriptedTransport, render_request

DELAY_S = 0.25  # long enough that every thread is inside a call at once, even under load


def scripted(delay: float = DELAY_S) -> ScriptedTransport:
    return ScriptedTransport(fn=lambda r: sentiment_reply({"prompt": render_request(r)}),
                             delay=delay)


def invoke(args: list[str], transport: Any) -> Any:
    return CliRunner().invoke(main, args, obj={"transport": transport},
                              env={"LMPC_TRUST_FILE": "/nonexistent"})


def text(prompt: str, model: str = "m", **settings: Any) -> LMRequest:
    return LMRequest(model, "text", prompt=prompt, settings=settings)


@pytest.mark.parametrize("threads", [1, 4, 16])
def test_eval_threads_are_requests_in_flight(tmp_path: Path, threads: int) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    transport = scripted(DELAY_S if threads > 1 else 0.02)
    result = invoke(["eval", str(source), "--data", str(tmp_path / "reviews.jsonl"),
                     "--threads", str(threads), "--no-cache", "--json"], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["score"] == 1.0
    assert len(transport.requests) == 20
    assert transport.peak_in_flight == threads


def test_max_concurrency_of_the_lm_bounds_the_threads(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1", extra=", max_concurrency: 3")
    transport = scripted(0.1)
    result = invoke(["eval", str(source), "--data", str(tmp_path / "reviews.jsonl"),
                     "--threads", "16", "--no-cache"], transport)
    assert result.exit_code == 0, result.output
    assert transport.peak_in_flight == 3


def test_threads_of_the_optimize_block_reach_the_lm(tmp_path: Path) -> None:
    # 20 rows: train 8, val 6, test 6; the evaluations run 5 rows at once
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1",
                              passes="threads: 5\n  labeled_fewshot(k = 3)")
    transport = scripted(0.2)
    result = invoke(["build", str(source), "-o", str(tmp_path / "out.json"), "--no-cache",
                     "--quiet"], transport)
    assert result.exit_code == 0, result.output
    assert transport.peak_in_flight == 5


def test_the_embedded_model_runs_one_call_at_a_time() -> None:
    transport = ScriptedTransport(default=" positive", delay=0.05)
    client = LMClient(transport)
    requests = [text(f"review {i}", model="local/gemma-3-270m", max_concurrency=8)
                for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(client.complete, requests))
    assert transport.peak_in_flight == 1
    assert client.limit("local/gemma-3-270m") == 1 and client.limit("openai/x") is None


def test_a_build_on_the_embedded_model_says_it_runs_serially(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    result = invoke(["build", str(source), "-o", str(tmp_path / "out.json"), "--no-cache",
                     "--lm", "local/gemma-3-270m"], ScriptedTransport(default=" positive"))
    assert result.exit_code == 0, result.output
    assert "note: local/gemma-3-270m runs one call at a time: threads: 4" in result.stderr


def test_hosted_models_get_as_many_calls_as_threads_by_default() -> None:
    transport = ScriptedTransport(default="x", delay=DELAY_S)
    client = LMClient(transport)
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda i: client.complete(text(f"q{i}")), range(24)))
    assert transport.peak_in_flight == 24
    assert client.peak_in_flight() == {"m": 24}


def test_two_lms_of_one_model_share_the_stricter_limit() -> None:
    transport = ScriptedTransport(default="x", delay=0.05)
    client = LMClient(transport)
    requests = [text(f"q{i}", max_concurrency=2 if i % 2 else 6) for i in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(client.complete, requests))
    assert transport.peak_in_flight <= 6
    later = [text(f"r{i}", max_concurrency=6) for i in range(8)]
    transport.peak_in_flight = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(client.complete, later))
    assert transport.peak_in_flight == 2  # once a stricter limit was seen it holds


def _most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times))


def test_rpm_bounds_requests_started_in_any_window() -> None:
    window = 0.4
    transport = ScriptedTransport(default="x")
    client = LMClient(transport, limit_window_s=window)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.complete(text(f"q{i}", rpm=3)), range(9)))
    assert _most_in_any_window(transport.started, window * 0.99) <= 3
    assert time.monotonic() - started >= 2 * window  # three windows' worth


def test_tpm_counts_the_estimate_then_the_real_usage() -> None:
    window = 0.4
    # each request is counted 10 (40 prompt characters) + 10 (max_tokens) = 20 tokens
    # before its reply, then what it really used: 9 prompt words + 1 reply word = 10
    prompt = "word " * 8
    request = text(prompt, max_tokens=10, tpm=45)
    assert estimate_tokens(request) == 20
    transport = ScriptedTransport(default="x")
    client = LMClient(transport, limit_window_s=window)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: client.complete(text(prompt + str(i), max_tokens=10, tpm=45)),
                      range(6)))
    # 45 tokens a window: two estimates of 20 fit; once they are answered they count 10
    # each, so a third fits (10 + 10 + 20), a fourth (30 + 20) waits for the window.
    # Without the real usage replacing the estimate it would be two.
    assert _most_in_any_window(transport.started, window * 0.99) == 3


def test_a_request_larger_than_the_whole_token_budget_still_goes_alone() -> None:
    limiter = ModelLimiter(Limits(tpm=10), window_s=30)
    slot = limiter.acquire(500)  # an empty window: admitted at once
    assert limiter.wait_s(1) > 0
    limiter.release(slot, 500)


def test_a_429_pauses_every_thread_for_its_retry_after() -> None:
    pause = 0.5
    refused = threading.Event()

    def reply(request: LMRequest) -> Any:
        if request.prompt == "first" and not refused.is_set():
            refused.set()
            return RateLimited("429 too many requests", retry_after=pause)
        return "ok"

    transport = ScriptedTransport(fn=reply)
    client = LMClient(transport, backoff_base=0.01)
    first = threading.Thread(target=client.complete, args=(text("first"),))
    first.start()
    assert refused.wait(10)
    time.sleep(0.05)
    assert client.complete(text("second")).text == "ok"  # waits out the other's pause
    first.join(10)
    t_429, t_second = transport.started[0], transport.started[1]
    assert [r.prompt for r in transport.requests] == ["first", "second", "first"] or \
        [r.prompt for r in transport.requests] == ["first", "first", "second"]
    assert t_second - t_429 >= pause * 0.9
    assert client.usage.snapshot()["retries"] == 1


def test_retry_after_longer_than_the_backoff_cap_is_honoured() -> None:
    slept: list[float] = []
    transport = ScriptedTransport(replies=[RateLimited("429", retry_after=30.0), "ok"])
    client = LMClient(transport, sleep=slept.append, backoff_max=8.0)
    assert client.complete(text("x")).text == "ok"  # the caller sat out the pause itself
    assert slept == [30.0]


def test_limits_must_be_counts() -> None:
    client = LMClient(ScriptedTransport(default="x"), max_retries=0)
    with pytest.raises(LMError, match="rpm of m must be a whole number >= 1"):
        client.complete(text("x", rpm=0))


def test_a_server_429_with_retry_after_is_rate_limited() -> None:
    calls = {"n": 0}

    def fault(body: dict[str, Any]) -> str | None:
        calls["n"] += 1
        return "status:429:3" if calls["n"] == 1 else None

    with fake_server(sentiment_reply, fault=fault) as server:
        transport = LitellmTransport()
        request = LMRequest("hosted_vllm/fake", "text", prompt="The movie was great.",
                            settings={"api_base": server.url, "max_tokens": 4})
        with pytest.raises(RateLimited) as caught:
            transport.send(request)
        assert caught.value.retry_after == 3.0
        slept: list[float] = []
        client = LMClient(transport, sleep=slept.append)
        calls["n"] = 0
        assert client.complete(request).text.strip() == "positive"
        assert slept == [3.0]


@pytest.mark.parametrize("setting", ["max_concurrency: 0", "rpm: 2.5", "tpm: true"])
def test_a_limit_that_is_not_a_count_is_e1307_at_its_value(tmp_path: Path, setting: str) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1", extra=f", {setting}")
    result = CliRunner().invoke(main, ["check", str(source)])
    assert result.exit_code == 1
    name, value = setting.split(": ")
    column = source.read_text().splitlines()[1].rindex(value) + 1
    assert f"classify.lmp:2:{column}: error[E1307]: {name} must be a whole number >= 1" \
        in result.stderr


class _PricedReply:
    def __init__(self, hidden: dict[str, object]) -> None:
        self._hidden_params = hidden


class _NoPricing:
    callbacks: list[object] = []

    def completion_cost(self, **_: object) -> float:
        raise AssertionError("priced twice")


def test_a_reply_litellm_priced_is_not_priced_again() -> None:
    from lmpc.runtime.lm import _cost

    assert _cost(_NoPricing(), "openai/x", _PricedReply({"response_cost": 0.25})) == 0.25
    # None: litellm knows no price for the model (a local server): counted as 0
    assert _cost(_NoPricing(), "openai/x", _PricedReply({"response_cost": None})) == 0.0


def test_litellm_logging_is_skipped_only_when_nobody_listens(monkeypatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # if first to import it
    import litellm
    from litellm._internal_context import is_internal_call

    def is_internal_sub_call() -> bool:
        return is_internal_call.get()

    from lmpc.runtime.lm import _unlogged

    quiet = _NoPricing()
    with _unlogged(quiet):
        assert is_internal_sub_call()
    assert not is_internal_sub_call()  # the flag is scoped to the call
    traced = _NoPricing()
    traced.callbacks = [object()]  # a user's tracing callback
    with _unlogged(traced):
        assert not is_internal_sub_call()
    assert litellm is not None
