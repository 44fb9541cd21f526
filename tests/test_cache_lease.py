"""In-flight leases: concurrent clients on one cache pay for each request once.

Every test runs on both backends that lease, through the one interface: the SQLite file
and a real PostgreSQL server on 127.0.0.1 (``conftest.py``: a fresh database per test).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.runtime.cache_url import open_cache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMError, LMRequest
from lmpc.runtime.scripted import ScriptedTransport


@dataclass(frozen=True)
class Backend:
    """One cache backend: the URL ``open_cache`` (and a child process) opens, and the
    environment a build process shares it through."""

    name: str
    url: str
    folder: Path

    def open(self) -> Any:
        return open_cache(self.url)

    def build_env(self, number: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "LMPC_CACHE_URL"}
        env["LMPC_TRUST_FILE"] = "/nonexistent"
        if self.name == "sqlite":  # one file both builds find in their cache folder
            return {**env, "LMPC_CACHE_DIR": str(self.folder / "shared")}
        # as on two machines: each its own cache folder, the server shared
        return {**env, "LMPC_CACHE_URL": self.url,
                "LMPC_CACHE_DIR": str(self.folder / f"machine{number}")}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "shared" / "cache.sqlite"), tmp_path)
    return Backend("postgres", request.getfixturevalue("postgres_url"), tmp_path)


def _slow_transport(delay: float) -> ScriptedTransport:
    def fn(request: LMRequest) -> str:
        time.sleep(delay)
        return "reply to " + (request.prompt or "")

    return ScriptedTransport(fn=fn)


def test_a_lease_is_one_owners_until_released_or_expired(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    assert first.claim("k", "a", 300)
    assert first.claim("k", "a", 300)  # its own lease: still its own
    assert not second.claim("k", "b", 300)  # held by a live holder
    first.release("k", "a")
    assert second.claim("k", "b", 0.2)
    assert not first.claim("k", "a", 300)
    time.sleep(0.4)
    assert first.claim("k", "a", 300)  # b's lease ran out


def test_threads_asking_the_same_request_pay_once(backend: Backend) -> None:
    transport = _slow_transport(0.3)
    clients = [LMClient(transport, cache=backend.open()) for _ in range(6)]
    request = LMRequest("m", "text", prompt="same question")
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda c: c.complete(request).text, clients))
    assert replies == ["reply to same question"] * 6
    assert len(transport.requests) == 1
    assert sum(c.usage.snapshot()["cache_hits"] for c in clients) == 5


def test_a_failed_holder_lets_the_next_caller_try(backend: Backend) -> None:
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
    clients = [LMClient(transport, cache=backend.open()) for _ in range(2)]
    request = LMRequest("m", "text", prompt="q")

    def one(client: LMClient) -> str:
        try:
            return client.complete(request).text
        except LMError as exc:
            return f"error: {exc}"

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(one, clients))
    assert results == ["error: boom", "ok"] and calls["n"] == 2


def test_a_lease_of_a_killed_process_is_taken_over_at_once(backend: Backend) -> None:
    """No waiting out the lease time (300 s here): SQLite sees the holder's pid is gone,
    PostgreSQL its session end with its process, on whatever machine it ran."""
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from lmpc.runtime.cache_url import open_cache
cache = open_cache({backend.url!r})  # kept: its session holds a PostgreSQL lease
assert cache.claim("k", "holder", 300)
print("claimed", flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, env={**os.environ})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"claimed"
        cache = backend.open()
        assert not cache.claim("k", "me", 300)  # alive: its lease holds
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 5  # PostgreSQL notices the closed socket at once
        while not cache.claim("k", "me", 300):
            assert time.monotonic() < deadline, "the dead holder's lease was not taken over"
            time.sleep(0.05)
        client = LMClient(ScriptedTransport(default="fresh"), cache=cache)
        assert client.complete(LMRequest("m", "text", prompt="q")).text == "fresh"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_a_hung_holder_is_waited_for_a_bounded_time(backend: Backend) -> None:
    from lmpc.runtime.cache import request_key

    cache = backend.open()
    request = LMRequest("m", "text", prompt="q")
    assert cache.claim(request_key(request), "someone alive", 300)  # this process: alive
    client = LMClient(ScriptedTransport(default="paid"), cache=cache, lease_ttl_s=0.5)
    started = time.monotonic()
    assert client.complete(request).text == "paid"
    assert 0.4 < time.monotonic() - started < 5


def _build(source: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lmpc", "build", str(source), "-o", str(out),
                             "--quiet", "--json", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_two_builds_sharing_one_cache_pay_each_call_once(backend: Backend,
                                                         tmp_path: Path) -> None:
    """Two real builds started at once share one cache: the server sees each distinct
    request once (SQLite: about once, at most 1.1x), and the artifacts are the same
    bytes."""
    with fake_server(sentiment_reply, delay_s=0.1) as server:
        source = sentiment_source(tmp_path, server.url)
        builds = [_build(source, tmp_path / f"b{i}.json", backend.build_env(i)) for i in (1, 2)]
        results = [b.communicate(timeout=300) for b in builds]
        assert all(b.returncode == 0 for b in builds), [r[1].decode() for r in results]
        distinct = len({json.dumps(r.body, sort_keys=True) for r in server.requests})
        total = server.count
    paid = [json.loads(r[0])["lm_calls"] for r in results]
    assert sum(paid) == total and distinct == 24, (total, paid)  # 24: what one build asks
    if backend.name == "postgres":
        assert total == distinct, (total, paid)
        assert not (tmp_path / "machine1" / "cache.sqlite").exists()  # nothing on local disk
    else:
        warnings = [r[1].decode()[-800:] for r in results]  # a cache turned off says why
        assert total <= 1.1 * distinct, (total, distinct, paid, warnings)
    assert (tmp_path / "b1.json").read_bytes() == (tmp_path / "b2.json").read_bytes()
    assert len(backend.open()) == 24
