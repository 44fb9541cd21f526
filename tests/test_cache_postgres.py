"""The cache a team shares: PostgreSQL behind the same interface as the SQLite file.

Every test runs against a real PostgreSQL server on 127.0.0.1 (``conftest.py`` starts
one per session, a fresh database per test); two real ``lmpc build`` processes share it
through ``LMPC_CACHE_URL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.runtime.cache import CacheError, LeasingCache, SQLiteCache
from lmpc.runtime.cache_postgres import PostgresCache
from lmpc.runtime.cache_url import open_cache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMRequest, LMResponse
from lmpc.runtime.scripted import ScriptedTransport


def test_roundtrip_persists_across_connections(postgres_url: str) -> None:
    cache = open_cache(postgres_url)
    assert isinstance(cache, PostgresCache) and isinstance(cache, LeasingCache)
    cache.put("k", "m", LMResponse("hello", prompt_tokens=3, completion_tokens=1,
                                   finish_reason="stop"))
    cache.close()
    other = PostgresCache(postgres_url, memory_items=0)  # nothing from memory
    hit = other.get("k")
    assert hit is not None and (hit.text, hit.prompt_tokens, hit.completion_tokens,
                                hit.finish_reason) == ("hello", 3, 1, "stop")
    assert other.get("missing") is None and len(other) == 1
    other.put("k", "m", LMResponse("again"))  # a second put replaces, never fails
    assert PostgresCache(postgres_url, memory_items=0).get("k").text == "again"


def test_a_lease_is_one_owners_until_released_or_expired(postgres_url: str) -> None:
    first, second = PostgresCache(postgres_url), PostgresCache(postgres_url)
    assert first.claim("k", "a", 300)
    assert first.claim("k", "a", 300)  # its own lease: still its own
    assert not second.claim("k", "b", 300)  # held by a live session
    first.release("k", "a")
    assert second.claim("k", "b", 0.2)
    assert not first.claim("k", "a", 300)
    time.sleep(0.4)
    assert first.claim("k", "a", 300)  # b's lease ran out


def test_threads_asking_the_same_request_pay_once(postgres_url: str) -> None:
    def slow(request: LMRequest) -> str:
        time.sleep(0.3)
        return "reply to " + (request.prompt or "")

    transport = ScriptedTransport(fn=slow)
    clients = [LMClient(transport, cache=PostgresCache(postgres_url)) for _ in range(6)]
    request = LMRequest("m", "text", prompt="same question")
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda c: c.complete(request).text, clients))
    assert replies == ["reply to same question"] * 6
    assert len(transport.requests) == 1
    assert sum(c.usage.snapshot()["cache_hits"] for c in clients) == 5


def test_a_lease_of_a_killed_process_is_taken_over_at_once(postgres_url: str) -> None:
    """The holder's session ends with its process, on whatever machine it ran: no
    waiting out the lease time (300 s here)."""
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from lmpc.runtime.cache_postgres import PostgresCache
from lmpc.runtime.cache_url import open_cache
cache = PostgresCache({postgres_url!r})  # kept: its session holds the lease
assert cache.claim("k", "holder", 300)
print("claimed", flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, env={**os.environ})
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"claimed"
    cache = PostgresCache(postgres_url)
    assert not cache.claim("k", "me", 300)  # alive: its lease holds
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5  # the server notices the closed socket at once
    while not cache.claim("k", "me", 300):
        assert time.monotonic() < deadline, "the dead holder's lease was not taken over"
        time.sleep(0.05)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(CacheError) as err:
        open_cache("postgresql://team:s3cret@127.0.0.1:1/lmpc")
    assert "cannot open the LM cache" in str(err.value) and "s3cret" not in str(err.value)
    assert "team:***@127.0.0.1:1" in str(err.value)


def test_a_server_that_goes_away_degrades_to_no_cache(postgres_url: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    cache = PostgresCache(postgres_url, memory_items=0)
    cache.put("k", "m", LMResponse("x"))
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # cut every session
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'lmpc-cache'")
    assert cache.get("k") is None and not cache.enabled
    assert cache.claim("k", "me", 1) is True  # no cache: nothing to wait for
    assert "continuing without a cache" in caplog.text


def _build(source: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lmpc", "build", str(source), "-o", str(out),
                             "--quiet", "--json", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_two_builds_on_a_shared_cache_pay_each_distinct_request_once(
        postgres_url: str, tmp_path: Path) -> None:
    """Two real builds started at once, each with its own cache folder (as on two
    machines), share the PostgreSQL cache: the server sees every distinct request
    exactly once, and the artifacts are the same bytes."""
    with fake_server(sentiment_reply, delay_s=0.1) as server:
        source = sentiment_source(tmp_path, server.url)
        builds = [_build(source, tmp_path / f"b{i}.json",
                         {**os.environ, "LMPC_CACHE_URL": postgres_url,
                          "LMPC_CACHE_DIR": str(tmp_path / f"machine{i}"),
                          "LMPC_TRUST_FILE": "/nonexistent"}) for i in (1, 2)]
        results = [b.communicate(timeout=300) for b in builds]
        assert all(b.returncode == 0 for b in builds), [r[1].decode() for r in results]
        distinct = len({json.dumps(r.body, sort_keys=True) for r in server.requests})
        total = server.count
    paid = [json.loads(r[0])["lm_calls"] for r in results]
    assert distinct == 24 and total == distinct and sum(paid) == total, (total, paid)
    assert (tmp_path / "b1.json").read_bytes() == (tmp_path / "b2.json").read_bytes()
    assert len(PostgresCache(postgres_url)) == 24
    assert not (tmp_path / "machine1" / "cache.sqlite").exists()  # nothing on local disk


def test_without_a_url_the_sqlite_file_is_the_cache_and_no_server_is_needed(
        tmp_path: Path) -> None:
    with fake_server(sentiment_reply) as server:
        source = sentiment_source(tmp_path, server.url)
        env = {k: v for k, v in os.environ.items() if k != "LMPC_CACHE_URL"}
        build = _build(source, tmp_path / "a.json", {**env, "LMPC_CACHE_DIR": str(tmp_path / "c"),
                                                      "LMPC_TRUST_FILE": "/nonexistent"})
        out, err = build.communicate(timeout=300)
    assert build.returncode == 0, err.decode()
    assert len(SQLiteCache(tmp_path / "c" / "cache.sqlite")) == json.loads(out)["lm_calls"] > 0


def test_an_unknown_cache_url_stops_the_build_with_one_line(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:1/v1")
    env = {**os.environ, "LMPC_CACHE_URL": "redis://localhost:6379/0",
           "LMPC_TRUST_FILE": "/nonexistent"}
    done = subprocess.run([sys.executable, "-m", "lmpc", "build", str(source), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "redis://localhost:6379/0 is not a cache lmpc can use" in done.stderr
