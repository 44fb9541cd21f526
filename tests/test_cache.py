"""SQLiteCache: keys, persistence, threads, processes, and degrading when broken."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lmpc.runtime.cache as cache_module
from lmpc.runtime.cache import SQLiteCache, _retry_while_busy, default_cache_path, request_key
from lmpc.runtime.lm_types import LMRequest, LMResponse


def req(prompt: str = "p", rollout: int = 0, **settings: object) -> LMRequest:
    return LMRequest("openai/gpt-x", "text", prompt=prompt, settings=dict(settings),
                     rollout=rollout)


def test_key_ignores_keys_endpoints_and_secrets() -> None:
    base = request_key(req(temperature=0.0))
    assert base == request_key(req(temperature=0.0, api_key={"env": "OPENAI_API_KEY"},
                                   api_base="http://127.0.0.1:8000/v1", timeout=30,
                                   num_retries=2))
    assert base == request_key(req(temperature=0.0, api_key="sk-literal"))
    assert base == request_key(req(temperature=0.0, custom_token={"env": "TOKEN"}))


def test_key_covers_what_changes_the_answer() -> None:
    base = request_key(req(temperature=0.0))
    assert base != request_key(req(temperature=0.7))
    assert base != request_key(req(temperature=0.0, rollout=1))
    assert base != request_key(req("other", temperature=0.0))
    assert base != request_key(req(temperature=0.0, stop=["\n"]))
    chat = LMRequest("openai/gpt-x", "chat", messages=({"role": "user", "content": "p"},),
                     settings={"temperature": 0.0})
    assert base != request_key(chat)


def test_key_is_order_independent() -> None:
    assert request_key(req(a=1, b=2)) == request_key(req(b=2, a=1))


def test_roundtrip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    cache = SQLiteCache(path)
    cache.put("k", "m", LMResponse("hello", prompt_tokens=3, completion_tokens=1,
                                   finish_reason="stop"))
    cache.close()
    reopened = SQLiteCache(path)
    hit = reopened.get("k")
    assert hit is not None and (hit.text, hit.prompt_tokens, hit.finish_reason) == (
        "hello", 3, "stop")
    assert reopened.get("missing") is None and len(reopened) == 1


def test_default_location_honours_env(tmp_path: Path) -> None:
    assert default_cache_path({"LMPC_CACHE_DIR": str(tmp_path)}) == tmp_path / "cache.sqlite"
    assert default_cache_path({}).parts[-3:] == (".cache", "lmpc", "cache.sqlite")


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite")

    def work(i: int) -> bool:
        cache.put(f"k{i}", "m", LMResponse(f"v{i}"))
        hit = cache.get(f"k{i}")
        return hit is not None and hit.text == f"v{i}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(200)))
    assert len(cache) == 200 and cache.enabled


def _writer(path: str, worker: int, n: int) -> None:
    cache = SQLiteCache(path)
    for i in range(n):
        cache.put(f"w{worker}-{i}", "m", LMResponse(f"text {worker} {i}"))
        cache.get(f"w{1 - worker}-{i}")  # read the other writer's rows meanwhile
    if not cache.enabled:
        raise SystemExit(3)


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    SQLiteCache(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = SQLiteCache(path)
    assert len(cache) == 300
    assert cache.get("w1-149").text == "text 1 149"  # type: ignore[union-attr]


_OPEN_AT = """
import sys, time
from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm_types import LMResponse
while time.time() < float(sys.argv[2]):
    pass
cache = SQLiteCache(sys.argv[1])
cache.put("k", "m", LMResponse("x"))
sys.exit(0 if cache.enabled else 3)
"""


def test_many_processes_opening_a_new_file_at_once_all_keep_the_cache(tmp_path: Path) -> None:
    """Twelve processes opening one new file in the same instant: each keeps its cache.

    Before the setup waited out "database is locked" (switching a new file to WAL fails at
    once, without the busy handler, while another process switches it), about one open in
    thirty here turned its cache off, and two builds started together both paid for every
    call. Without that wait this test failed one run in three."""
    for round_ in range(6):
        path = tmp_path / f"round{round_}" / "cache.sqlite"
        start = time.time() + 1.0  # every process imported and spinning by then
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(path), str(start)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(12)]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        assert all(code == 0 for code, _ in outcomes), outcomes
        assert len(SQLiteCache(path)) == 1


def test_a_locked_file_is_waited_for_and_other_errors_are_not() -> None:
    calls: list[int] = []

    def locked_twice() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")

    _retry_while_busy(locked_twice, timeout_s=5)
    assert len(calls) == 3

    def malformed() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: responses")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _retry_while_busy(malformed, timeout_s=5)
    assert len(calls) == 1  # not a lock: not retried

    def always_locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _retry_while_busy(always_locked, timeout_s=0.2)
    assert time.monotonic() - began < 2  # gives up near its deadline


def test_a_file_locked_while_opening_is_waited_for(tmp_path: Path, monkeypatch) -> None:
    """The race above, made certain: the first setup finds the file locked; the cache waits
    and opens rather than turning itself off."""
    real_set_up, attempts = cache_module._set_up, []

    def locked_once(conn: sqlite3.Connection) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("database is locked")
        real_set_up(conn)

    monkeypatch.setattr(cache_module, "_set_up", locked_once)
    cache = SQLiteCache(tmp_path / "c.sqlite")
    cache.put("k", "m", LMResponse("x"))
    assert cache.enabled and len(attempts) == 2
    assert cache.get("k").text == "x"  # type: ignore[union-attr]


def test_corrupted_file_degrades_to_no_cache(tmp_path: Path, caplog) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="lmpc"):
        cache = SQLiteCache(path)
        cache.put("k", "m", LMResponse("x"))
        assert cache.get("k") is None
    assert not cache.enabled
    assert "continuing without a cache" in caplog.text


def test_write_failure_degrades_with_one_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "c.sqlite"
    cache = SQLiteCache(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE responses")
    conn.execute("CREATE TABLE responses (key TEXT)")  # wrong shape: every write fails
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="lmpc"):
        cache.put("a", "m", LMResponse("x"))
        cache.put("b", "m", LMResponse("y"))
    assert not cache.enabled
    assert caplog.text.count("continuing without a cache") == 1


def test_unwritable_directory_degrades(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = SQLiteCache(blocker / "cache.sqlite")  # parent is a file
    cache.put("k", "m", LMResponse("x"))
    assert cache.get("k") is None and not cache.enabled
