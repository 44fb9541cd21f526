"""Text vectors and nearest-neighbour demo selection for ``knn_fewshot``.

The default vectorizer, ``"local"``, needs no download and no dependency: sparse TF-IDF
vectors over word unigrams, word bigrams and character trigrams (which catch shared word
stems and typos), compared by cosine similarity. Any other name is a litellm embedding
model (``"litellm/<model>"`` or the plain litellm model string), imported only when used.

>>> v = LocalVectorizer(["the cat sat on the mat", "stocks fell sharply", "a cat on a mat"])
>>> q = v.vector("cats on mats")
>>> sims = [cosine(q, v.vector(t)) for t in v.texts]
>>> sorted(range(3), key=lambda i: -sims[i]), sims[1]
([2, 0, 1], 0.0)

At run time the executor calls :func:`select_demos` with a predictor's
``options["knn"]`` (written by the ``knn_fewshot`` pass) and the inputs of the run.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from lmpc.ir import Demo

Vector = dict[Any, float]  # sparse: feature -> weight (dense vectors use int keys)

_WORD = re.compile(r"\w+", re.UNICODE)


class Vectorizer(Protocol):
    """Turns one text into a unit-length vector comparable with the fitted texts."""

    def vector(self, text: str) -> Vector: ...


def features(text: str) -> Counter[str]:
    """Word unigrams, word bigrams and character trigrams of ``text`` (lowercased)."""
    words = _WORD.findall(text.lower())
    feats: Counter[str] = Counter(f"w:{w}" for w in words)
    feats.update(f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False))
    for w in words:
        padded = f" {w} "
        feats.update(f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2))
    return feats


def cosine(a: Vector, b: Vector) -> float:
    """Cosine similarity of two unit-length sparse vectors (their dot product)."""
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(f, 0.0) for f, w in a.items())


def _unit(vec: Vector) -> Vector:
    norm = math.sqrt(sum(w * w for w in vec.values()))
    return {f: w / norm for f, w in vec.items()} if norm else {}


class LocalVectorizer:
    """TF-IDF over :func:`features`, with IDF fitted on the given texts (no download)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        df: Counter[str] = Counter()
        for t in self.texts:
            df.update(set(features(t)))
        n = len(self.texts)
        # smoothed IDF: a feature seen everywhere still counts a little, unseen ones most
        self._idf = {f: math.log((1 + n) / (1 + c)) + 1.0 for f, c in df.items()}
        self._unseen = math.log(1 + n) + 1.0

    def vector(self, text: str) -> Vector:
        tf = features(text)
        return _unit({f: (1.0 + math.log(c)) * self._idf.get(f, self._unseen)
                      for f, c in tf.items()})


class LitellmVectorizer:
    """Embeddings from a litellm embedding model (hosted or local server)."""

    def __init__(self, model: str) -> None:
        self.model = model.removeprefix("litellm/")

    def vectors(self, texts: Sequence[str]) -> list[Vector]:
        from lmpc.runtime.lm import import_litellm

        litellm = import_litellm()  # slow, offline: only when an embedding model is used

        try:
            response = litellm.embedding(model=self.model, input=list(texts))
        except Exception as exc:  # litellm raises many types; name the model, not secrets
            raise VectorizerError(f"embedding model {self.model!r} failed: "
                                  f"{type(exc).__name__}") from exc
        rows = [item["embedding"] for item in response["data"]]
        return [_unit(dict(enumerate(float(x) for x in row))) for row in rows]

    def vector(self, text: str) -> Vector:
        return self.vectors([text])[0]


class VectorizerError(Exception):
    """An embedding model that cannot be reached or returns nothing usable."""


class KnnIndex:
    """The training examples of one predictor, vectorized once, searchable by text."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.examples: list[dict[str, Any]] = config.get("examples", [])
        self.input_fields: list[str] = config.get("input_fields", [])
        keys = [key_text(ex.get("key", {}), self.input_fields) for ex in self.examples]
        name = config.get("vectorizer", "local")
        if name == "local":
            local = LocalVectorizer(keys)
            self._vectorizer: Vectorizer = local
            self._vectors = [local.vector(k) for k in keys]
        else:
            remote = LitellmVectorizer(name)
            self._vectorizer = remote
            self._vectors = remote.vectors(keys) if keys else []

    def nearest(self, inputs: dict[str, Any], k: int) -> list[int]:
        """Positions of the ``k`` examples most similar to ``inputs`` (ties: data order)."""
        query = self._vectorizer.vector(key_text(inputs, self.input_fields))
        sims = [cosine(query, v) for v in self._vectors]
        return sorted(range(len(sims)), key=lambda i: (-sims[i], i))[:k]


def key_text(values: dict[str, Any], fields: Sequence[str]) -> str:
    """The text compared for similarity: the given fields' values, else every value."""
    chosen = [f for f in fields if f in values] or sorted(values)
    return "\n".join(_as_text(values[f]) for f in chosen)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


_INDEXES: dict[str, KnnIndex] = {}
_INDEX_LOCK = threading.Lock()
_MAX_INDEXES = 32


def index_for(config: dict[str, Any]) -> KnnIndex:
    """The (memoized) index of one ``options["knn"]`` — built once per process."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    with _INDEX_LOCK:
        found = _INDEXES.get(digest)
    if found is not None:
        return found
    built = KnnIndex(config)
    with _INDEX_LOCK:
        if len(_INDEXES) >= _MAX_INDEXES:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[digest] = built
    return built


def select_demos(options_knn: dict[str, Any], inputs: dict[str, Any]) -> list[Demo]:
    """The demos for one run: those of the ``k`` training examples nearest to ``inputs``.

    A neighbour contributes its bootstrapped demos when the teacher succeeded on it at
    build time (at most ``max_bootstrapped_demos`` in all), otherwise its labeled demo;
    the total stays within ``max_labeled_demos``. Bootstrapped demos come first, each
    group from the most similar neighbour down.
    """
    index = index_for(options_knn)
    k = int(options_knn.get("k", 3))
    max_boot = int(options_knn.get("max_bootstrapped_demos", 4))
    max_total = int(options_knn.get("max_labeled_demos", 16))
    boot: list[Demo] = []
    labeled: list[Demo] = []
    for pos in index.nearest(inputs, k):
        ex = index.examples[pos]
        if ex.get("bootstrapped") and len(boot) < max_boot:
            room = max_boot - len(boot)
            boot.extend(Demo(values=v, kind="bootstrapped") for v in ex["bootstrapped"][:room])
        elif ex.get("labeled") is not None:
            labeled.append(Demo(values=ex["labeled"], kind="labeled"))
    return (boot + labeled)[: max(max_total, len(boot))]
