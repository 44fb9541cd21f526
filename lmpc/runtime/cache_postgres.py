"""The LM cache a team shares: PostgreSQL, with in-flight leases across machines.

The same interface as :class:`lmpc.runtime.cache.SQLiteCache` (``get``, ``put``,
``claim``, ``release``; the memory layer and the degrading to no caching are their
shared base, ``cache.PersistentCache``) on two tables of one database — usually the one
that holds the Optuna studies, so a team needs one server. Chosen by
``LMPC_CACHE_URL=postgresql://...``.

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

from typing import Any

from lmpc.runtime.cache import RESPONSE_COLUMNS, CacheError, PersistentCache, redact_url
from lmpc.runtime.lm_types import LMResponse

_SCHEMA_LOCK = 0x6C6D7063  # "lmpc": one creator of the tables at a time
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS lmpc_responses ({RESPONSE_COLUMNS},
        created TIMESTAMPTZ NOT NULL DEFAULT now())""",
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


class PostgresCache(PersistentCache):
    """A persistent cache in a PostgreSQL database, shared by every process that uses it."""

    def __init__(self, url: str, memory_items: int = 10_000,
                 connect_timeout_s: float = 10.0) -> None:
        super().__init__(memory_items)
        self.url = driver_url(url)
        #: where Optuna studies go when a pass is not told (the same server)
        self.study_url = url
        self._timeout = connect_timeout_s
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except Exception as exc:  # psycopg's errors, or ImportError for a missing driver
            raise CacheError(f"cannot open the LM cache {redact_url(url)}: "
                             f"{_reason(exc)}") from None

    def _read(self, key: str) -> tuple[Any, ...] | None:
        return self._run("cannot read", "SELECT text, prompt_tokens, completion_tokens, "
                         "finish_reason FROM lmpc_responses WHERE key = %s", (key,))

    def _write(self, key: str, model: str, response: LMResponse) -> None:
        self._run("cannot write",
                  "INSERT INTO lmpc_responses (key, model, text, prompt_tokens, "
                  "completion_tokens, finish_reason) VALUES (%s, %s, %s, %s, %s, %s) "
                  "ON CONFLICT (key) DO UPDATE SET text = EXCLUDED.text, "
                  "prompt_tokens = EXCLUDED.prompt_tokens, "
                  "completion_tokens = EXCLUDED.completion_tokens, "
                  "finish_reason = EXCLUDED.finish_reason, created = now()",
                  (key, model, response.text, response.prompt_tokens,
                   response.completion_tokens, response.finish_reason), fetch=False)

    def _claim(self, key: str, owner: str, ttl_s: float) -> bool:
        row = self._run("cannot lease", _CLAIM, {"key": key, "owner": owner,
                                                 "ttl": float(ttl_s)})
        return True if self._disabled else bool(row)

    def _release(self, key: str, owner: str) -> None:
        self._run("cannot release", "DELETE FROM lmpc_leases WHERE key = %s AND owner = %s",
                  (key, owner), fetch=False)

    def _count(self) -> int:
        row = self._run("cannot read", "SELECT COUNT(*) FROM lmpc_responses", ())
        return int(row[0]) if row else 0

    def _where(self) -> str:
        return redact_url(self.url)

    def _reason(self, exc: Exception) -> str:
        return _reason(exc)

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
        conn = self._own_connection()
        if conn is not None and not conn.closed:
            return conn
        import psycopg  # the optional driver: only a team cache needs it

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._timeout),
                               application_name="lmpc-cache")
        self._keep_connection(conn)
        return conn


def _reason(exc: BaseException) -> str:
    """One line of an error, with any password in a URL it quotes hidden."""
    if isinstance(exc, ImportError):
        return "the PostgreSQL driver is not installed (pip install 'lmpc[postgres]')"
    text = str(exc).strip().splitlines()
    return redact_url(text[0] if text else type(exc).__name__)
