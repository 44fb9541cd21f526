"""The cache a team shares: PostgreSQL behind the same interface as the SQLite file.

Every test runs against a real PostgreSQL server on 127.0.0.1 (``conftest.py`` starts
one per session, a fresh database per test). The leases, and two real ``lmpc build``
processes sharing it through ``LMPC_CACHE_URL``, are tested on both backends in
``test_cache_lease.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.runtime.cache import CacheError, LeasingCache, SQLiteCache
from lmpc.runtime.cache_postgres import PostgresCache
from lmpc.runtime.cache_url import open_cache
from lmpc.runtime.lm_types import LMResponse


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
