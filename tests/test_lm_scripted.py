"""ScriptedTransport: order, rules, function, default, scripted errors, stop sequences."""

from __future__ import annotations

import pytest

from lmpc.runtime.lm_types import LMError, LMRequest, TransientLMError
from lmpc.runtime.scripted import ScriptedTransport, render_request


def chat(*contents: str) -> LMRequest:
    roles = ["system", "user", "assistant"]
    return LMRequest("m", "chat", messages=tuple(
        {"role": roles[min(i, 2)], "content": c} for i, c in enumerate(contents)))


def test_replies_in_order_then_default() -> None:
    t = ScriptedTransport(replies=["one", "two"], default="rest")
    request = LMRequest("m", "text", prompt="p")
    assert [t.send(request).text for _ in range(4)] == ["one", "two", "rest", "rest"]
    assert t.remaining == 0 and len(t.requests) == 4


def test_rules_match_rendered_chat_messages() -> None:
    t = ScriptedTransport(rules=[(r"system: Be terse", "terse"), (r"weather", "sunny")])
    assert t.send(chat("Be terse.", "hi")).text == "terse"
    assert t.send(chat("Be chatty.", "the weather?")).text == "sunny"
    assert render_request(chat("S", "U")) == "system: S\n\nuser: U"


def test_function_reply_sees_the_request() -> None:
    t = ScriptedTransport(fn=lambda r: r.prompt.upper())
    assert t.send(LMRequest("m", "text", prompt="shout")).text == "SHOUT"


def test_scripted_errors_are_raised() -> None:
    t = ScriptedTransport(replies=[TransientLMError("429")], rules=[("boom", LMError("bad"))])
    with pytest.raises(TransientLMError):
        t.send(LMRequest("m", "text", prompt="x"))
    with pytest.raises(LMError, match="bad"):
        t.send(LMRequest("m", "text", prompt="boom"))


def test_no_reply_is_a_clear_error() -> None:
    with pytest.raises(LMError, match="no reply.*question"):
        ScriptedTransport().send(LMRequest("m", "text", prompt="a question"))


def test_reply_is_cut_at_stop_sequence_like_a_real_api() -> None:
    t = ScriptedTransport(default="positive\nReview: more text")
    response = t.send(LMRequest("m", "text", prompt="Review: good\nLabel:",
                                settings={"stop": ["\n"]}))
    assert response.text == "positive"
    assert response.prompt_tokens == 3 and response.completion_tokens == 1
