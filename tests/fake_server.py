"""A small OpenAI-compatible server on 127.0.0.1 for tests that need a real socket.

It answers ``/v1/chat/completions`` and ``/v1/completions`` with ``reply(body) -> text``,
records every request it receives (path, headers, JSON body) and can misbehave on
purpose: a delay, an HTTP status, or a body cut short (``fault(body) -> str | None``
names the fault of one request). It runs in a thread of the test process so a test can
read what arrived; the lmpc under test may be another process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]
Fault = Callable[[dict[str, Any]], "str | None"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


@dataclass
class FakeServer:
    url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def raw_bytes(self) -> bytes:
        with self.lock:
            return b"\n".join(r.raw + json.dumps(r.headers).encode() for r in self.requests)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)


def prompt_of(body: dict[str, Any]) -> str:
    if "prompt" in body:
        prompt = body["prompt"]
        return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))


def _completion(body: dict[str, Any], text: str, chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {"id": "x", "object": "chat.completion" if chat else "text_completion",
            "created": 0, "model": body.get("model", "fake"), "choices": [choice],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


@contextmanager
def fake_server(reply: Reply, *, delay_s: float = 0.0, fault: Fault | None = None
                ) -> Iterator[FakeServer]:
    """Serve until the block ends. ``fault`` may return "status:401", "status:503",
    "status:429:2" (with ``Retry-After: 2``),
    "truncate" (a body shorter than its Content-Length), "cut-json" (a complete HTTP
    body whose JSON is cut) or None."""
    state: dict[str, FakeServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            server = state["server"]
            with server.lock:
                server.requests.append(Received(self.path, dict(self.headers), body, raw))
            if delay_s:
                time.sleep(delay_s)
            problem = fault(body) if fault else None
            if problem and problem.startswith("status:"):
                status = int(problem.split(":")[1])
                retry_after = problem.split(":")[2] if problem.count(":") > 1 else None
                # like servers that echo what they refused: the credential headers
                echoed = {k: v for k, v in self.headers.items()
                          if k.lower() in ("authorization", "x-api-key")}
                payload = json.dumps({"error": {"message": f"fake error {status}: "
                                                f"rejected {echoed}", "type": "fake"}}).encode()
                self._send(status, payload, retry_after)
                return
            chat = self.path.endswith("/chat/completions")
            payload = json.dumps(_completion(body, reply(body), chat)).encode()
            if problem == "truncate":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if problem == "cut-json":
                payload = payload[: len(payload) // 2]
            self._send(200, payload)

        def _send(self, status: int, payload: bytes, retry_after: str | None = None) -> None:
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state["server"] = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


SENTIMENT_SOURCE = '''\
lm fake = "hosted_vllm/fake" {{
  api_base: "{api_base}", model_type: "text", max_tokens: 4, num_retries: {retries}{extra}
}}

enum Sentiment {{ positive, negative }}

signature Judge {{
  """Classify the review."""
  in  text: str
  out label: Sentiment
}}

module Classify(text: str) -> (label: Sentiment) {{
  p = predict Judge(text = text)
  return (label = p.label)
}}

dataset reviews = jsonl "reviews.jsonl" {{
  inputs: [text]
  split: train 0.4, val 0.3, test 0.3, seed 3
}}

metric acc = exact_match(label)

optimize Classify with acc on reviews {{
  lm: fake
  seed: 1
  {passes}
}}
'''

POSITIVE_WORDS = ("great", "loved it", "wonderful", "superb", "fantastic", "excellent", "nice",
                  "brilliant", "amazing", "delightful")


def sentiment_reply(body: dict[str, Any]) -> str:
    """The right label for the last review in the prompt."""
    prompt = prompt_of(body)
    last = prompt.rsplit("The movie was", 1)[-1].split(".", 1)[0].strip()
    return " positive" if last in POSITIVE_WORDS else " negative"


def sentiment_source(folder: Any, api_base: str, passes: str = "labeled_fewshot(k = 3)",
                     retries: int = 0, extra: str = "") -> Any:
    """A sentiment program (20 rows beside it) whose LM is the fake server at api_base;
    ``extra`` adds LM settings (``', extra_headers: {...}'``)."""
    from pathlib import Path

    rows = []
    for pos, neg in zip(POSITIVE_WORDS, ("awful", "hated it", "terrible", "boring",
                                         "dreadful", "poor", "bad", "dull", "horrible",
                                         "annoying"), strict=True):
        rows.append({"text": f"The movie was {pos}.", "label": "positive"})
        rows.append({"text": f"The movie was {neg}.", "label": "negative"})
    folder = Path(folder)
    (folder / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "classify.lmp"
    path.write_text(SENTIMENT_SOURCE.format(api_base=api_base, passes=passes, retries=retries,
                                            extra=extra))
    return path


def agent_reply(request: Any) -> str:
    """A scripted ReAct run of examples/agent.lmp: call convert, then finish, then answer."""
    prompt = request.prompt or ""
    if prompt.endswith("Next Thought:"):
        if "Observation 1:" in prompt:
            return " I have it.\nNext Tool Name: finish\nNext Tool Args: {}"
        return (' Convert it.\nNext Tool Name: convert\nNext Tool Args: '
                '{"value": 10, "from_unit": "mi", "to_unit": "km"}')
    return " The tool said 16.0934.\nAnswer: 16.0934"
