"""A throwaway PostgreSQL server on 127.0.0.1 for the distributed tests and benchmarks.

``postgres_cluster()`` finds Debian's server binaries (``/usr/lib/postgresql/*/bin``),
installs the ``postgresql`` package with apt-get when they are missing and this is root,
``initdb``s a cluster in a temporary folder, starts it on a free loopback port and yields
its URL; the server is stopped (``pg_ctl stop -m fast``) and the folder removed when the
block ends. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user the package creates. Only the server started here is ever stopped.

    with postgres_cluster() as url:      # postgresql://lmpc@127.0.0.1:PORT/lmpc
        ...

``Unavailable`` says why no server could be had (no binaries and no way to install them);
the tests skip with that reason, and only then.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 60
# Workers each hold a cache connection per thread and an Optuna connection pool.
MAX_CONNECTIONS = 300


class Unavailable(RuntimeError):
    """No PostgreSQL server can be run here (the message says why)."""


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _install() -> None:
    """``apt-get install postgresql`` (Debian's package), as CI does on a fresh machine."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) "
                          "and apt-get cannot install it here (not root, or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # a fresh machine's package lists may be empty or stale
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or _bin_dir() is None:
        raise Unavailable(f"apt-get install postgresql failed: {done.stderr[-500:]}")


def server_binaries() -> Path:
    """The folder of initdb/pg_ctl, installing PostgreSQL first when it is missing."""
    found = _bin_dir()
    if found is None:
        _install()
        found = _bin_dir()
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A running server for the block; its URL names database ``lmpc``, user ``lmpc``."""
    bin_dir = server_binaries()
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to own "
                              "the cluster") from None
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="lmpc-pg-"))
    data, log = folder / "data", folder / "server.log"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "lmpc",
                                  "--auth=trust", "-E", "UTF8", "--no-sync"], user),
                       check=True, capture_output=True, timeout=120, cwd=folder)
        options = (f"-h {HOST} -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections={MAX_CONNECTIONS}")
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-l", str(log), "-o", options,
                                  "-w", "-t", str(START_TIMEOUT_S), "start"], user),
                       check=True, capture_output=True, timeout=START_TIMEOUT_S + 10,
                       cwd=folder)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        _stop(pg_ctl, data, user, folder)
        err = getattr(exc, "stderr", b"") or b""
        raise Unavailable(f"PostgreSQL did not start: {err.decode(errors='replace')[-500:]}"
                          f"\n{tail}") from None
    try:
        subprocess.run([str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", "lmpc",
                        "lmpc"], check=True, capture_output=True, timeout=60)
        yield f"postgresql://lmpc@{HOST}:{port}/lmpc"
    finally:
        _stop(pg_ctl, data, user, folder)


def _stop(pg_ctl: str, data: Path, user: str | None, folder: Path) -> None:
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "30",
                                  "stop"], user), capture_output=True, timeout=60, cwd=folder)
    shutil.rmtree(folder, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url`` and return its URL (one per test,
    so tests never see each other's tables)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
