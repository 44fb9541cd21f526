"""The data that crosses the LM layer: requests, responses, errors.

Kept apart from ``lm.py`` so adapters and tests can build requests without
importing litellm (which takes seconds to import).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class LMRequest:
    """One normalized LM call.

    ``mode="chat"`` sends ``messages``; ``mode="text"`` sends ``prompt`` as a text
    completion (base models). ``settings`` holds sampling and client options
    (temperature, max_tokens, stop, n, api_base, api_key as ``{"env": NAME}`` ...).
    ``rollout`` distinguishes deliberate resamples so the cache does not return the
    same answer.
    """

    model: str
    mode: Literal["chat", "text"]
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    rollout: int = 0


@dataclass
class LMResponse:
    """What came back, with its accounting. ``cached`` responses cost nothing new."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    call_id: str = ""
    finish_reason: str | None = None


class LMError(Exception):
    """An LM call that failed for good (after retries)."""


class TransientLMError(LMError):
    """Timeout, rate limit, 5xx, connection reset: worth retrying with backoff."""


class RateLimited(TransientLMError):
    """The server said: too many requests (HTTP 429). ``retry_after`` is its
    ``Retry-After`` in seconds, when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ContextWindowError(LMError):
    """The prompt (plus the requested tokens) does not fit the model's context window.

    Permanent for this request; a caller may shorten the prompt (e.g. trim a ReAct
    trajectory) and try again.
    """
