"""The persistent LM cache: SQLite, safe across threads and processes.

The key is a sha256 of the normalized request (model, mode, messages or prompt, every
sampling setting, the rollout index). Keys, base URLs, timeouts and any ``{"env": NAME}``
setting are left out of the key, so the cache never holds a secret and moving to another
endpoint of the same model still hits. A broken cache degrades to no caching with a
warning; it never fails a build.

In-flight leases: before paying for a request it does not have, a client ``claim``s the
key. Another process (or thread) that misses on the same key while the lease is held
waits for the holder's reply instead of paying for it too, up to the lease's time; a
lease whose holder died (its process is gone, or its time ran out) is taken over. So two
builds sharing one cache pay for each distinct request once. The interface (``Cache``:
get/put, ``LeasingCache``: claim/release) is what another backend must offer.

Backends, chosen by URL (``cache_url.open_cache``; the CLI reads ``LMPC_CACHE_URL``):
this SQLite file, the embedded default, and PostgreSQL (``cache_postgres``), a cache a
team shares across machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lmpc.credentials import is_secret_ref
from lmpc.runtime.lm_types import LMRequest, LMResponse

log = logging.getLogger("lmpc")

# Settings that say where or how to reach a model, not what it should answer.
EXCLUDED_SETTINGS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "timeout",
        "num_retries",
        "extra_headers",
        "headers",
        "max_concurrency",  # how fast lmpc may call, never what the model answers
        "rpm",
        "tpm",
        "lora_path",  # where a tuned model's adapter lies; its lora_sha256 is keyed
    }
)

_LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    expires REAL NOT NULL
)
"""

# what every backend keeps of a reply (each adds its own ``created`` column)
RESPONSE_COLUMNS = """
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT"""

_SCHEMA = f"CREATE TABLE IF NOT EXISTS responses ({RESPONSE_COLUMNS},\n    created REAL NOT NULL)"


def _normalize(value: Any) -> Any:
    """Drop excluded keys and secret references at any depth (e.g. inside fallbacks)."""
    if isinstance(value, dict):  # settings come from the IR as plain dicts and lists
        return {
            str(k): _normalize(v)
            for k, v in value.items()
            if k not in EXCLUDED_SETTINGS and not is_secret_ref(v)
        }
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def request_key(request: LMRequest) -> str:
    """The cache key of a request: a sha256 hex digest of its normalized JSON.

    >>> a = LMRequest("m", "text", prompt="hi", settings={"api_key": {"env": "K"}})
    >>> request_key(a) == request_key(LMRequest("m", "text", prompt="hi"))
    True
    >>> request_key(a) == request_key(LMRequest("m", "text", prompt="hi", rollout=1))
    False
    """
    payload = {
        "model": request.model,
        "mode": request.mode,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt": request.prompt,
        "settings": _normalize(request.settings),
        "rollout": request.rollout,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """What the cache keeps of a response (never settings, never secrets)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


class Cache(Protocol):
    """What ``LMClient`` needs of a cache."""

    def get(self, key: str) -> CachedReply | None: ...

    def put(self, key: str, model: str, response: LMResponse) -> None: ...


@runtime_checkable
class LeasingCache(Cache, Protocol):
    """A cache shared by several clients that marks the requests in flight.

    ``claim`` takes the lease of ``key`` for ``owner`` (a token unique to one call) for
    ``ttl_s`` seconds and says whether ``owner`` holds it now: True when it was free,
    expired, or held by a process that no longer exists. ``release`` gives it back.
    """

    def claim(self, key: str, owner: str, ttl_s: float) -> bool: ...

    def release(self, key: str, owner: str) -> None: ...


_HOST = socket.gethostname()


def _alive(host: str, pid: int) -> bool:
    """Is the lease holder's process still there? (Another machine's: assume so, and let
    the lease time decide.)"""
    if host != _HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that id: alive
    return True


class CacheError(RuntimeError):
    """A cache URL that names no backend, or a shared cache that cannot be reached."""


_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s]*):[^@\s]*@")


def redact_url(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` hidden.

    >>> redact_url("postgresql://team:s3cret@db.local:5432/lmpc")
    'postgresql://team:***@db.local:5432/lmpc'
    >>> redact_url("sqlite:///tmp/c.sqlite")
    'sqlite:///tmp/c.sqlite'
    """
    return _PASSWORD.sub(r"\1:***@", text)


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$LMPC_CACHE_DIR/cache.sqlite``, else ``~/.cache/lmpc/cache.sqlite``."""
    env = os.environ if environ is None else environ
    directory = env.get("LMPC_CACHE_DIR")
    base = Path(directory).expanduser() if directory else Path.home() / ".cache" / "lmpc"
    return base / "cache.sqlite"


class PersistentCache(ABC):
    """What both persistent backends share: a bounded memory layer in front of the store,
    one connection per thread (and per process: a forked child opens its own), and the
    store's first error turning caching off with one warning instead of failing a build.

    The most recent ``memory_items`` entries are kept in memory: optimizers ask the same
    questions again and again, and a dict lookup is several times cheaper than a query.
    A backend supplies the statements (``_read`` ... ``_count``), each of which calls
    ``_disable`` on an error of its store and returns as if the store were empty.
    """

    def __init__(self, memory_items: int) -> None:
        self._memory: OrderedDict[str, CachedReply] = OrderedDict()
        self._memory_items = memory_items
        self._memory_lock = threading.Lock()
        self._local = threading.local()
        self._disabled = False
        self._warn_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return not self._disabled

    def get(self, key: str) -> CachedReply | None:
        if self._disabled:
            return None
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        row = self._read(key)
        if row is None:
            return None
        hit = CachedReply(*row)
        self._remember(key, hit)
        return hit

    def put(self, key: str, model: str, response: LMResponse) -> None:
        if self._disabled:
            return
        self._write(key, model, response)
        if not self._disabled:
            self._remember(key, CachedReply(response.text, response.prompt_tokens,
                                            response.completion_tokens, response.finish_reason))

    def claim(self, key: str, owner: str, ttl_s: float) -> bool:
        if self._disabled:
            return True  # no cache: nobody to wait for
        return self._claim(key, owner, ttl_s)

    def release(self, key: str, owner: str) -> None:
        if not self._disabled:
            self._release(key, owner)

    def __len__(self) -> int:
        return 0 if self._disabled else self._count()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = self._own_connection()
        if conn is not None:
            conn.close()
        self._local.conn = None

    # ------------------------------------------------------------ for the backends

    @abstractmethod
    def _read(self, key: str) -> tuple[Any, ...] | None:
        """The stored (text, prompt_tokens, completion_tokens, finish_reason) of ``key``."""

    @abstractmethod
    def _write(self, key: str, model: str, response: LMResponse) -> None: ...

    @abstractmethod
    def _claim(self, key: str, owner: str, ttl_s: float) -> bool:
        """Whether ``owner`` holds the lease of ``key`` now (True on an error: no wait)."""

    @abstractmethod
    def _release(self, key: str, owner: str) -> None: ...

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _where(self) -> str:
        """The store, as a warning names it (no password)."""

    def _reason(self, exc: Exception) -> str:
        return str(exc)

    def _own_connection(self) -> Any:
        """This thread's connection, if this process opened it (a forked child's
        inherited one is never used)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        return None

    def _keep_connection(self, conn: Any) -> None:
        self._local.conn, self._local.pid = conn, os.getpid()

    def _remember(self, key: str, reply: CachedReply) -> None:
        if self._memory_items <= 0:
            return
        with self._memory_lock:
            self._memory[key] = reply
            if len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)  # oldest first

    def _disable(self, what: str, exc: Exception) -> None:
        with self._warn_lock:
            if not self._disabled:
                log.warning("LM cache %s %s (%s); continuing without a cache", what,
                            self._where(), self._reason(exc))
            self._disabled = True


class SQLiteCache(PersistentCache):
    """A persistent cache in one SQLite file.

    WAL journaling so readers never block the writer, a busy timeout so concurrent
    writers wait instead of failing, and one short transaction per write.
    """

    def __init__(self, path: str | Path | None = None, busy_timeout_s: float = 30.0,
                 memory_items: int = 10_000) -> None:
        super().__init__(memory_items)
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self._busy_timeout_s = busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection()
        except (OSError, sqlite3.Error) as exc:
            self._disable("cannot open", exc)

    def _read(self, key: str) -> tuple[Any, ...] | None:
        try:
            return self._connection().execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason"
                " FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        except sqlite3.Error as exc:
            self._disable("cannot read", exc)
            return None

    def _write(self, key: str, model: str, response: LMResponse) -> None:
        row = (key, model, response.text, response.prompt_tokens, response.completion_tokens,
               response.finish_reason, time.time())
        try:
            # autocommit: the statement is its own transaction, so the lock is held briefly
            self._connection().execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.Error as exc:
            self._disable("cannot write", exc)

    def _claim(self, key: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")  # one writer decides who holds the lease
            try:
                row = conn.execute("SELECT owner, host, pid, expires FROM leases WHERE key = ?",
                                   (key,)).fetchone()
                if row is not None and row[0] != owner and row[3] > now and \
                        _alive(row[1], row[2]):
                    return False
                conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                             (key, owner, _HOST, os.getpid(), now + ttl_s))
                return True
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._disable("cannot lease", exc)
            return True

    def _release(self, key: str, owner: str) -> None:
        try:
            self._connection().execute("DELETE FROM leases WHERE key = ? AND owner = ?",
                                       (key, owner))
        except sqlite3.Error as exc:
            self._disable("cannot release", exc)

    def _count(self) -> int:
        try:
            return self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.Error as exc:
            self._disable("cannot read", exc)
            return 0

    def _where(self) -> str:
        return str(self.path)

    def _connection(self) -> sqlite3.Connection:
        conn = self._own_connection()
        if conn is not None:
            return conn
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s,
                               isolation_level=None, check_same_thread=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            _retry_while_busy(lambda: _set_up(conn), self._busy_timeout_s)
        except BaseException:
            conn.close()
            raise
        self._keep_connection(conn)
        return conn


def _set_up(conn: sqlite3.Connection) -> None:
    """WAL and the tables, once per file; safe when many processes open a new file at once.

    Changing the journal mode needs the file to itself, so it is asked only when the file is
    not in WAL yet (the step measured failing at once when twelve processes opened one new
    file); the tables are made inside ``BEGIN IMMEDIATE``, a write lock taken up front."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_SCHEMA)
        conn.execute(_LEASES)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _retry_while_busy(step: Callable[[], None], timeout_s: float) -> None:
    """Run ``step`` again, with backoff, while SQLite says the file is busy or locked.

    SQLite answers "database is locked" without waiting on the busy handler where waiting
    could deadlock (a journal-mode change, a reader racing to recover a new WAL). Those
    clear in milliseconds; giving up at once would turn one process's cache off and make
    it pay for every call its neighbour is already paying for."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
