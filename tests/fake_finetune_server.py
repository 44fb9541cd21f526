"""A loopback fake of the OpenAI fine-tuning API (files, jobs, polling), for tests.

``POST /v1/files`` takes the multipart upload and keeps its bytes; ``POST
/v1/fine_tuning/jobs`` creates a job; each ``GET /v1/fine_tuning/jobs/<id>`` answers with
the next entry of ``polls``: a status ("running", "succeeded", "failed") or an HTTP error
code (429 comes with ``Retry-After: 0``). The last entry repeats. A real socket on
127.0.0.1, in a thread of the test process, so the test can read what arrived.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TUNED = "ft:base-model:lmpc::abc123"


@dataclass
class FakeFinetune:
    url: str
    polls: list[Any]
    uploads: list[bytes] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    poll_count: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)


def _job(body: dict[str, Any], status: str) -> dict[str, Any]:
    done = status == "succeeded"
    return {"id": "ftjob-1", "object": "fine_tuning.job", "model": body.get("model", "m"),
            "created_at": 1, "finished_at": 2 if done else None,
            "fine_tuned_model": TUNED if done else None, "organization_id": "org",
            "result_files": [], "status": status, "validation_file": None,
            "training_file": body.get("training_file", "file-1"),
            "hyperparameters": body.get("hyperparameters") or {"n_epochs": 1},
            "trained_tokens": None, "seed": body.get("seed") or 0,
            "error": {"code": "bad_data", "message": "training data rejected",
                      "param": None} if status == "failed" else None}


@contextmanager
def fake_finetune(polls: list[Any]) -> Iterator[FakeFinetune]:
    state = FakeFinetune(url="", polls=list(polls))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _send(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
                  ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.headers.append(dict(self.headers))
            if self.path.endswith("/files"):
                match = re.search(rb"\r\n\r\n(.*?)\r\n--", raw.split(b'filename="')[-1], re.S)
                with lock:
                    state.uploads.append(match.group(1) if match else raw)
                self._send(200, {"id": "file-1", "object": "file", "bytes": len(raw),
                                 "created_at": 1, "filename": "lmpc-records.jsonl",
                                 "purpose": "fine-tune", "status": "processed"})
            elif self.path.endswith("/fine_tuning/jobs"):
                body = json.loads(raw or b"{}")
                with lock:
                    state.jobs.append(body)
                self._send(200, _job(body, "queued"))
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_GET(self) -> None:  # noqa: N802
            if "/fine_tuning/jobs/" not in self.path:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with lock:
                step = state.polls[min(state.poll_count, len(state.polls) - 1)]
                state.poll_count += 1
                body = state.jobs[-1] if state.jobs else {}
            if isinstance(step, int):
                self._send(step, {"error": {"message": "slow down", "type": "rate_limit"}},
                           {"Retry-After": "0"} if step == 429 else None)
            else:
                self._send(200, _job(body, step))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
