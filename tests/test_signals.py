"""SIGTERM ends a build the way Ctrl-C does: one line, no artifact, no temp file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_server import fake_server, sentiment_reply, sentiment_source


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_build_leaves_no_artifact(tmp_path: Path, sig: signal.Signals) -> None:
    with fake_server(sentiment_reply, delay_s=0.2) as server:
        source = sentiment_source(tmp_path, server.url)
        out = tmp_path / "out.json"
        env = {**os.environ, "LMPC_CACHE_DIR": str(tmp_path / "cache")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "lmpc", "build", str(source), "-o", str(out),
             "--quiet", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while server.count < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert server.count >= 3, proc.communicate()[1].decode()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    text = stderr.decode()
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    assert proc.returncode == 1, text
    assert f"{word}: no artifact written" in text and "Traceback" not in text
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))
