"""Reading an input file (a source, an artifact, a data file, a corpus), bounded; the
sha256 of a file an artifact pins (a dataset, tuned weights).

Every file lmpc reads on a user's behalf comes through :func:`read_text`: it must be a
regular file (a FIFO would block forever, ``/dev/zero`` would fill memory), no larger
than its limit, and UTF-8 (a byte-order mark is dropped). A bad one is a
``FileProblem`` whose message says what is wrong — for bytes that are not UTF-8, the
line and column where they are — so every stage reports it with its own code.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.lmp")
>>> _ = open(path, "wb").write(b"\\xef\\xbb\\xbfenum E { a }\\nok\\n\\xff here\\n")
>>> read_text(path, limit=100)
Traceback (most recent call last):
  ...
lmpc.files.FileProblem: not UTF-8 at line 3, column 1 (byte 0xff)
"""

from __future__ import annotations

import hashlib
import os
import stat

MB = 1 << 20
SOURCE_LIMIT = 8 * MB
ARTIFACT_LIMIT = 256 * MB
DATA_LIMIT = 1024 * MB
BOM = "\ufeff"


class FileProblem(Exception):
    """A file that cannot be read as text; ``line``/``col`` locate bad bytes (else 0)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.line, self.col = line, col


def read_bytes(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or ``FileProblem``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) |
                     getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except IsADirectoryError:
        raise FileProblem("is a directory, not a file") from None
    except OSError as exc:
        raise FileProblem(f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileProblem("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem("is not a regular file (a pipe, a device or a socket)")
        if info.st_size > limit:
            raise FileProblem(f"is too large ({_size(info.st_size)}; the limit is "
                              f"{_size(limit)})")
        chunks, total = [], 0
        while True:  # a file that grows while read is still cut at the limit
            chunk = os.read(fd, min(MB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileProblem(f"is too large (over {_size(limit)})")
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """The UTF-8 text of a regular file (BOM dropped), or ``FileProblem``."""
    return decode(read_bytes(path, limit))


def decode(data: bytes) -> str:
    """UTF-8 text of ``data`` (a BOM dropped); bad bytes are located by line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise FileProblem(f"not UTF-8 at line {line}, column {col} "
                          f"(byte 0x{data[exc.start]:02x})", line, col) from None
    return text[1:] if text.startswith(BOM) else text


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MB), b""):
            digest.update(block)
    return digest.hexdigest()


def is_regular(path: str | os.PathLike[str]) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


__all__ = ["ARTIFACT_LIMIT", "DATA_LIMIT", "SOURCE_LIMIT", "FileProblem", "decode",
           "file_sha256", "is_regular", "read_bytes", "read_text"]
