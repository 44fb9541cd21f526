"""LitellmTransport without a model: secrets from the environment, error mapping, fallbacks.

An endpoint on a closed loopback port stands in for an unreachable server.
"""

from __future__ import annotations

import logging
import socket
import sqlite3

import pytest
from fake_server import fake_server

from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMError, LMRequest, TransientLMError
from lmpc.runtime.scripted import ScriptedTransport

SECRET = "sk-lmpc-test-secret-5e6f7a"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: connections are refused


def unreachable(mode: str = "chat", **extra: object) -> LMRequest:
    settings = {"api_key": {"env": "LMPC_TEST_KEY"},
                "api_base": f"http://127.0.0.1:{closed_port()}/v1", "timeout": 5, **extra}
    if mode == "chat":
        return LMRequest("openai/some-model", "chat",
                         messages=({"role": "user", "content": "hi"},), settings=settings)
    return LMRequest("openai/some-model", "text", prompt="hi", settings=settings)


def test_missing_env_var_is_a_clear_error_naming_it() -> None:
    transport = LitellmTransport(environ={})
    with pytest.raises(LMError, match="LMPC_TEST_KEY.*not set") as info:
        transport.send(unreachable())
    assert not isinstance(info.value, TransientLMError)


@pytest.mark.parametrize("mode", ["chat", "text"])
def test_connection_refused_is_transient_and_secret_free(mode: str, caplog) -> None:
    transport = LitellmTransport(environ={"LMPC_TEST_KEY": SECRET})
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientLMError) as info:
        transport.send(unreachable(mode))
    assert "some-model" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_client_retries_then_reports_without_secret(tmp_path, caplog) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite")
    client = LMClient(LitellmTransport(environ={"LMPC_TEST_KEY": SECRET}), cache=cache,
                      max_retries=1, sleep=lambda s: None)
    with caplog.at_level(logging.DEBUG), pytest.raises(LMError, match="after 2 attempts") as e:
        client.complete(unreachable())
    assert SECRET not in str(e.value) and SECRET not in caplog.text
    assert client.usage.snapshot()["failures"] == 1
    assert client.usage.records[0].attempts == 2


def test_fallbacks_are_tried_in_order() -> None:
    port = closed_port()
    fallback = {"model": "openai/second-model", "api_base": f"http://127.0.0.1:{port}/v1",
                "api_key": "unused"}
    transport = LitellmTransport(environ={"LMPC_TEST_KEY": SECRET})
    with pytest.raises(TransientLMError, match="every model failed") as info:
        transport.send(unreachable(fallbacks=[fallback]))
    message = str(info.value)
    assert message.index("some-model") < message.index("second-model")


def test_bad_fallback_is_a_clear_error() -> None:
    with pytest.raises(LMError, match="fallback must be"):
        LitellmTransport().send(unreachable(fallbacks=[42]))


def test_secret_never_reaches_the_cache(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    client = LMClient(ScriptedTransport(default="answer"), cache=SQLiteCache(path))
    request = LMRequest("openai/m", "text", prompt="q",
                        settings={"api_key": {"env": "LMPC_TEST_KEY"}, "temperature": 0.0})
    client.complete(request)
    assert client.complete(request).cached
    rows = sqlite3.connect(path).execute("SELECT * FROM responses").fetchall()
    assert len(rows) == 1
    dump = repr(rows) + path.read_bytes().decode("latin-1")
    assert "LMPC_TEST_KEY" not in dump and SECRET not in dump


@pytest.mark.parametrize(("model", "priced"), [("openai/lmpc-unpriced-model", False),
                                               ("openai/gpt-4o-mini", True)])
def test_a_model_litellm_cannot_price_is_priced_zero_from_its_second_call(
        monkeypatch: pytest.MonkeyPatch, model: str, priced: bool) -> None:
    """litellm searches its whole price table after every reply of a model it has no price
    for; once it found none, lmpc gives the model a price of 0 (what it counts anyway).
    A model litellm prices keeps litellm's price on every call."""
    import lmpc.runtime.lm as lm

    sent: list[dict[str, object]] = []
    real_call = lm._call

    def recording_call(litellm, shape, model, request, kwargs):  # type: ignore[no-untyped-def]
        sent.append(dict(kwargs))
        return real_call(litellm, shape, model, request, kwargs)

    monkeypatch.setattr(lm, "_call", recording_call)
    transport = LitellmTransport()
    with fake_server(lambda body: "ok") as server:
        costs = [transport.send(LMRequest(
            model, "chat", messages=({"role": "user", "content": f"q{i}"},),
            settings={"api_base": server.url, "api_key": "unused", "max_tokens": 4})).cost_usd
            for i in range(3)]
        bodies = [r.body for r in server.requests]
    zero = {k: sent[i].get(k) for i in range(3) for k in lm.ZERO_PRICE}
    assert "input_cost_per_token" not in sent[0]  # litellm is asked first
    if priced:
        assert all(c > 0 for c in costs)  # gpt-4o-mini's price, 5 + 2 tokens
        assert zero == {"input_cost_per_token": None, "output_cost_per_token": None}
    else:
        assert costs == [0.0, 0.0, 0.0]
        assert all(sent[i][k] == 0.0 for i in (1, 2) for k in lm.ZERO_PRICE)
    assert not any(k in body for body in bodies for k in lm.ZERO_PRICE)  # never sent
