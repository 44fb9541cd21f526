"""An OpenAI-compatible server on loopback that answers every request after a fixed delay.

It stands in for a hosted model whose latency is the model's, not the network's: the
throughput and start-up benchmarks point lmpc and DSPy at it as ``openai/<any>`` with an
``api_base``. It runs in its own process (so its threads never share the measured
process's GIL), counts the requests it has in hand at once, and replies in the
field-header format both frameworks' chat adapters read:

    [[ ## category ## ]]
    billing

    [[ ## completed ## ]]

The category comes from keywords of the last user message, so a reply depends only on
the ticket and both sides are scored the same way.

    with loopback_server(delay_s=0.1) as server:
        server.api_base          # http://127.0.0.1:PORT/v1
        server.stats()           # {"requests": n, "peak_in_flight": p}
        server.reset()

Run alone: ``python bench/_loopback.py --delay 0.1`` prints its port and serves until
stdin closes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
KEYWORDS = (  # first match wins; checked against the lowercased ticket
    ("shipping", ("parcel", "package", "deliver", "tracking", "shipping", "courier")),
    ("account", ("password", "login", "log in", "account", "profile", "sign in", "2fa")),
    ("billing", ("refund", "charge", "invoice", "plan", "payment", "bill", "card")),
)


def category_of(text: str) -> str:
    """The keyword route of a ticket (``technical`` when nothing matches)."""
    low = text.lower()
    for label, words in KEYWORDS:
        if any(w in low for w in words):
            return label
    return "technical"


def reply_text(body: dict[str, Any], vary: bool = False) -> str:
    if "messages" in body:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        prompt = str(users[-1].get("content", "")) if users else ""
    else:
        prompt = str(body.get("prompt", ""))
    # the ticket: the value under the last ticket header, up to the blank line after it
    head = "[[ ## ticket ## ]]"
    cut = prompt.rfind(head)
    ticket = prompt[cut + len(head):].strip().split("\n\n", 1)[0] if cut >= 0 else prompt
    if vary:
        return _varied(body, prompt, ticket)
    return f"[[ ## category ## ]]\n{category_of(ticket)}\n\n[[ ## completed ## ]]"


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _varied(body: dict[str, Any], prompt: str, ticket: str) -> str:
    """``--vary``: answer whatever output fields the request asks for (an optimizer's
    proposer too), and route a third of the tickets wrongly unless the prompt shows at
    least two demos or an instruction of an odd draft number, so that an optimizer's
    candidates score differently. Still a function of the request alone."""
    tail = prompt[prompt.rfind("Respond with"):] if "Respond with" in prompt else prompt
    wanted = [f for f in re.findall(r"`\[\[ ## (\w+) ## \]\]`", tail) if f != "completed"]
    every = json.dumps(body.get("messages", body.get("prompt", "")), sort_keys=True)
    parts = []
    for field in wanted or ["category"]:
        if field == "category":
            demos = every.count("[[ ## ticket ## ]]\\n") - 2  # the system's field list, ours
            draft = re.search(r"\(draft (\d+)\)", every)
            helped = demos >= 2 or (draft is not None and int(draft.group(1)) % 2 == 1)
            label = category_of(ticket)
            if not helped and _digest(ticket) % 3 == 0:
                label = "technical" if label != "technical" else "billing"
            parts.append(f"[[ ## category ## ]]\n{label}")
        else:
            parts.append(f"[[ ## {field} ## ]]\nRoute the customer's ticket to the team "
                         f"that handles it (draft {_digest(every) % 10}).")
    return "\n\n".join(parts) + "\n\n[[ ## completed ## ]]"


class Counter:
    """Requests received and the most in hand at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.in_flight = self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def snapshot(self, reset: bool = False) -> dict[str, int]:
        with self.lock:
            out = {"requests": self.requests, "peak_in_flight": self.peak}
            if reset:
                self.requests = self.peak = 0
            return out


def serve(delay_s: float, port: int = 0, vary: bool = False) -> ThreadingHTTPServer:
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connections
        # headers and body go out in two writes: with Nagle's algorithm the second
        # waits for the client's delayed ACK, 40 ms a request that no real server adds
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.startswith("/stats"):
                self._send(200, counter.snapshot(reset="reset" in self.path))
            else:
                self._send(200, {"data": [{"id": "loopback", "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            counter.enter()
            try:
                body = json.loads(raw or b"{}")
                time.sleep(delay_s)
                text = reply_text(body, vary)
            finally:
                counter.leave()
            chat = self.path.endswith("/chat/completions")
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self._send(200, {"id": "loopback", "created": 0, "model": body.get("model", "x"),
                             "object": "chat.completion" if chat else "text_completion",
                             "choices": [choice],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 8,
                                       "total_tokens": 18}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # 64 clients connecting at once must not overflow accept

    return Server((HOST, port), Handler)


@dataclass
class Loopback:
    process: subprocess.Popen[str]
    port: int

    @property
    def api_base(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def _get(self, path: str) -> dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{HOST}:{self.port}{path}", timeout=10) as reply:
            return dict(json.load(reply))

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._get("/stats").items()}

    def reset(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._get("/stats?reset").items()}


@contextmanager
def loopback_server(delay_s: float = 0.1, vary: bool = False) -> Iterator[Loopback]:
    """The server in a child process for the ``with`` block; always stopped after."""
    process = subprocess.Popen([sys.executable, __file__, "--delay", str(delay_s),
                                *(["--vary"] if vary else [])],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the port, once it listens
        if not line.strip().isdigit():
            raise RuntimeError(f"loopback server did not start: {line!r}")
        yield Loopback(process, int(line))
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the child stops when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per reply")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--vary", action="store_true", help="answer any output field; "
                        "candidates of an optimizer score differently (see _varied)")
    args = parser.parse_args()
    httpd = serve(args.delay, args.port, args.vary)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    print(httpd.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    main()
