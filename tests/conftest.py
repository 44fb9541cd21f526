"""Fixtures shared by the test modules: a real PostgreSQL server for the distributed tests.

The server is started once per test session (``tests/postgres_server.py``: Debian's
binaries, installed with apt-get when missing) on 127.0.0.1 and stopped at the end; each
test gets a database of its own. Tests skip, saying why, only where PostgreSQL cannot be
installed or started.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    from postgres_server import Unavailable, postgres_cluster

    try:
        cluster = postgres_cluster()
        url = cluster.__enter__()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    from postgres_server import fresh_database

    return fresh_database(postgres_server, f"t{next(_DATABASES)}")
