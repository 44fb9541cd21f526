"""Built-in local retrieval: BM25 over a corpus file.

A corpus is a ``.txt`` file of paragraphs separated by blank lines, or a ``.jsonl`` file
whose rows have a ``"text"`` field. Each file is indexed once per process (re-indexed
if it changes on disk); lookups are thread-safe. For a real search service, a module
uses ``retrieve`` with a tool instead.

>>> index = BM25Index(["the cat sat", "dogs bark loudly", "a cat and a dog"])
>>> index.search("cat", k=2)
['the cat sat', 'a cat and a dog']
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from pathlib import Path

from lmpc.runtime.errors import RuntimeFailure

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25Index:
    """Okapi BM25 (k1=1.5, b=0.75) over a list of passages; immutable once built."""

    def __init__(self, passages: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages = passages
        self.k1, self.b = k1, b
        self._postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for i, passage in enumerate(passages):
            counts = Counter(tokenize(passage))
            self._lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                self._postings.setdefault(term, []).append((i, tf))
        n = len(passages)
        self._avg = (sum(self._lengths) / n) if n else 0.0
        self._idf = {
            t: math.log((n - len(p) + 0.5) / (len(p) + 0.5) + 1.0)
            for t, p in self._postings.items()
        }

    def search(self, query: str, k: int = 3) -> list[str]:
        """The ``k`` best passages for ``query`` (ties keep corpus order)."""
        scores: dict[int, float] = {}
        for term in set(tokenize(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for doc, tf in self._postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self._lengths[doc] / (self._avg or 1))
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (self.k1 + 1) / (tf + norm)
        best = sorted(scores, key=lambda d: (-scores[d], d))[:k]
        return [self.passages[d] for d in best]


def load_corpus(path: Path) -> list[str]:
    """Passages of a ``.txt`` (blank-line separated) or ``.jsonl`` (``"text"``) corpus."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuntimeFailure(f"cannot read corpus {path}: {exc.strerror or exc}") from None
    if path.suffix == ".jsonl":
        return _jsonl_passages(text, path)
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _jsonl_passages(text: str, path: Path) -> list[str]:
    passages = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RuntimeFailure(f"{path}:{n}: not valid JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise RuntimeFailure(f'{path}:{n}: a corpus row needs a "text" string field')
        passages.append(row["text"])
    return passages


class CorpusCache:
    """Indexes by file, built once and rebuilt when the file changes."""

    def __init__(self) -> None:
        self._indexes: dict[str, tuple[tuple[float, int], BM25Index]] = {}
        self._lock = threading.Lock()

    def index(self, path: Path) -> BM25Index:
        path = path.resolve()
        try:
            stat = path.stat()
        except OSError:
            raise RuntimeFailure(f"corpus file not found: {path}") from None
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:  # one build per file even when many threads ask at once
            entry = self._indexes.get(str(path))
            if entry is None or entry[0] != stamp:
                entry = (stamp, BM25Index(load_corpus(path)))
                self._indexes[str(path)] = entry
            return entry[1]


# A process-wide memo of immutable indexes (not a setting: results never depend on it).
CORPORA = CorpusCache()


def retrieve(query: str, corpus: Path, k: int = 3) -> list[str]:
    """The ``k`` passages of ``corpus`` that best match ``query``."""
    return CORPORA.index(corpus).search(query, k)
