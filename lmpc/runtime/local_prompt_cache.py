"""Prompt evaluation for the embedded models whose result depends only on the prompt.

llama.cpp's numbers depend on how a prompt is cut into decode calls: the same tokens
evaluated as one batch of 130 or as 30 + 100 give last-token logits that differ by up
to 0.9 (measured on Gemma 3 270M, llama-cpp-python 0.3.36), enough to flip a greedy
answer. llama-cpp-python reuses the longest prefix the previous prompt left in the KV
cache and evaluates the rest from there, so a reply depended on the request before it.

``PromptCache`` owns the evaluation instead. Every prompt is cut into chunks of
``CHUNK`` tokens at fixed absolute positions (0, CHUNK, 2·CHUNK, ...), one decode call
(one llama.cpp ubatch) each, and only the last chunk computes logits. A cached prefix
is reused only up to a chunk boundary that the previous prompt covered with a whole
chunk: those KV entries were computed from the same tokens, at the same positions, in
the same decode call as a fresh evaluation would compute them, so reuse changes the
time a reply takes and never its bits. Tokens a completion generated (decoded one at a
time) are never reused.

After ``evaluate`` the context holds exactly the prompt with its last logits, which
llama-cpp-python's ``create_completion`` takes as a full cache hit and samples from
directly (``Llama.generate``: ``exact_prompt_cached``). Anything that changes what the
model computes for the same tokens (a LoRA adapter, say) must call ``forget``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Measured CPU for a 130-token prompt: one chunk 609 ms, chunks of 32 629 ms, of 16
# 706 ms; so 32 costs little and lets a shared prefix be reused in steps of 32 tokens.
CHUNK = 32


def reusable_prefix(cached: Sequence[int], tokens: Sequence[int], chunk: int = CHUNK) -> int:
    """How many leading tokens of ``tokens`` may be taken from a cache holding ``cached``
    (the whole chunks of an earlier prompt): their longest common prefix, cut down to a
    chunk boundary, leaving at least one token to evaluate for fresh logits.

    >>> reusable_prefix([1] * 64, [1] * 70, chunk=32)
    64
    >>> reusable_prefix([1] * 64, [1] * 40 + [2] * 30, chunk=32)
    32
    >>> reusable_prefix([1] * 64, [1] * 64, chunk=32)  # same prompt: the last chunk again
    32
    """
    limit = min(len(cached), len(tokens) - 1)
    common = 0
    while common < limit and cached[common] == tokens[common]:
        common += 1
    return common - common % chunk


class PromptCache:
    """The prompt held in one llama-cpp-python ``Llama``'s context (use under its lock)."""

    def __init__(self, llama: Any, chunk: int = CHUNK) -> None:
        if chunk > llama.n_batch or chunk > llama.context_params.n_ubatch:
            raise ValueError(f"chunk {chunk} exceeds the context's batch size")
        self._llama = llama
        self.chunk = chunk
        self._whole: list[int] = []  # tokens the cache holds in whole chunks, from 0
        self.reused_tokens = 0  # counters, for benchmarks and tests
        self.evaluated_tokens = 0

    def evaluate(self, tokens: Sequence[int]) -> None:
        """Leave ``tokens`` evaluated in the context with the last token's logits."""
        llama, ctx = self._llama, self._llama._ctx
        tokens = list(tokens)
        start = reusable_prefix(self._whole, tokens, self.chunk)
        self._whole = self._whole[:start]
        ctx.kv_cache_seq_rm(-1, start, -1)
        llama.n_tokens = start
        llama._requires_eval = True
        for begin in range(start, len(tokens), self.chunk):
            batch = tokens[begin:begin + self.chunk]
            last = begin + len(batch) == len(tokens)
            llama._batch.set_batch(batch=batch, n_past=begin, logits_all=False)
            if not last:  # the vocabulary projection is wasted work mid-prompt
                llama._batch.batch.logits[len(batch) - 1] = False
            try:
                ctx.decode(llama._batch)
            except RuntimeError:
                self.forget()
                raise
            llama.input_ids[begin:begin + len(batch)] = batch
            llama.n_tokens = begin + len(batch)
            if len(batch) == self.chunk:
                self._whole.extend(batch)
        llama._requires_eval = False
        self.reused_tokens += start
        self.evaluated_tokens += len(tokens) - start

    def logits(self) -> Any:
        """A copy of the logits ``evaluate`` left (a numpy array over the vocabulary)."""
        import llama_cpp
        import numpy as np

        llama = self._llama
        row = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(llama.n_vocab(),)).copy()

    def forget(self) -> None:
        """Drop everything cached: the next prompt is evaluated from position 0."""
        self._whole = []
        self._llama.n_tokens = 0
        self._llama._requires_eval = True
        self._llama._ctx.kv_cache_seq_rm(-1, 0, -1)
