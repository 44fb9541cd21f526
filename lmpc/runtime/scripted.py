"""A scripted LM transport for tests: replies by order, by prompt match, or by function.

It goes through the same ``LMClient`` (cache, retries, usage) as a real model, so tests
exercise the real adapters and parsers. A reply may be an exception instance, which is
raised instead, so a test can script "two timeouts, then an answer".

>>> from lmpc.runtime.lm_types import LMRequest
>>> t = ScriptedTransport(rules=[(r"capital of France", "Paris")], default="I don't know")
>>> t.send(LMRequest("m", "text", prompt="The capital of France is")).text
'Paris'
>>> t.send(LMRequest("m", "text", prompt="2+2=")).text
"I don't know"
>>> len(t.requests)
2
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from lmpc.runtime.lm_types import LMError, LMRequest, LMResponse

Reply = str | LMResponse | BaseException
ReplyFn = Callable[[LMRequest], Reply]


def render_request(request: LMRequest) -> str:
    """The text rules match against: the prompt, or the messages as ``role: content`` blocks."""
    if request.mode == "text":
        return request.prompt or ""
    return "\n\n".join(f"{m.get('role', '')}: {m.get('content', '')}"
                       for m in request.messages or ())


def count_words(text: str) -> int:
    """The scripted token count: whitespace-separated words (crude but predictable)."""
    return len(text.split())


class ScriptedTransport:
    """A ``Transport`` whose replies are written by the test.

    Lookup order for each request: the next item of ``replies`` (consumed in order),
    then the first of ``rules`` whose regex searches the rendered request, then ``fn``,
    then ``default``; with none of them an ``LMError`` names the request. A reply that
    is an exception is raised. Like a real API, a reply is cut at the first of the
    request's ``stop`` sequences. ``delay`` seconds are slept per call (for concurrency
    tests). Every request is kept in ``requests``, with the time it arrived in
    ``started``; ``peak_in_flight`` is the most calls it ever had in hand at once.
    """

    def __init__(
        self,
        replies: Iterable[Reply] | None = None,
        rules: Iterable[tuple[str | re.Pattern[str], Reply]] | None = None,
        fn: ReplyFn | None = None,
        default: Reply | None = None,
        delay: float = 0.0,
    ) -> None:
        self._replies: deque[Reply] = deque(replies or ())
        self._rules = [(re.compile(p, re.S) if isinstance(p, str) else p, r)
                       for p, r in rules or ()]
        self._fn = fn
        self._default = default
        self._delay = delay
        self._lock = threading.Lock()
        self.requests: list[LMRequest] = []
        self.started: list[float] = []  # time.monotonic() of each request's arrival
        self.in_flight = 0
        self.peak_in_flight = 0

    def send(self, request: LMRequest) -> LMResponse:
        with self._lock:
            self.requests.append(request)
            self.started.append(time.monotonic())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            reply = self._replies.popleft() if self._replies else None
        try:
            return self._answer(request, reply)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: LMRequest, reply: Reply | None) -> LMResponse:
        if self._delay:
            time.sleep(self._delay)
        if reply is None:
            reply = self._lookup(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, LMResponse):
            return reply
        text = _cut_at_stop(str(reply), request.settings.get("stop"))
        return LMResponse(
            text=text,
            prompt_tokens=count_words(render_request(request)),
            completion_tokens=count_words(text),
            finish_reason="stop",
        )

    @property
    def remaining(self) -> int:
        """How many ordered replies are still unused."""
        with self._lock:
            return len(self._replies)

    def _lookup(self, request: LMRequest) -> Reply:
        rendered = render_request(request)
        for pattern, reply in self._rules:
            if pattern.search(rendered):
                return reply
        if self._fn is not None:
            return self._fn(request)
        if self._default is not None:
            return self._default
        tail = rendered[-200:].replace("\n", "\\n")
        raise LMError(f"ScriptedTransport has no reply for a request to {request.model}: "
                      f"...{tail}")


def _cut_at_stop(text: str, stop: str | list[str] | None) -> str:
    if not stop:
        return text
    cut = len(text)
    for s in [stop] if isinstance(stop, str) else stop:
        index = text.find(s)
        if s and index != -1:
            cut = min(cut, index)
    return text[:cut]
