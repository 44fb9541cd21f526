"""The few-shot benchmark's harness (bench/fewshot_vs_dspy.py): no LM is called here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import fewshot_vs_dspy as bench  # noqa: E402

SOURCE = """\
import "common.lmp"
dataset tickets = jsonl "data/t.jsonl" {
  split: train 4, val 2, test 2, seed 7
}
optimize Router with accuracy on tickets {
  lm: local     // the task model
  budget: calls 50
  seed: 7
  bootstrap_fewshot(max_bootstrapped_demos = 4)   // "a } in a comment"
  then ensemble(top = 3, reduce = "{majority}")
}
test "x" { Router(ticket = "a") expect category == billing }
"""


def test_variant_keeps_settings_drops_budget_and_replaces_passes() -> None:
    text = bench.variant_source(SOURCE, Path("/src"), "labeled_fewshot(k = 4)")
    block = text[text.index("optimize"):text.index('test "x"')]
    assert "  lm: local     // the task model" in block
    assert "seed: 7" in block
    assert "budget" not in block
    assert "labeled_fewshot(k = 4)" in block
    assert "bootstrap_fewshot" not in block and "ensemble" not in block
    assert text.endswith('test "x" { Router(ticket = "a") expect category == billing }\n')


def test_variant_makes_dataset_and_import_paths_absolute() -> None:
    text = bench.variant_source(SOURCE, Path("/src"), "labeled_fewshot(k = 4)")
    assert 'jsonl "/src/data/t.jsonl"' in text
    assert 'import "/src/common.lmp"' in text


def test_pass_lines_give_both_sides_the_same_settings() -> None:
    assert bench.pass_line("labeled_fewshot", 3) == "labeled_fewshot(k = 4)"
    search = bench.pass_line("bootstrap_random_search", 3)
    assert "num_candidate_programs = 3" in search
    assert f"max_errors = {bench.MAX_ERRORS}" in search


def test_compare_puts_both_sides_on_one_footing() -> None:
    ours = {"summary": {"scores": {"test": {"before": 0.2, "after": 0.9},
                                   "val": {"before": 0.25, "after": 0.95}},
                        "lm_calls": 100, "tokens": 5000, "seconds": 10.0, "failures": 0,
                        "splits": {"train": 4}},
            "pass_usage": {"lm_requests": 20, "prompt_tokens": 900, "completion_tokens": 100},
            "process_seconds": 12.0}
    zero = {"calls": 80, "tokens": 8000, "seconds": 40.0}
    theirs = {"test_before": 0.0, "test_after": 0.0, "demos": 4,
              "compile": {"calls": 40, "tokens": 4000, "seconds": 20.0},
              "evaluate_test": {"calls": 80, "tokens": 8000, "seconds": 40.0}}
    row = bench.compare("bootstrap_fewshot", ours, theirs, zero)
    assert row["dspy"]["total_calls"] == 200
    assert row["ratio_lmpc_over_dspy"]["optimizer_calls"] == 0.5
    assert row["ratio_lmpc_over_dspy"]["total_calls"] == 0.5
    assert row["ratio_lmpc_over_dspy"]["seconds"] == 0.1
    assert "20.0% → 90.0%" in bench.table([row])


def test_dspy_signature_is_built_from_the_task() -> None:
    pytest.importorskip("dspy")
    from _dspy_side import FieldSpec, Task, make_signature

    task = Task("Route the ticket.", [FieldSpec("ticket", "the message")],
                FieldSpec("category", "the queue", ("billing", "shipping")),
                splits={}, score=lambda row, got: float(row["category"] == got))
    signature = make_signature(task)
    assert list(signature.input_fields) == ["ticket"]
    assert list(signature.output_fields) == ["category"]
    assert signature.instructions == "Route the ticket."
    assert "billing" in str(signature.output_fields["category"].annotation)
