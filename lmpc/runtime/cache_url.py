"""Which cache a URL names (``LMPC_CACHE_URL``): a backend behind the one cache interface.

Kept apart from both backends so that neither imports the other, and the PostgreSQL
driver is imported only when a ``postgresql://`` URL is opened.
"""

from __future__ import annotations

from lmpc.runtime.cache import Cache, CacheError, SQLiteCache, redact_url

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def open_cache(url: str) -> Cache:
    """The cache a URL names: ``postgresql://...`` (a team's), ``sqlite:///PATH`` or a
    plain path (a file). Anything else is a ``CacheError``.

    >>> open_cache("redis://localhost:6379/0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lmpc.runtime.cache.CacheError: LMPC_CACHE_URL: redis://localhost:6379/0 is not a cache ...
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return SQLiteCache(url)
    if scheme == "sqlite":
        return SQLiteCache(rest[1:] if rest.startswith("/") else rest)
    if scheme in POSTGRES_SCHEMES:
        from lmpc.runtime.cache_postgres import PostgresCache  # psycopg only when used

        return PostgresCache(url)
    raise CacheError(f"LMPC_CACHE_URL: {redact_url(url)} is not a cache lmpc can use "
                     "(postgresql://USER@HOST/DB, or sqlite:///PATH)")
