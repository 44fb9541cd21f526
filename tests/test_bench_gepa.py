"""The GEPA benchmark's harness (bench/gepa_vs_dspy.py): no LM is called here."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import gepa_vs_dspy as bench  # noqa: E402


def variant(tmp_path: Path, **sizes: int | None) -> Path:
    args = SimpleNamespace(lmp=REPO / "examples" / "classify.lmp", max_metric_calls=120,
                           minibatch_size=3, use_merge=False, train=sizes.get("train"),
                           val=sizes.get("val"), test=sizes.get("test"))
    return bench.write_variant(args, tmp_path)


def test_the_variant_runs_gepa_alone_on_resized_splits(tmp_path: Path) -> None:
    text = variant(tmp_path, val=40, test=20).read_text()
    block = text[text.index("optimize Router"):]
    assert "gepa(max_metric_calls = 120, reflection_minibatch_size = 3, use_merge = false, " \
           "seed = 0)" in block
    assert "knn_fewshot" not in block
    assert "split: train 40, val 40, test 20, seed 7" in text  # train kept from the file
    program = bench.load_program(tmp_path / "gepa.lmp")
    sizes = {k: len(v) for k, v in bench.build_task(program).splits.items()}
    assert sizes == {"train": 40, "val": 40, "test": 20}


def test_dspy_gets_lmpcs_metric_and_feedback(tmp_path: Path) -> None:
    pytest.importorskip("dspy")
    program = bench.load_program(variant(tmp_path, val=4, test=4))
    task = bench.build_task(program)
    feedback = bench.feedback_of(program, task)
    row = dict(task.splits["train"][0])
    label = row["category"]
    other = next(c for c in task.output.choices if c != label)
    assert feedback(row, label)[0] == 1.0
    score, text = feedback(row, other)
    assert score == 0.0 and f"expected category = '{label}', got '{other}'" in text
    metric = bench.gepa_metric(task, feedback)
    gold = SimpleNamespace(toDict=lambda: row)
    got = metric(gold, SimpleNamespace(category=other), None, "self", None)
    assert (got.score, got.feedback) == (score, text)  # what lmpc's gepa shows its writer
    failed = metric(gold, SimpleNamespace(), None, "self", None)
    assert failed.score == 0.0 and "no category" in failed.feedback
