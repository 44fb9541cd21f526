"""The LM cache a team shares: PostgreSQL, with in-flight leases across machines.

The same interface as :class:`lmpc.runtime.cache.SQLiteCache` (``get``, ``put``,
``claim``, ``release``) on two tables of one database — usually the one that holds the
Optuna studies, so a team needs one server. Chosen by ``LMPC_CACHE_URL=postgresql://...``.

Leases: ``claim`` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so the
server decides who holds a key (the row lock serializes concurrent claims). A lease is
free when its owner gave it back, when its time ran out (on the server's clock, so
machines with skewed clocks agree), or when the database session that took it is gone:
the holder's backend pid is kept, and a process that died — on any machine — has its
connection closed by its kernel, so its session leaves ``pg_stat_activity`` at once and
the next claim takes the lease over without waiting out its time.

One connection per thread (and per process: a forked child opens its own), autocommit,
so every statement is its own short transaction. psycopg is imported only here, only
when this backend is used (the ``postgres`` extra). Errors after opening degrade to no
caching with a warning, like the SQLite cache; a server that cannot be reached when the
cache is opened is a ``CacheError`` (a misspelled team cache should not silently make
everyone pay again).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from lmpc.runtime.cache import CachedReply, CacheError, redact_url
from lmpc.runtime.lm_types import LMResponse

log = logging.getLogger("lmpc")

_SCHEMA_LOCK = 0x6C6D7063  # "lmpc": one creator of the tables at a time
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS lmpc_responses (
        key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        text TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        finish_reason TEXT,
        created TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS lmpc_leases (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        backend INTEGER NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    )""",
)

_CLAIM = """
INSERT INTO lmpc_leases AS l (key, owner, backend, expires)
VALUES (%(key)s, %(owner)s, pg_backend_pid(),
        clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE
   SET owner = EXCLUDED.owner, backend = EXCLUDED.backend, expires = EXCLUDED.expires
 WHERE l.owner = EXCLUDED.owner
    OR l.expires < clock_timestamp()
    OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend)
RETURNING owner
"""


def driver_url(url: str) -> str:
    """The libpq form of a URL (``postgresql+psycopg://`` is SQLAlchemy's spelling).

    >>> driver_url("postgresql+psycopg://u@h/db")
    'postgresql://u@h/db'
    >>> driver_url("postgres://u@h/db")
    'postgres://u@h/db'
    """
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


class PostgresCache:
    """A persistent cache in a PostgreSQL database, shared by every process that uses it."""

    def __init__(self, url: str, memory_items: int = 10_000,
                 connect_timeout_s: float = 10.0) -> None:
        self.url = driver_url(url)
        #: where Optuna studies go when a pass is not told (the same server)
        self.study_url = url
        self._timeout = connect_timeout_s
        self._memory: OrderedDict[str, CachedReply] = OrderedDict()
        self._memory_items = memory_items
        self._memory_lock = threading.Lock()
        self._local = threading.local()
        self._disabled = False
        self._warn_lock = threading.Lock()
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except Exception as exc:  # psycopg's errors, or ImportError for a missing driver
            raise CacheError(f"cannot open the LM cache {redact_url(url)}: "
                             f"{_reason(exc)}") from None

    @property
    def enabled(self) -> bool:
        return not self._disabled

    def get(self, key: str) -> CachedReply | None:
        if self._disabled:
            return None
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        row = self._run("cannot read", "SELECT text, prompt_tokens, completion_tokens, "
                        "finish_reason FROM lmpc_responses WHERE key = %s", (key,))
        if not row:
            return None
        hit = CachedReply(*row)
        self._remember(key, hit)
        return hit

    def put(self, key: str, model: str, response: LMResponse) -> None:
        if self._disabled:
            return
        self._run("cannot write",
                  "INSERT INTO lmpc_responses (key, model, text, prompt_tokens, "
                  "completion_tokens, finish_reason) VALUES (%s, %s, %s, %s, %s, %s) "
                  "ON CONFLICT (key) DO UPDATE SET text = EXCLUDED.text, "
                  "prompt_tokens = EXCLUDED.prompt_tokens, "
                  "completion_tokens = EXCLUDED.completion_tokens, "
                  "finish_reason = EXCLUDED.finish_reason, created = now()",
                  (key, model, response.text, response.prompt_tokens,
                   response.completion_tokens, response.finish_reason), fetch=False)
        if not self._disabled:
            self._remember(key, CachedReply(response.text, response.prompt_tokens,
                                            response.completion_tokens, response.finish_reason))

    def claim(self, key: str, owner: str, ttl_s: float) -> bool:
        if self._disabled:
            return True
        row = self._run("cannot lease", _CLAIM, {"key": key, "owner": owner,
                                                 "ttl": float(ttl_s)})
        return True if self._disabled else bool(row)

    def release(self, key: str, owner: str) -> None:
        if self._disabled:
            return
        self._run("cannot release", "DELETE FROM lmpc_leases WHERE key = %s AND owner = %s",
                  (key, owner), fetch=False)

    def __len__(self) -> int:
        row = None if self._disabled else self._run("cannot read",
                                                    "SELECT COUNT(*) FROM lmpc_responses", ())
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    # ------------------------------------------------------------ internals

    def _run(self, what: str, sql: str, args: Any, fetch: bool = True) -> Any:
        try:
            cursor = self._connection().execute(sql, args)
            return cursor.fetchone() if fetch else None
        except Exception as exc:  # the server went away, a disk filled up...
            self.close()  # a broken connection is not reused
            self._disable(what, exc)
            return None

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid() and not conn.closed:
            return conn
        import psycopg  # the optional driver: only a team cache needs it

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._timeout),
                               application_name="lmpc-cache")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _remember(self, key: str, reply: CachedReply) -> None:
        if self._memory_items <= 0:
            return
        with self._memory_lock:
            self._memory[key] = reply
            if len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)

    def _disable(self, what: str, exc: Exception) -> None:
        with self._warn_lock:
            if not self._disabled:
                log.warning("LM cache %s %s (%s); continuing without a cache", what,
                            redact_url(self.url), _reason(exc))
            self._disabled = True


def _reason(exc: BaseException) -> str:
    """One line of an error, with any password in a URL it quotes hidden."""
    if isinstance(exc, ImportError):
        return "the PostgreSQL driver is not installed (pip install 'lmpc[postgres]')"
    text = str(exc).strip().splitlines()
    return redact_url(text[0] if text else type(exc).__name__)
