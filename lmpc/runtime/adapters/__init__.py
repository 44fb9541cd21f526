"""Adapters: how a predictor's signature, demos and inputs become an LM request.

``choose(adapter_name, lm)`` resolves ``"auto"``: the compact completion layout for
text-mode (base) models, field headers for chat models; on weights tuned to a compact
prompt (``lm.tuned.prompt == "compact"``) the completion layout without instructions.
"""

from __future__ import annotations

from lmpc.ir import LMIR
from lmpc.runtime.adapters.base import Adapter, Rendered
from lmpc.runtime.adapters.chat import ChatAdapter
from lmpc.runtime.adapters.completion import CompletionAdapter, TunedCompletionAdapter
from lmpc.runtime.adapters.json_adapter import JSONAdapter

ADAPTERS: dict[str, Adapter] = {
    "chat": ChatAdapter(),
    "json": JSONAdapter(),
    "completion": CompletionAdapter(),
}

TUNED_COMPLETION = TunedCompletionAdapter()

# When a reply cannot be parsed, try once more in this format (and count it).
FALLBACK = {"chat": "json"}


def is_text_model(lm: LMIR) -> bool:
    """Base models are prompted with text completion (the embedded model is one)."""
    if lm.model_type is not None:
        return lm.model_type == "text"
    return lm.model.startswith("local/")


def takes_grammar(lm: LMIR) -> bool:
    """Does ``lm`` constrain its sampling to a GBNF grammar (llama.cpp does)?

    The embedded models do; a llama.cpp server reached over HTTP does when its LM
    declares ``grammar: true``. Hosted APIs do not take GBNF.
    """
    if lm.grammar is not None:
        return lm.grammar
    return lm.model.startswith("local/")


def choose(adapter: str, lm: LMIR) -> Adapter:
    """The adapter a predictor uses with ``lm``."""
    if adapter == "auto":
        adapter = "completion" if is_text_model(lm) else "chat"
    if adapter == "completion" and lm.tuned is not None and lm.tuned.prompt == "compact":
        return TUNED_COMPLETION
    return ADAPTERS[adapter]


__all__ = ["ADAPTERS", "FALLBACK", "Adapter", "Rendered", "choose", "is_text_model",
           "takes_grammar"]
