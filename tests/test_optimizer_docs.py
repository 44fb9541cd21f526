"""docs/optimizers.md is generated from the specifications: it must not drift from them."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_optimizer_reference_matches_the_specifications() -> None:
    generator = runpy.run_path(str(ROOT / "tools" / "gen_optimizer_docs.py"))
    assert (ROOT / "docs" / "optimizers.md").read_text() == generator["render"](), (
        "run: python tools/gen_optimizer_docs.py")


def test_reference_lists_each_implemented_pass_with_its_parameters() -> None:
    text = (ROOT / "docs" / "optimizers.md").read_text()
    for row in ("| mipro_v2 | minibatch_full_eval_steps |", "| knn_fewshot | k |",
                "| bootstrap_fewshot | max_rounds |", "| ensemble | reduce |"):
        assert row in text
