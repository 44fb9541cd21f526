"""``lmpc serve``: a real uvicorn on 127.0.0.1, a real HTTP client (httpx).

In-process servers run the quick start's artifact on a scripted LM; the SIGTERM test
runs ``lmpc serve`` as its own process against an OpenAI-compatible fake server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from api_helpers import built_router, keyword_transport  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from fake_server import fake_server, sentiment_reply, sentiment_source  # noqa: E402

import lmpc  # noqa: E402
from lmpc.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(programs: list[lmpc.Program], **limits: Any) -> Iterator[str]:
    """A real uvicorn serving ``programs`` in a thread; yields its base URL."""
    import uvicorn

    from lmpc.serve import create_app

    port = free_port()
    config = uvicorn.Config(create_app(programs, **limits), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def router_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_router(tmp_path_factory.mktemp("serve"))


def _router(path: Path, **options: Any) -> lmpc.Program:
    options.setdefault("transport", keyword_transport())
    return lmpc.load(path, cache=False, **options)


def test_post_answers_with_the_category_and_openapi_lists_the_enum(router_path: Path) -> None:
    with running([_router(router_path)]) as url:
        reply = httpx.post(f"{url}/Router", json={"ticket": "Please refund my last invoice"})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"category": "billing"}
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "programs": ["Router"]}
        schema = httpx.get(f"{url}/openapi.json").json()
        assert schema["components"]["schemas"]["Category"]["enum"] == [
            "billing", "technical", "shipping", "account"]
        route = schema["paths"]["/Router"]["post"]
        body = route["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/RouterInput"}
        assert schema["components"]["schemas"]["RouterInput"]["required"] == ["ticket"]
        assert "/Router/batch" in schema["paths"]
        assert httpx.get(f"{url}/docs").status_code == 200


def test_64_concurrent_requests_all_succeed(router_path: Path) -> None:
    transport = keyword_transport(delay=0.05)
    program = _router(router_path, transport=transport, lm="openai/scripted")
    tickets = ["refund me", "parcel lost", "app crash", "password reset"] * 16

    async def fire(url: str) -> list[Any]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/Router", json={"ticket": t})
                                          for t in tickets))

    with running([program], workers=16) as url:
        replies = asyncio.run(fire(url))
    assert [r.status_code for r in replies] == [200] * 64
    assert [r.json()["category"] for r in replies] == [
        "billing", "shipping", "technical", "account"] * 16
    assert transport.peak_in_flight > 4  # they really ran at once


def test_bad_requests_get_422_naming_the_field(router_path: Path) -> None:
    with running([_router(router_path)]) as url:
        missing = httpx.post(f"{url}/Router", json={"tiket": "refund"})
        assert missing.status_code == 422
        where = [tuple(e["loc"]) for e in missing.json()["detail"]]
        assert ("body", "ticket") in where and ("body", "tiket") in where
        wrong = httpx.post(f"{url}/Router", json={"ticket": ["a"]})
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["loc"] == ["body", "ticket"]
        not_json = httpx.post(f"{url}/Router", content=b"{", headers={
            "content-type": "application/json"})
        assert not_json.status_code == 422


def test_batch_requests(router_path: Path) -> None:
    with running([_router(router_path)], max_batch=3) as url:
        reply = httpx.post(f"{url}/Router/batch", json={"rows": [
            {"ticket": "refund me"}, {"ticket": "FAIL here"}, {"ticket": "lost parcel"}]})
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        assert results[0] == {"output": {"category": "billing"}, "error": None}
        assert results[1]["output"] is None and "this ticket fails" in results[1]["error"]
        assert results[2]["output"] == {"category": "shipping"}
        too_many = httpx.post(f"{url}/Router/batch", json={"rows": [{"ticket": "x"}] * 4})
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["body", "rows"]


def test_limits_body_size_and_time(router_path: Path) -> None:
    slow = _router(router_path, transport=keyword_transport(delay=3.0), lm="openai/slow")
    with running([slow], max_body=200, timeout_s=0.5) as url:
        big = httpx.post(f"{url}/Router", json={"ticket": "x" * 500})
        assert big.status_code == 413 and "over 200 bytes" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"ticket": "'
            for _ in range(10):
                yield b"x" * 50
            yield b'"}'

        streamed = httpx.post(f"{url}/Router", content=chunks(),
                              headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        started = time.monotonic()
        late = httpx.post(f"{url}/Router", json={"ticket": "refund"}, timeout=30)
        assert late.status_code == 504 and "no answer within 0.5 s" in late.json()["detail"]
        assert time.monotonic() - started < 2.5


def test_run_failures_are_502(router_path: Path) -> None:
    with running([_router(router_path)]) as url:
        reply = httpx.post(f"{url}/Router", json={"ticket": "FAIL now"})
        assert reply.status_code == 502 and "this ticket fails" in reply.json()["detail"]


def test_serve_refuses_tools_that_are_not_allowed() -> None:
    result = CliRunner().invoke(main, ["serve", str(ROOT / "examples" / "agent.lmp"),
                                       "--port", str(free_port())])
    assert result.exit_code == 1
    assert "refusing to load UnitAgent" in result.output
    assert "agent_tools:convert" in result.output


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("lmpc serve did not come up")


def test_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    with fake_server(sentiment_reply, delay_s=1.5) as lm_server:
        source = sentiment_source(tmp_path, lm_server.url)
        port = free_port()
        env = {**os.environ, "LMPC_TRUST_FILE": "/nonexistent"}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from lmpc.cli import main; main()", "serve", str(source),
             "--port", str(port), "--no-cache", "--drain", "20"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_for(url, proc)
            # the first request imports litellm in the server: out of the timed part
            first = httpx.post(f"{url}/Classify", json={"text": "The movie was great."},
                               timeout=60)
            assert first.json() == {"label": "positive"}
            results: list[Any] = []

            def ask(text: str) -> None:
                results.append(httpx.post(f"{url}/Classify", json={"text": text}, timeout=30))

            askers = [threading.Thread(target=ask, args=(f"The movie was {w}.",))
                      for w in ("superb", "dull", "nice", "awful")]
            for t in askers:
                t.start()
            deadline = time.monotonic() + 30
            while lm_server.count < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lm_server.count == 5  # the four are in flight, waiting on the LM

            proc.send_signal(signal.SIGTERM)
            for t in askers:
                t.join(timeout=30)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert sorted(r.status_code for r in results) == [200] * 4
    labels = sorted(json.dumps(r.json()) for r in results)
    assert labels == sorted(json.dumps({"label": lab}) for lab in
                            ("positive", "negative", "positive", "negative"))
    assert "stopped (requests in flight were finished)" in stderr
