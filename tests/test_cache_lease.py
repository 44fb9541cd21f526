"""In-flight leases: concurrent clients on one cache pay for each request once.

Threads of one process, two real ``lmpc build`` processes against a real server on
loopback, and a lease holder that dies (kill -9) or hangs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMRequest
from lmpc.runtime.scripted import ScriptedTransport


def _slow_transport(delay: float) -> ScriptedTransport:
    def fn(request: LMRequest) -> str:
        time.sleep(delay)
        return "reply to " + (request.prompt or "")

    return ScriptedTransport(fn=fn)


def test_threads_asking_the_same_request_pay_once(tmp_path: Path) -> None:
    transport = _slow_transport(0.3)
    clients = [LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite")) for _ in range(6)]
    request = LMRequest("m", "text", prompt="same question")
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda c: c.complete(request).text, clients))
    assert replies == ["reply to same question"] * 6
    assert len(transport.requests) == 1
    assert sum(c.usage.snapshot()["cache_hits"] for c in clients) == 5


def test_a_failed_holder_lets_the_next_caller_try(tmp_path: Path) -> None:
    from lmpc.runtime.lm_types import LMError

    calls = {"n": 0}
    lock = threading.Lock()

    def fn(request: LMRequest) -> str:
        with lock:
            calls["n"] += 1
            first = calls["n"] == 1
        time.sleep(0.2)
        if first:
            raise LMError("boom")
        return "ok"

    transport = ScriptedTransport(fn=fn)
    clients = [LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite")) for _ in range(2)]
    request = LMRequest("m", "text", prompt="q")

    def one(client: LMClient) -> str:
        try:
            return client.complete(request).text
        except LMError as exc:
            return f"error: {exc}"

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(one, clients))
    assert results == ["error: boom", "ok"] and calls["n"] == 2


def test_a_lease_of_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    cache_file = tmp_path / "c.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from lmpc.runtime.cache import SQLiteCache
assert SQLiteCache({str(cache_file)!r}).claim("k", "holder", 300)
print("claimed", flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, env={**os.environ})
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"claimed"
    cache = SQLiteCache(cache_file)
    assert not cache.claim("k", "me", 300)  # alive: its lease holds
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    started = time.monotonic()
    client = LMClient(ScriptedTransport(default="fresh"), cache=cache)
    assert client.complete(LMRequest("m", "text", prompt="q")).text == "fresh"
    assert cache.claim("k", "me", 300)  # the dead holder's lease is taken over
    assert time.monotonic() - started < 5


def test_a_hung_holder_is_waited_for_a_bounded_time(tmp_path: Path) -> None:
    from lmpc.runtime.cache import request_key

    cache = SQLiteCache(tmp_path / "c.sqlite")
    request = LMRequest("m", "text", prompt="q")
    assert cache.claim(request_key(request), "someone alive", 300)  # this process: alive
    client = LMClient(ScriptedTransport(default="paid"), cache=cache, lease_ttl_s=0.5)
    started = time.monotonic()
    assert client.complete(request).text == "paid"
    assert 0.4 < time.monotonic() - started < 5


def _build(source: Path, out: Path, cache: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LMPC_CACHE_DIR": str(cache), "LMPC_TRUST_FILE": "/nonexistent"}
    return subprocess.Popen([sys.executable, "-m", "lmpc", "build", str(source), "-o", str(out),
                             "--quiet", "--json", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_two_builds_sharing_one_cache_pay_each_call_once(tmp_path: Path) -> None:
    """Two real builds at once on one cache: the server sees each distinct request about
    once (at most 1.1x), and the two artifacts are the same bytes."""
    with fake_server(sentiment_reply, delay_s=0.1) as server:
        source = sentiment_source(tmp_path, server.url)
        builds = [_build(source, tmp_path / f"b{i}.json", tmp_path / "shared") for i in (1, 2)]
        results = [b.communicate(timeout=300) for b in builds]
        assert all(b.returncode == 0 for b in builds), [r[1].decode() for r in results]
        distinct = len({json.dumps(r.body, sort_keys=True) for r in server.requests})
        total = server.count
    paid = [json.loads(r[0])["lm_calls"] for r in results]
    assert sum(paid) == total and distinct == 24  # 24: what one build of it asks
    assert total <= 1.1 * distinct, (total, distinct, paid)
    assert (tmp_path / "b1.json").read_bytes() == (tmp_path / "b2.json").read_bytes()
