"""LMClient: retries with backoff, concurrency limit, cache hits, usage attribution."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMError, LMRequest, LMResponse, TransientLMError
from lmpc.runtime.scripted import ScriptedTransport


def text(prompt: str, model: str = "m", rollout: int = 0, **settings: object) -> LMRequest:
    return LMRequest(model, "text", prompt=prompt, settings=dict(settings), rollout=rollout)


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_retries_transient_errors_then_succeeds() -> None:
    transport = ScriptedTransport(
        replies=[TransientLMError("rate limited"), TransientLMError("timeout"), "ok"])
    sleep = SleepRecorder()
    client = LMClient(transport, max_retries=3, backoff_base=0.5, backoff_max=8.0, sleep=sleep)

    response = client.complete(text("hello there"))

    assert response.text == "ok"
    assert len(transport.requests) == 3
    assert len(sleep.delays) == 2
    # exponential with jitter in [0.5, 1]: attempt 0 → [0.25, 0.5], attempt 1 → [0.5, 1.0]
    assert 0.25 <= sleep.delays[0] <= 0.5
    assert 0.5 <= sleep.delays[1] <= 1.0
    snapshot = client.usage.snapshot()
    assert snapshot["calls"] == 1 and snapshot["retries"] == 2 and snapshot["failures"] == 0


def test_backoff_is_capped() -> None:
    transport = ScriptedTransport(replies=[TransientLMError("503")] * 6 + ["ok"])
    sleep = SleepRecorder()
    client = LMClient(transport, max_retries=6, backoff_base=1.0, backoff_max=2.0, sleep=sleep)
    assert client.complete(text("x")).text == "ok"
    assert max(sleep.delays) <= 2.0
    assert sleep.delays[-1] >= 1.0


def test_gives_up_after_max_retries() -> None:
    transport = ScriptedTransport(replies=[TransientLMError("timeout")] * 10)
    sleep = SleepRecorder()
    client = LMClient(transport, max_retries=2, sleep=sleep)

    with pytest.raises(LMError, match="after 3 attempts") as info:
        client.complete(text("x"), attribution={"module": "M"})

    assert not isinstance(info.value, TransientLMError)
    assert len(transport.requests) == 3 and len(sleep.delays) == 2
    snapshot = client.usage.snapshot()
    assert snapshot["failures"] == 1 and snapshot["calls"] == 0
    assert client.usage.by("module")["M"]["failures"] == 1


def test_lm_num_retries_setting_overrides_the_client() -> None:
    transport = ScriptedTransport(replies=[TransientLMError("timeout")] * 10)
    client = LMClient(transport, max_retries=5, sleep=lambda s: None)
    with pytest.raises(LMError, match="after 2 attempts"):
        client.complete(text("x", num_retries=1))
    with pytest.raises(LMError, match="num_retries"):
        client.complete(text("y", num_retries="many"))
    assert len(transport.requests) == 2


def test_permanent_error_is_not_retried() -> None:
    transport = ScriptedTransport(replies=[LMError("bad request: unknown model"), "never"])
    sleep = SleepRecorder()
    client = LMClient(transport, sleep=sleep)
    with pytest.raises(LMError, match="unknown model"):
        client.complete(text("x"))
    assert len(transport.requests) == 1 and sleep.delays == []


def test_transport_bug_becomes_lm_error() -> None:
    def broken(request: LMRequest) -> str:
        raise KeyError("oops")

    client = LMClient(ScriptedTransport(fn=broken))
    with pytest.raises(LMError, match="KeyError"):
        client.complete(text("x"))
    assert client.usage.snapshot()["failures"] == 1


@pytest.mark.parametrize(
    "request_",
    [
        LMRequest("m", "chat"),
        LMRequest("m", "text"),
        LMRequest("", "text", prompt="x"),
        LMRequest("m", "json", prompt="x"),  # type: ignore[arg-type]
    ],
)
def test_malformed_request_is_a_clear_error(request_: LMRequest) -> None:
    transport = ScriptedTransport(default="x")
    with pytest.raises(LMError):
        LMClient(transport).complete(request_)
    assert transport.requests == []


def test_cache_hit_is_free_and_marked(tmp_path) -> None:
    transport = ScriptedTransport(default="four")
    client = LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite"))

    first = client.complete(text("two plus two is"))
    second = client.complete(text("two plus two is"))

    assert (first.cached, second.cached) == (False, True)
    assert second.text == "four" and second.call_id == first.call_id
    assert second.prompt_tokens == second.completion_tokens == 0 and second.cost_usd == 0
    assert len(transport.requests) == 1
    snapshot = client.usage.snapshot()
    assert snapshot["calls"] == 1 and snapshot["cache_hits"] == 1
    assert snapshot["prompt_tokens"] == 4  # only the first call's (scripted word count)


def test_rollout_is_not_served_from_cache(tmp_path) -> None:
    transport = ScriptedTransport(replies=["a", "b"])
    client = LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite"))
    one = client.complete(text("pick", rollout=0))
    two = client.complete(text("pick", rollout=1))
    assert (one.text, two.text) == ("a", "b")
    assert one.call_id != two.call_id
    assert client.complete(text("pick", rollout=1)).cached


def test_failures_are_not_cached(tmp_path) -> None:
    transport = ScriptedTransport(replies=[LMError("nope"), "fine"])
    client = LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite"))
    with pytest.raises(LMError):
        client.complete(text("q"))
    assert client.complete(text("q")).text == "fine"


def test_call_id_is_deterministic_across_clients() -> None:
    a = LMClient(ScriptedTransport(default="x")).complete(text("same", temperature=0.0))
    b = LMClient(ScriptedTransport(default="y")).complete(text("same", temperature=0.0))
    c = LMClient(ScriptedTransport(default="x")).complete(text("same", temperature=0.5))
    assert a.call_id == b.call_id != c.call_id


def test_usage_is_attributed() -> None:
    client = LMClient(ScriptedTransport(default="one two three"))
    client.complete(text("a b", model="m1"), attribution={"pass": "bootstrap", "module": "A"})
    client.complete(text("c d e", model="m1"), attribution={"pass": "bootstrap", "module": "B"})
    client.complete(text("f", model="m2"), attribution={"pass": "mipro", "module": "A"})

    by_pass = client.usage.by("pass")
    assert by_pass["bootstrap"]["calls"] == 2 and by_pass["bootstrap"]["prompt_tokens"] == 5
    assert by_pass["mipro"]["completion_tokens"] == 3
    assert client.usage.by("module")["A"]["calls"] == 2
    records = client.usage.records
    assert [r.model for r in records] == ["m1", "m1", "m2"]
    assert records[0].attribution == {"pass": "bootstrap", "module": "A"}
    assert all(r.call_id and not r.cached for r in records)


def test_concurrency_limit_is_honoured_per_model() -> None:
    lock = threading.Lock()
    in_flight: dict[str, int] = {"slow": 0, "fast": 0}
    peak: dict[str, int] = {"slow": 0, "fast": 0}

    def slow(request: LMRequest) -> str:
        with lock:
            in_flight[request.model] += 1
            peak[request.model] = max(peak[request.model], in_flight[request.model])
        time.sleep(0.02)
        with lock:
            in_flight[request.model] -= 1
        return "done"

    client = LMClient(ScriptedTransport(fn=slow), concurrency={"slow": 2}, default_concurrency=5)
    requests = [text(f"q{i}", model="slow" if i % 2 else "fast") for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(client.complete, requests))

    assert all(r.text == "done" for r in results)
    assert peak["slow"] == 2
    assert 2 < peak["fast"] <= 5
    assert client.limit("slow") == 2 and client.limit("other") == 5


def test_usage_snapshot_is_consistent_under_threads() -> None:
    client = LMClient(ScriptedTransport(default="w"), default_concurrency=8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.complete(text(f"p {i}")), range(200)))
    snapshot = client.usage.snapshot()
    assert snapshot["calls"] == 200 and snapshot["prompt_tokens"] == 400
    assert len(client.usage) == 200


def test_scripted_lmresponse_reply_is_passed_through() -> None:
    reply = LMResponse("hi", prompt_tokens=7, completion_tokens=1, cost_usd=0.25)
    client = LMClient(ScriptedTransport(replies=[reply]))
    response = client.complete(text("x"))
    assert response.prompt_tokens == 7 and client.usage.snapshot()["cost_usd"] == 0.25
